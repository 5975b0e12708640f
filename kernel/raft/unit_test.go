package raft

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	pb "go.etcd.io/raft/v3/raftpb"
)

func TestCommandRoundTrip(t *testing.T) {
	c := command{id: reqID{1, 2, 3}, ops: []op{
		{put: true, key: "a/b", value: []byte{0, 1, 0xff}},
		{key: "gone"},
		{put: true, key: "empty", value: []byte{}},
	}}
	got, err := decodeCommand(c.encode())
	if err != nil {
		t.Fatal(err)
	}
	if got.id != c.id || len(got.ops) != 3 || got.ops[0].key != "a/b" || !bytes.Equal(got.ops[0].value, c.ops[0].value) ||
		got.ops[1].put || !got.ops[2].put || len(got.ops[2].value) != 0 {
		t.Fatalf("round trip: %+v", got)
	}
	enc := c.encode()
	for i := range enc {
		if _, err := decodeCommand(enc[:i]); err == nil {
			t.Fatalf("truncated command (%d of %d bytes) decoded", i, len(enc))
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	tr := NewMemNetwork(1).Transport(1)
	if _, err := (Config{Dir: "d", Transport: tr, Bootstrap: []uint64{1}, BootstrapSelf: true}).withDefaults(); err == nil {
		t.Error("Bootstrap and BootstrapSelf together accepted")
	}
	if _, err := (Config{ID: 1, Dir: "d", Transport: tr, SnapshotEntries: 10, KeepEntries: 10}).withDefaults(); err == nil {
		t.Error("KeepEntries >= SnapshotEntries accepted")
	}
	c, err := (Config{ID: 1, Dir: "d", Transport: tr}).withDefaults()
	if err != nil || c.ElectionTicks != 10 || c.SnapshotEntries != 10000 || c.KeepEntries != 5000 {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
}

// snapshotStream returns a snapshot stream of a database holding kvs.
func snapshotStream(t *testing.T, kvs map[string]string, st appliedState) []byte {
	t.Helper()
	db, err := pebble.Open("src", &pebble.Options{FS: vfs.NewMem(), Logger: quietPebbleLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for k, v := range kvs {
		_ = db.Set(kvKey(k), []byte(v), nil)
	}
	_ = db.Set(keyApplied, st.encode(), nil)
	_ = db.Set(keyHardState, []byte("not part of the state"), nil)
	r, err := newSnapshotReader(db.NewSnapshot())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(iotest1(r))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// iotest1 reads one byte at a time, to exercise the reader's buffering.
func iotest1(r io.Reader) io.Reader { return &oneByte{r} }

type oneByte struct{ r io.Reader }

func (o *oneByte) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}

func TestSnapshotStream(t *testing.T) {
	st := appliedState{index: 42, term: 3, conf: &pb.ConfState{Voters: []uint64{1, 2}}}
	stream := snapshotStream(t, map[string]string{"a": "1", "b/c": "2"}, st)
	fs := vfs.NewMem()
	dst, err := pebble.Open("dst", &pebble.Options{FS: fs, Logger: quietPebbleLogger{}, FormatMajorVersion: pebble.FormatNewest})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	opts := &pebble.Options{FS: fs}
	opts.EnsureDefaults()
	wo := opts.MakeWriterOptions(0, dst.TableFormat())
	_ = dst.Set(kvKey("stale"), []byte("x"), nil)
	_ = dst.Set(keyHardState, []byte("kept"), nil)

	got, err := writeSnapshotSST(fs, "snap.sst", wo, bytes.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	if got.index != 42 || got.term != 3 || len(got.conf.Voters) != 2 {
		t.Fatalf("applied state %+v", got)
	}
	if _, err := dst.IngestAndExcise(context.Background(), []string{"snap.sst"}, nil, nil,
		pebble.KeyRange{Start: stateStart, End: stateEnd}); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"a": "1", "b/c": "2", "stale": ""} {
		v, ok, _ := dbGet(dst, kvKey(k))
		if string(v) != want || ok != (want != "") {
			t.Errorf("after install %s = %q (present %v), want %q", k, v, ok, want)
		}
	}
	if v, _, _ := dbGet(dst, keyHardState); string(v) != "kept" {
		t.Errorf("install touched the raft range: %q", v)
	}

	// Every truncation and every flipped byte is refused.
	for i := 0; i < len(stream); i += 7 {
		if _, err := writeSnapshotSST(fs, "bad.sst", wo, bytes.NewReader(stream[:i])); !errors.Is(err, ErrBadSnapshot) {
			t.Fatalf("stream cut at %d: err = %v, want ErrBadSnapshot", i, err)
		}
		bad := append([]byte(nil), stream...)
		bad[i] ^= 0x40
		if _, err := writeSnapshotSST(fs, "bad.sst", wo, bytes.NewReader(bad)); err == nil {
			t.Fatalf("stream with byte %d flipped accepted", i)
		}
	}
	if _, err := fs.Stat("bad.sst"); err == nil {
		t.Error("a refused snapshot left its file behind")
	}
}

// TestSingleNodeReadAfterRestart: raft answers ReadIndex at once in a
// one-voter cluster, with a commit index that after a restart may be behind
// acknowledged entries. Reads must wait for the new term's entry to commit.
func TestSingleNodeReadAfterRestart(t *testing.T) {
	checkNoLeaks(t)
	c := newCluster(t, 1, clusterOpts{seed: 13})
	for i := range 10 {
		n := c.leader()
		v := string(rune('a' + i))
		mustPut(t, n, "k", v)
		c.crash(1, 0) // the commit index (unsynced) is lost; the entry is not
		n = c.restart(1)
		if got := mustGet(t, n, "k"); got != v {
			t.Fatalf("round %d: read %q after restart, acknowledged %q", i, got, v)
		}
	}
}

// TestReadRetriesWithFreshID loses ReadIndex requests (the follower's link to
// the leader is cut) and then heals: the read completes by retrying.
func TestReadRetriesWithFreshID(t *testing.T) {
	checkNoLeaks(t)
	c := newCluster(t, 3, clusterOpts{seed: 14})
	lead := c.leader()
	mustPut(t, lead, "k", "v")
	f := c.follower()
	c.net.Cut(f.ID(), lead.ID())
	go func() { time.Sleep(150 * time.Millisecond); c.net.Heal() }()
	if got := mustGet(t, f, "k"); got != "v" {
		t.Fatalf("got %q", got)
	}
}

// TestSnapshotTransferFailures fails snapshot streams half way at random:
// the lagging node still catches up, and no received file is left over.
func TestSnapshotTransferFailures(t *testing.T) {
	checkNoLeaks(t)
	c := newCluster(t, 3, clusterOpts{seed: 15, tune: snapshotTune})
	lead := c.leader()
	lag := c.follower()
	c.net.Isolate(lag.ID(), []uint64{1, 2, 3})
	for i := range 40 {
		mustPut(t, lead, "k", string(rune('a'+i)))
	}
	c.net.SetFaults(Faults{SnapshotFail: 0.6})
	c.net.Heal()
	c.waitApplied(lead.Status().Commit)
	if got := mustGet(t, lag, "k"); got != string(rune('a'+39)) {
		t.Fatalf("got %q", got)
	}
	names, _ := c.fs[lag.ID()].List(lag.snapIn)
	if len(names) != 0 {
		t.Errorf("received snapshot files left: %v", names)
	}
}

// TestSelfNamedNode opens a node as a server does: no ID given (a random one
// is chosen and kept in its directory) and a one-voter cluster of itself.
// It leads at once; reopened, it keeps its ID and its data; the directory
// refuses any other ID.
func TestSelfNamedNode(t *testing.T) {
	checkNoLeaks(t)
	fs := vfs.NewMem()
	open := func(id uint64) (*Node, error) {
		return Open(Config{ID: id, Dir: "n", FS: fs, Transport: LocalTransport(), BootstrapSelf: true, TickInterval: 10 * time.Millisecond})
	}
	n, err := open(0)
	if err != nil {
		t.Fatal(err)
	}
	id := n.ID()
	if id == 0 {
		t.Fatal("node ID 0")
	}
	mustPut(t, n, "k", "v")
	if st := n.Status(); st.Leader != id || len(st.Voters) != 1 || st.Voters[0] != id {
		t.Fatalf("status %+v: want a one-voter cluster led by %d", st, id)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err = open(0); err != nil {
		t.Fatal(err)
	}
	if n.ID() != id {
		t.Errorf("reopened as %d, was %d", n.ID(), id)
	}
	if got := mustGet(t, n, "k"); got != "v" {
		t.Errorf("read %q after reopening, wrote %q", got, "v")
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := open(id + 1); err == nil {
		n.Close()
		t.Fatal("a directory opened under another node ID")
	}
}
