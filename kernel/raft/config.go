package raft

import (
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"go.etcd.io/raft/v3"
)

// Config configures Open. ID, Dir and Transport are required; every other
// field has a default (see withDefaults).
type Config struct {
	// ID is this node's raft ID: unique in the cluster and never reused
	// after the node is removed. Zero means the ID stored in Dir, or, when
	// Dir holds none yet, a new random one (Node.ID tells which): how a
	// server names itself without operators numbering nodes.
	ID uint64
	// Dir is the node's Pebble directory; FS replaces the real filesystem
	// (tests pass vfs.NewCrashableMem()).
	Dir string
	FS  vfs.FS
	// Transport carries messages to the other nodes; the node owns it and
	// closes it on Close.
	Transport Transport
	// Bootstrap lists the voters of a new cluster, this node among them. It
	// is used only when Dir holds no state yet; every founding member must
	// be given the same list. Empty means join: the node waits to be added
	// by the cluster (AddLearner on the leader) and receives a snapshot.
	Bootstrap []uint64
	// BootstrapSelf founds a one-voter cluster of this node when Dir holds
	// no state yet, as a server's first node does (the others join it).
	// Exclusive with Bootstrap.
	BootstrapSelf bool

	// TickInterval is the length of a raft tick (default 100ms). With
	// ManualTick the node never ticks on its own: tests call Tick.
	TickInterval time.Duration
	ManualTick   bool
	// ElectionTicks (default 10) and HeartbeatTicks (default 1) are raft's
	// election timeout and heartbeat interval in ticks.
	ElectionTicks  int
	HeartbeatTicks int

	// SnapshotEntries is how many applied entries may accumulate in the log
	// before it is compacted (default 10000); KeepEntries is how many of the
	// newest of them compaction keeps for slow followers (default 5000,
	// less than SnapshotEntries).
	SnapshotEntries uint64
	KeepEntries     uint64

	// RequestTimeout bounds how long a write or a linearizable read waits
	// (for a leader, a quorum, commit and apply) when the caller's context
	// has no earlier deadline (default 10s).
	RequestTimeout time.Duration
	// ReadRetryTicks is how long a ReadIndex request waits for its answer
	// before it is sent again under a fresh ID (default 5 ticks).
	ReadRetryTicks int
	// ProposalRetryTicks is how long a proposal waits to be applied before
	// it is proposed again (default ElectionTicks). A re-proposal carries the
	// same request ID, so the state machine applies it at most once.
	ProposalRetryTicks int
	// DedupeWindow is how many log entries a request ID is remembered for
	// (default 1<<17). A re-proposal is only made while fewer than half the
	// window has been applied since the first proposal.
	DedupeWindow uint64

	// SyncApply syncs the batch that applies committed entries. Off by
	// default: entries are synced in the log before they are applied, so an
	// apply lost in a crash is re-applied from the log on restart
	// (TestCrashNoAckedWriteLost proves it on Pebble's crashable filesystem).
	SyncApply bool

	// MaxSizePerMsg (default 1 MiB) and MaxInflightMsgs (default 256) are
	// raft's flow control.
	MaxSizePerMsg   uint64
	MaxInflightMsgs int
	// EntryCache is how many recent log entries are kept in memory
	// (default 4096).
	EntryCache int

	// Logger receives raft's log output; nil discards all but errors.
	Logger raft.Logger
	// PebbleLogger receives Pebble's; nil keeps only errors.
	PebbleLogger pebble.Logger
	// CacheSize is Pebble's block cache in bytes (default 64 MiB).
	CacheSize int64

	// OnApply, if set, is told the storage keys each applied batch of
	// entries wrote or deleted, on every node, once they are readable
	// here; nil keys mean anything may have changed (a snapshot replaced
	// the state). It runs on the raft goroutine: it must return quickly
	// and must not call the Node (hand the keys to another goroutine).
	OnApply func(keys []string)
}

