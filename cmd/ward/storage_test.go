package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardproject/ward/kernel/config"
)

// TestStorageKinds: a raft directory keeps its node name and data across
// opens, and neither kind of storage opens the other's directory (the data
// would silently vanish behind an empty store).
func TestStorageKinds(t *testing.T) {
	ctx := context.Background()
	raftDir, pebbleDir := t.TempDir(), t.TempDir()

	st, err := openStorage(&config.Config{Storage: &config.Storage{Type: "raft", Path: raftDir}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	name := st.nodeName
	if err := st.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if b, err := os.ReadFile(filepath.Join(raftDir, "node-id")); err != nil || strings.TrimSpace(string(b)) != name || name == "" {
		t.Fatalf("node-id file %q (%v), node name %q", b, err, name)
	}
	if st, err = openStorage(&config.Config{Storage: &config.Storage{Type: "raft", Path: raftDir}}, nil); err != nil {
		t.Fatal(err)
	}
	if v, err := st.Get(ctx, "k"); err != nil || string(v) != "v" || st.nodeName != name {
		t.Fatalf("reopened: %q, %v, name %q (was %q)", v, err, st.nodeName, name)
	}
	st.Close()
	if st, err = openStorage(&config.Config{Storage: &config.Storage{Type: "raft", Path: raftDir, NodeID: "node-a"}}, nil); err != nil || st.nodeName != "node-a" {
		t.Fatalf("node_id from the configuration: %v", err)
	}
	st.Close()

	if st, err = openStorage(&config.Config{Storage: &config.Storage{Type: "pebble", Path: pebbleDir}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	st.Close()

	if _, err := openStorage(&config.Config{Storage: &config.Storage{Type: "pebble", Path: raftDir}}, nil); err == nil || !strings.Contains(err.Error(), `use storage "raft"`) {
		t.Errorf("pebble opened a raft directory: %v", err)
	}
	if _, err := openStorage(&config.Config{Storage: &config.Storage{Type: "raft", Path: pebbleDir}}, nil); err == nil || !strings.Contains(err.Error(), "not a raft node's") {
		t.Errorf("raft opened a pebble directory: %v", err)
	}
}

func TestClusterAddrs(t *testing.T) {
	for _, c := range []struct {
		clusterAddr, listen, wantAdv, wantListen, wantErr string
	}{
		{"", "", "", "", ""},
		{"https://10.0.0.1:8201", "", "10.0.0.1:8201", "10.0.0.1:8201", ""},
		{"https://ward-1.example:8201", "0.0.0.0:8201", "ward-1.example:8201", "0.0.0.0:8201", ""},
		{"", "10.0.0.2:8201", "10.0.0.2:8201", "10.0.0.2:8201", ""},
		{"", "0.0.0.0:8201", "", "", "unspecified"},
		{"https://10.0.0.1", "", "", "", "with a port"},
	} {
		cfg := &config.Config{ClusterAddr: c.clusterAddr, Listeners: []config.Listener{{Address: "127.0.0.1:8200", ClusterAddress: c.listen}}}
		adv, listen, err := clusterAddrs(cfg)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%q/%q: err %v, want %q", c.clusterAddr, c.listen, err, c.wantErr)
			}
			continue
		}
		if err != nil || adv != c.wantAdv || listen != c.wantListen {
			t.Errorf("%q/%q: %q %q %v, want %q %q", c.clusterAddr, c.listen, adv, listen, err, c.wantAdv, c.wantListen)
		}
	}
}
