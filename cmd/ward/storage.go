package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/google/uuid"

	"github.com/wardproject/ward/kernel"
	"github.com/wardproject/ward/kernel/config"
	"github.com/wardproject/ward/kernel/raft"
	"github.com/wardproject/ward/kernel/storage"
	pebblestore "github.com/wardproject/ward/kernel/storage/pebble"
)

// openedStorage is the server's storage: the backend the core uses and,
// for raft, the node behind it.
type openedStorage struct {
	storage.Backend
	node     *raft.Node // nil for "pebble"
	nodeName string
}

func (s *openedStorage) Close() error {
	if s.node != nil {
		return s.node.Close()
	}
	return s.Backend.Close()
}

// openStorage opens the storage stanza's backend. A raft node that finds
// no state founds a one-voter cluster of itself, as Vault's first node
// does; the others will join it.
func openStorage(sc *config.Storage) (*openedStorage, error) {
	switch sc.Type {
	case "pebble":
		st, err := pebblestore.Open(sc.Path, pebblestore.Options{})
		if err != nil {
			return nil, err
		}
		return &openedStorage{Backend: st}, nil
	case "raft":
		name, err := nodeName(sc)
		if err != nil {
			return nil, err
		}
		n, err := raft.Open(raft.Config{Dir: sc.Path, Transport: raft.LocalTransport(), BootstrapSelf: true})
		if err != nil {
			return nil, err
		}
		return &openedStorage{Backend: n.Backend(), node: n, nodeName: name}, nil
	}
	return nil, fmt.Errorf("unsupported storage type %q", sc.Type)
}

// nodeName is the raft node's name: node_id from the configuration, or
// else the one kept in <path>/node-id, generated (a UUID) at first start,
// as Vault does.
func nodeName(sc *config.Storage) (string, error) {
	if sc.NodeID != "" {
		return sc.NodeID, nil
	}
	file := filepath.Join(sc.Path, "node-id")
	b, err := os.ReadFile(file)
	switch {
	case err == nil:
		if name := strings.TrimSpace(string(b)); name != "" {
			return name, nil
		}
		return "", fmt.Errorf("%s is empty: set node_id in the storage stanza or remove the file", file)
	case !errors.Is(err, fs.ErrNotExist):
		return "", err
	}
	if err := os.MkdirAll(sc.Path, 0o700); err != nil {
		return "", err
	}
	name := uuid.NewString()
	if err := os.WriteFile(file, []byte(name+"\n"), 0o600); err != nil {
		return "", err
	}
	return name, nil
}

// raftCluster reports a raft node to the kernel (kernel.Cluster).
type raftCluster struct {
	node        *raft.Node
	name        string // this node's name
	clusterAddr string

	mu      sync.Mutex // protects apiAddr
	apiAddr string     // api_addr, or the first listener's once it listens
}

func (c *raftCluster) setAPIAddr(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.apiAddr = addr
}

// ClusterStatus implements kernel.Cluster. Members other than this node
// are named by their raft IDs until membership records their names.
func (c *raftCluster) ClusterStatus() kernel.ClusterStatus {
	st := c.node.Status()
	name := func(id uint64) string {
		if id == st.ID {
			return c.name
		}
		return strconv.FormatUint(id, 10)
	}
	out := kernel.ClusterStatus{NodeID: c.name, CommitIndex: st.Commit, AppliedIndex: st.Applied}
	if st.Leader != 0 {
		out.LeaderID = name(st.Leader)
	}
	add := func(id uint64, voter bool) {
		srv := kernel.ClusterServer{NodeID: name(id), Voter: voter}
		if id == st.ID {
			c.mu.Lock()
			srv.APIAddress, srv.ClusterAddress = c.apiAddr, c.clusterAddr
			c.mu.Unlock()
		}
		out.Servers = append(out.Servers, srv)
	}
	for _, id := range st.Voters {
		add(id, true)
	}
	for _, id := range st.Learners {
		add(id, false)
	}
	return out
}

// StepDown implements kernel.Cluster.
func (c *raftCluster) StepDown(ctx context.Context) error { return c.node.StepDown(ctx) }