// withDefaults validates c and returns it with every unset field defaulted.
func (c Config) withDefaults() (Config, error) {
	if c.BootstrapSelf && len(c.Bootstrap) > 0 {
		return c, errors.New("raft: config: Bootstrap and BootstrapSelf are exclusive")
	}
	if c.Dir == "" {
		return c, errors.New("raft: config: Dir is required")
	}
	if c.Transport == nil {
		return c, errors.New("raft: config: Transport is required")
	}
	if c.FS == nil {
		c.FS = vfs.Default
	}
	if c.TickInterval == 0 {
		c.TickInterval = 100 * time.Millisecond
	}
	if c.ElectionTicks == 0 {
		c.ElectionTicks = 10
	}
	if c.HeartbeatTicks == 0 {
		c.HeartbeatTicks = 1
	}
	if c.ElectionTicks <= c.HeartbeatTicks {
		return c, errors.New("raft: config: ElectionTicks must exceed HeartbeatTicks")
	}
	if c.SnapshotEntries == 0 {
		c.SnapshotEntries = 10000
	}
	if c.KeepEntries == 0 {
		c.KeepEntries = c.SnapshotEntries / 2
	}
	if c.KeepEntries >= c.SnapshotEntries {
		return c, fmt.Errorf("raft: config: KeepEntries (%d) must be less than SnapshotEntries (%d)", c.KeepEntries, c.SnapshotEntries)
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.ReadRetryTicks == 0 {
		c.ReadRetryTicks = 5
	}
	if c.ProposalRetryTicks == 0 {
		c.ProposalRetryTicks = c.ElectionTicks
	}
	if c.DedupeWindow == 0 {
		c.DedupeWindow = 1 << 17
	}
	if c.MaxSizePerMsg == 0 {
		c.MaxSizePerMsg = 1 << 20
	}
	if c.MaxInflightMsgs == 0 {
		c.MaxInflightMsgs = 256
	}
	if c.EntryCache == 0 {
		c.EntryCache = 4096
	}
	if c.Logger == nil {
		c.Logger = quietRaftLogger{}
	}
	if c.PebbleLogger == nil {
		c.PebbleLogger = quietPebbleLogger{}
	}
	if c.CacheSize == 0 {
		c.CacheSize = 64 << 20
	}
	for _, id := range c.Bootstrap {
		if id == 0 {
			return c, errors.New("raft: config: Bootstrap lists node ID 0")
		}
	}
	return c, nil
}

// quietRaftLogger drops raft's chatter and keeps errors; Fatal and Panic
// still stop the process, as raft expects.
type quietRaftLogger struct{}

func (quietRaftLogger) Debug(...any)              {}
func (quietRaftLogger) Debugf(string, ...any)     {}
func (quietRaftLogger) Info(...any)               {}
func (quietRaftLogger) Infof(string, ...any)      {}
func (quietRaftLogger) Warning(...any)            {}
func (quietRaftLogger) Warningf(string, ...any)   {}
func (quietRaftLogger) Error(v ...any)            { defaultLogger().Error(v...) }
func (quietRaftLogger) Errorf(f string, v ...any) { defaultLogger().Errorf(f, v...) }
func (quietRaftLogger) Fatal(v ...any)            { defaultLogger().Fatal(v...) }
func (quietRaftLogger) Fatalf(f string, v ...any) { defaultLogger().Fatalf(f, v...) }
func (quietRaftLogger) Panic(v ...any)            { defaultLogger().Panic(v...) }
func (quietRaftLogger) Panicf(f string, v ...any) { defaultLogger().Panicf(f, v...) }

var stdLogger = log.New(os.Stderr, "raft: ", log.LstdFlags)

func defaultLogger() raft.Logger { return &raft.DefaultLogger{Logger: stdLogger} }

type quietPebbleLogger struct{}

func (quietPebbleLogger) Infof(string, ...any) {}
func (quietPebbleLogger) Errorf(format string, args ...any) {
	pebble.DefaultLogger.Errorf(format, args...)
}
func (quietPebbleLogger) Fatalf(format string, args ...any) {
	pebble.DefaultLogger.Fatalf(format, args...)
}
