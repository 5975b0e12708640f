// Package raft is Ward's replicated storage: a storage.Backend whose state
// is replicated by etcd raft (go.etcd.io/raft/v3) and kept in Pebble.
//
// It owns one Pebble database per node and the raft state machine in it. It
// must never apply an entry before it is durable in the log, acknowledge a
// write before it is committed and applied, or serve a read that is not
// linearizable. Values are opaque (barrier ciphertext, encrypted before they
// are proposed): they never appear in errors or logs.
//
// # Ready loop
//
// One goroutine (Node.run) owns the RawNode. It takes every queued proposal
// into one MsgProp and every queued read into one ReadIndex request, so many
// concurrent writers share one Ready and one fsync. Each Ready is handled in
// this order:
//
//  1. a leader sends its appends and heartbeats at once (it may write its
//     own log in parallel with its followers);
//  2. a received snapshot's state is installed, then its raft side, the new
//     entries and the HardState are written in one Pebble batch, synced
//     when raft says so (MustSync) or a snapshot was installed;
//  3. messages that promise durability (append and vote responses, and so
//     every message of a follower) are sent;
//  4. read states release waiting reads; committed entries are applied in
//     one batch that also records the applied index and ConfState;
//  5. Advance; then the log is compacted if due.
//
// CheckQuorum, PreVote, StepDownOnRemoval and ReadOnlySafe are always on.
//
// # Key layout
//
//	0x01 'i'                 node ID (guards against opening another node's dir)
//	0x02 'h'                 HardState
//	0x02 't'                 truncation state (index, term of the last removed entry)
//	0x02 'l' <index>         log entries (big-endian index)
//	0x03 'a'                 applied state: index, term, ConfState
//	0x03 'k' <key>           storage.Backend keys
//	0x03 'q' <id>, 'r' ...   request IDs applied recently (dedupe)
//	0x03 'x' <node ID>       removed node IDs (never reused)
//
// Range 0x03 is the state machine. The applied state lives inside it and is
// written in the same batch as the writes it covers (etcd#13766), so a
// snapshot of the range is consistent by construction.
//
// Log writes are synced; applies are not (Config.SyncApply): an apply lost
// in a crash is replayed from the synced log, and every later synced write
// (Pebble has one WAL) makes earlier applies durable, which log compaction
// relies on. TestCrashNoAckedWriteLost and TestSingleNodeReadAfterRestart
// check this on Pebble's crashable filesystem.
//
// # Writes
//
// A write is one command (a request ID and its puts and deletes) proposed
// to raft; a follower's proposal is forwarded to the leader by raft. It
// returns once the entry is applied on the proposing node. A proposal that
// may have been lost (forwarded to a leader that died, or dropped for want
// of a leader) is proposed again under the same request ID; the state
// machine remembers applied IDs for Config.DedupeWindow entries, so a
// command takes effect once even when raft carries it twice. The decision
// depends only on the log, so every node makes the same one.
//
// # Reads
//
// Get and List on any node: a ReadIndex request under a fresh random 8-byte
// ID (a retry after ReadRetryTicks gets a new one: etcd#20418), answered by
// the leader once it has confirmed its leadership with a quorum and
// committed an entry of its own term (etcd#7331; enforced here too for a
// one-voter cluster, where raft answers at once); then a wait until this
// node has applied that index; then a read of local Pebble.
//
// # Snapshots
//
// Once SnapshotEntries entries are applied past the truncation point, the
// log is truncated to KeepEntries behind the applied index (never past a
// snapshot still in flight, so a slow transfer is not outrun: consul#9609).
// A follower that needs entries no longer in the log is sent the state
// range streamed from a Pebble snapshot taken at send time; the MsgSnap's
// metadata is rewritten to that snapshot's applied state, as etcd does. The
// receiver writes the stream into an sstable (checksummed, keys checked to
// be in the range and in order), hands the message to raft, and, when raft
// accepts it, ingests the sstable with an excise of the whole state range:
// the state is replaced atomically before raft is told it is persisted. A
// crash between the ingest and the log's side of the install is repaired
// at Open.
//
// # Membership
//
// ConfChangeV2 with one change at a time: AddLearner, AddVoter (promotion),
// RemoveNode. A new node starts with no Bootstrap, is added as a learner,
// catches up by snapshot, then is promoted. Removed IDs are recorded in the
// state machine and refused forever (ErrIDReused). A removed node ignores
// raft messages and answers every call with ErrRemoved.
//
// # Transport
//
// Transport is the interface between nodes: non-blocking Send with bounded
// per-peer queues (a full queue drops and reports the peer unreachable) and
// a separate streaming path for snapshots, reported with ReportSnapshot.
// MemNetwork is the in-memory implementation for tests, with seeded drops,
// duplicates, delays (reordering), failed snapshot streams and partitions.
//
// TLSTransport is the one between real nodes, on the cluster port: mutual
// TLS 1.3, where each side must present a certificate of the cluster's own
// CA (never the system roots) whose URI SAN names this cluster and the
// node's raft ID; the listener checks that ID against the one the dialer
// claims, and every message against both. One connection per peer and
// direction carries length-prefixed raftpb.Message frames (versioned
// preface, bounded frame size, write deadlines, reconnect with backoff); a
// snapshot has a connection of its own and ends with the receiver's
// verdict, which ReportSnapshot passes on. Peers are addressed by raft ID
// (SetPeer, RemovePeer). NewClusterCA, IssueNodeCert and LoadClusterTLS are
// the PKI, plain functions over PEM: init creates the CA, the leader issues
// a joining node's certificate.
package raft
