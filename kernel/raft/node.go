package raft

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"google.golang.org/protobuf/proto"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/wardproject/ward/kernel/storage"
)

// Node is one member of a raft cluster: an etcd raft RawNode driven by one
// goroutine (run), its log and state machine in one Pebble database, and a
// Transport to its peers. Writes and reads go through Backend.
type Node struct {
	cfg Config
	id  uint64
	tr  Transport

	// dbMu guards the lifetime of db for readers outside the raft goroutine:
	// they hold it shared while they use db, Close holds it exclusively.
	dbMu   sync.RWMutex
	db     *pebble.DB
	wo     sstable.WriterOptions
	log    *logStore
	rn     *raft.RawNode // owned by the raft goroutine
	snapIn string        // directory for received snapshots

	// Channels into the raft goroutine.
	recvc       chan *pb.Message
	snapc       chan receivedSnap
	ctrlc       chan func()
	unreachc    chan uint64
	snapStatusc chan snapStatus
	tickc       chan struct{}
	wakec       chan struct{} // new proposals or reads queued
	stopc       chan struct{}
	donec       chan struct{}
	recvWG      sync.WaitGroup // ReceiveSnapshot calls in progress
	stopped     atomic.Bool
	haltOnce    sync.Once
	stats       nodeStats

	qmu     sync.Mutex // protects the two queues below
	propQ   []*proposal
	readQ   []*readReq
	closedQ bool
	reqSeq  atomic.Uint64

	mu        sync.Mutex // protects the fields below
	applied   uint64
	appliedWs []appliedWaiter
	status    Status
	removed   bool
	fatal     error

	// Owned by the raft goroutine.
	st           appliedState
	removedIDs   map[uint64]bool
	waiters      map[reqID]*proposal
	reads        map[[8]byte]*readBatch
	pendingReads []*readReq
	snapFiles    map[uint64]string // snapshot index -> received sstable
	snapInflight map[uint64]uint64 // peer -> index of the snapshot being sent
	ticks        uint64
	lead         uint64
	role         raft.StateType
}

// nodeStats counts events for tests and benchmarks.
type nodeStats struct {
	readies, syncs, entries, snapshotsSent, snapshotsInstalled atomic.Uint64
}

// Status is a node's view of the cluster.
type Status struct {
	ID       uint64
	Leader   uint64 // 0 when none is known
	Term     uint64
	Role     raft.StateType
	Commit   uint64
	Applied  uint64
	Voters   []uint64
	Learners []uint64
	Removed  bool
}

type proposal struct {
	id           reqID
	data         []byte           // encoded command, or nil for a conf change
	cc           *pb.ConfChangeV2 // conf change, or nil
	done         chan error       // buffered; receives exactly one result
	state        atomic.Int32     // propPending, then propProposed or propAbandoned
	gaveUp       atomic.Bool      // the caller returned: stop re-proposing
	firstApplied uint64           // applied index at the first proposal
	lastTick     uint64           // tick of the last proposal (0: not proposed)
}

const (
	propPending   = iota // never handed to raft: certainly not applied
	propProposed         // handed to raft at least once: outcome unknown until applied
	propAbandoned        // the caller gave up before it was ever handed to raft
)

func (p *proposal) abandoned() bool { return p.gaveUp.Load() }

// claim marks p as handed to raft, unless its caller gave up first.
func (p *proposal) claim() bool {
	return p.state.CompareAndSwap(propPending, propProposed) || p.state.Load() == propProposed
}

type readReq struct {
	done chan readResult // buffered
}

type readResult struct {
	index uint64
	err   error
}

type readBatch struct {
	readers []*readReq
	sentAt  uint64
}

type appliedWaiter struct {
	index uint64
	ch    chan struct{}
}

type snapStatus struct {
	id     uint64
	status raft.SnapshotStatus
}

type receivedSnap struct {
	msg  *pb.Message
	path string
}

// Open opens (creating if needed) the node's database in cfg.Dir and starts
// the node. A new cluster is founded by opening each founding member with
// the same cfg.Bootstrap; a node with no Bootstrap and no state waits to be
// added (AddLearner) and catches up by snapshot.
func Open(cfg Config) (*Node, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := cfg.FS.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("raft: create data dir: %w", err)
	}
	opts := &pebble.Options{
		FS:                 cfg.FS,
		Logger:             cfg.PebbleLogger,
		Cache:              pebble.NewCache(cfg.CacheSize),
		MemTableSize:       64 << 20,
		FormatMajorVersion: pebble.FormatNewest,
	}
	defer opts.Cache.Unref()
	opts.EnsureDefaults()
	db, err := pebble.Open(cfg.Dir, opts)
	if err != nil {
		return nil, fmt.Errorf("raft: open pebble: %w", err)
	}
	n := &Node{
		cfg:          cfg,
		id:           cfg.ID,
		tr:           cfg.Transport,
		db:           db,
		wo:           opts.MakeWriterOptions(0, db.TableFormat()),
		snapIn:       cfg.FS.PathJoin(cfg.Dir, "snapshots-in"),
		recvc:        make(chan *pb.Message, 4096),
		snapc:        make(chan receivedSnap),
		ctrlc:        make(chan func()),
		unreachc:     make(chan uint64, 256),
		snapStatusc:  make(chan snapStatus, 64),
		tickc:        make(chan struct{}),
		wakec:        make(chan struct{}, 1),
		stopc:        make(chan struct{}),
		donec:        make(chan struct{}),
		removedIDs:   map[uint64]bool{},
		waiters:      map[reqID]*proposal{},
		reads:        map[[8]byte]*readBatch{},
		snapFiles:    map[uint64]string{},
		snapInflight: map[uint64]uint64{},
	}
	if err := n.load(); err != nil {
		db.Close()
		return nil, err
	}
	var seed [8]byte
	_, _ = rand.Read(seed[:])
	n.reqSeq.Store(binary.BigEndian.Uint64(seed[:]))
	rn, err := raft.NewRawNode(&raft.Config{
		ID:                n.id,
		ElectionTick:      cfg.ElectionTicks,
		HeartbeatTick:     cfg.HeartbeatTicks,
		Storage:           n.log,
		Applied:           n.st.index,
		MaxSizePerMsg:     cfg.MaxSizePerMsg,
		MaxInflightMsgs:   cfg.MaxInflightMsgs,
		CheckQuorum:       true,
		PreVote:           true,
		ReadOnlyOption:    raft.ReadOnlySafe,
		StepDownOnRemoval: true,
		Logger:            cfg.Logger,
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("raft: %w", err)
	}
	n.rn = rn
	if v := n.st.conf.GetVoters(); len(v) == 1 && v[0] == n.id && len(n.st.conf.GetVotersOutgoing()) == 0 {
		_ = rn.Campaign() // the only voter: lead at once instead of after an election timeout
	}
	n.publishStatus()
	if err := n.tr.Start(handler{n}); err != nil {
		db.Close()
		return nil, fmt.Errorf("raft: start transport: %w", err)
	}
	go n.run()
	return n, nil
}

// load reads (or bootstraps) the stored state and repairs an interrupted
// snapshot install.
func (n *Node) load() error {
	db := n.db
	if v, ok, err := dbGet(db, keyNodeID); err != nil {
		return err
	} else if ok {
		if len(v) != 8 {
			return fmt.Errorf("raft: %s: malformed node ID record", n.cfg.Dir)
		}
		if stored := binary.BigEndian.Uint64(v); n.id == 0 {
			n.id = stored
		} else if stored != n.id {
			return fmt.Errorf("raft: %s belongs to another node ID, not %d", n.cfg.Dir, n.id)
		}
	} else {
		// A directory of another kind (storage "pebble") is refused, not
		// silently taken over: its data would vanish behind a new cluster.
		if empty, err := dbEmpty(db); err != nil {
			return err
		} else if !empty {
			return fmt.Errorf("raft: %s holds data that is not a raft node's (a storage \"pebble\" directory?)", n.cfg.Dir)
		}
		for n.id == 0 {
			var b [8]byte
			if _, err := rand.Read(b[:]); err != nil {
				return err
			}
			n.id = binary.BigEndian.Uint64(b[:])
		}
		if err := db.Set(keyNodeID, binary.BigEndian.AppendUint64(nil, n.id), pebble.Sync); err != nil {
			return err
		}
	}
	bootstrap := n.cfg.Bootstrap
	if n.cfg.BootstrapSelf {
		bootstrap = []uint64{n.id}
	}
	v, ok, err := dbGet(db, keyApplied)
	if err != nil {
		return err
	}
	if ok {
		if n.st, err = decodeApplied(v); err != nil {
			return err
		}
	} else {
		n.st = appliedState{conf: &pb.ConfState{}}
		if len(bootstrap) > 0 {
			// Every founding member starts from the same state at index 1,
			// as if it had installed a snapshot there: the voters, nothing
			// else. A new member joining later gets it by snapshot.
			n.st = appliedState{index: 1, term: 1, conf: &pb.ConfState{Voters: bootstrap}}
			hs, _ := proto.Marshal(&pb.HardState{Term: new(uint64(1)), Commit: new(uint64(1))})
			b := db.NewBatch()
			_ = b.Set(keyApplied, n.st.encode(), nil)
			_ = b.Set(keyTrunc, truncState{1, 1}.encode(), nil)
			_ = b.Set(keyHardState, hs, nil)
			err := b.Commit(pebble.Sync)
			b.Close()
			if err != nil {
				return err
			}
		}
	}
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: keyRemoved, UpperBound: prefixEnd(keyRemoved)})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		n.removedIDs[binary.BigEndian.Uint64(it.Key()[len(keyRemoved):])] = true
	}
	if err := it.Close(); err != nil {
		return err
	}
	if n.log, err = loadLogStore(db, n.st.conf, n.cfg.EntryCache); err != nil {
		return err
	}
	// A crash between ingesting a snapshot's state and writing its raft side
	// leaves the state ahead of the log: finish the install.
	if n.st.index > 0 && !n.logHas(n.st.index, n.st.term) {
		hs := n.log.hardState()
		hs.Commit = new(max(hs.GetCommit(), n.st.index))
		hs.Term = new(max(hs.GetTerm(), n.st.term))
		meta := &pb.SnapshotMetadata{Index: new(n.st.index), Term: new(n.st.term), ConfState: n.st.conf}
		b := db.NewBatch()
		defer b.Close()
		if err := n.log.stageSnapshot(b, meta); err != nil {
			return err
		}
		if err := n.log.stageAppend(b, nil, hs); err != nil {
			return err
		}
		if err := b.Commit(pebble.Sync); err != nil {
			return err
		}
		n.log.snapshotInstalled(meta)
		n.log.appended(nil, hs)
	}
	if hs := n.log.hardState(); hs.GetCommit() < n.st.index {
		return fmt.Errorf("%w: applied index %d beyond commit %d", ErrCorrupt, n.st.index, hs.GetCommit())
	}
	n.applied = n.st.index
	n.removed = n.removedIDs[n.id]
	// Received snapshots not installed before a restart are useless.
	_ = n.cfg.FS.RemoveAll(n.snapIn)
	return n.cfg.FS.MkdirAll(n.snapIn, 0o700)
}

// logHas reports whether the log (or its truncation point) has entry i of
// term t, and the hard state commits it.
func (n *Node) logHas(i, t uint64) bool {
	if n.log.hardState().GetCommit() < i {
		return false
	}
	got, err := n.log.Term(i)
	return err == nil && got == t
}

// run is the raft goroutine: the only one that touches rn.
func (n *Node) run() {
	defer close(n.donec)
	var tick <-chan time.Time
	if !n.cfg.ManualTick {
		t := time.NewTicker(n.cfg.TickInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-n.stopc:
			return
		case <-tick:
			n.tick()
		case <-n.tickc:
			n.tick()
		case m := <-n.recvc:
			n.step(m)
		case <-n.wakec:
			n.takeQueued()
		case s := <-n.snapc:
			n.snapFiles[s.msg.GetSnapshot().GetMetadata().GetIndex()] = s.path
			n.step(s.msg)
		case f := <-n.ctrlc:
			f()
		case id := <-n.unreachc:
			n.rn.ReportUnreachable(id)
		case r := <-n.snapStatusc:
			delete(n.snapInflight, r.id)
			n.rn.ReportSnapshot(r.id, r.status)
		}
		// Take whatever else is waiting, so one Ready (one fsync) covers it.
	drain:
		for i := 0; i < 1024; i++ {
			select {
			case m := <-n.recvc:
				n.step(m)
			case <-n.wakec:
				n.takeQueued()
			default:
				break drain
			}
		}
		// Advance may leave more to do at once (a one-voter leader commits
		// its own append only on Advance): loop until raft is quiet.
		for n.rn.HasReady() {
			if err := n.handleReady(n.rn.Ready()); err != nil {
				n.fail(err)
				return
			}
		}
		n.dropUnusedSnapshots()
	}
}

func (n *Node) step(m *pb.Message) {
	if n.isRemoved() {
		return
	}
	_ = n.rn.Step(m) // errors are stale or unknown-peer messages: ignored
}

func (n *Node) tick() {
	n.ticks++
	n.rn.Tick()
	n.retryReads(false)
	n.retryProposals()
}

// takeQueued moves queued proposals into raft (all in one MsgProp) and
// queued reads into a ReadIndex request.
func (n *Node) takeQueued() {
	n.qmu.Lock()
	props, reads := n.propQ, n.readQ
	n.propQ, n.readQ = nil, nil
	n.qmu.Unlock()
	if n.isRemoved() {
		for _, p := range props {
			p.done <- ErrRemoved
		}
		for _, r := range reads {
			r.done <- readResult{err: ErrRemoved}
		}
		return
	}
	var ents []*pb.Entry
	var batch []*proposal
	for _, p := range props {
		if !p.claim() {
			continue
		}
		n.waiters[p.id] = p
		p.firstApplied = n.st.index
		if p.cc != nil {
			n.proposeConf(p)
			continue
		}
		ents = append(ents, &pb.Entry{Data: p.data})
		batch = append(batch, p)
	}
	n.proposeEntries(ents, batch)
	if len(reads) > 0 {
		n.pendingReads = append(n.pendingReads, reads...)
		n.issueRead()
	}
}

func (n *Node) proposeEntries(ents []*pb.Entry, ps []*proposal) {
	// One MsgProp per MaxSizePerMsg of entries (an entry larger than that
	// goes alone): a follower forwards each to the leader as one transport
	// frame, which must stay within the transport's frame limit.
	for len(ents) > 0 {
		k, size := 1, len(ents[0].GetData())
		for k < len(ents) && size+len(ents[k].GetData()) <= int(n.cfg.MaxSizePerMsg) {
			size += len(ents[k].GetData())
			k++
		}
		err := n.rn.Step(&pb.Message{Type: pb.MsgProp.Enum(), From: new(n.id), Entries: ents[:k]})
		for _, p := range ps[:k] {
			if err == nil {
				p.lastTick = n.ticks
			} else {
				p.lastTick = 0 // dropped (no leader): retried on a later tick
			}
		}
		ents, ps = ents[k:], ps[k:]
	}
}

func (n *Node) proposeConf(p *proposal) {
	if err := n.rn.ProposeConfChange(p.cc); err == nil {
		p.lastTick = n.ticks
	} else {
		p.lastTick = 0
	}
}

// retryProposals proposes again what has waited too long, or was dropped
// for want of a leader. The request ID is unchanged, so a proposal that
// did make it is applied once (see isDuplicate).
func (n *Node) retryProposals() {
	if n.lead == 0 {
		return
	}
	var ents []*pb.Entry
	var ps []*proposal
	for id, p := range n.waiters {
		if p.abandoned() {
			delete(n.waiters, id)
			continue
		}
		if p.lastTick != 0 && n.ticks-p.lastTick < uint64(n.cfg.ProposalRetryTicks) {
			continue
		}
		if n.st.index-p.firstApplied > n.cfg.DedupeWindow/2 {
			// Too late to re-propose safely: the first copy's request ID
			// may have left the dedupe window.
			continue
		}
		if p.cc != nil {
			n.proposeConf(p)
			continue
		}
		ents = append(ents, &pb.Entry{Data: p.data})
		ps = append(ps, p)
	}
	n.proposeEntries(ents, ps)
}

// issueRead sends one ReadIndex request, under a fresh random ID, for every
// pending reader (etcd#20418: an ID must never be reused).
func (n *Node) issueRead() {
	if len(n.pendingReads) == 0 || n.lead == 0 {
		return // no leader: wait for one (retryReads)
	}
	if n.role == raft.StateLeader && !n.committedInTerm() {
		// raft defers reads on a new leader until it commits an entry of
		// its term (etcd#7331), except in a one-voter cluster, where it
		// answers with a commit index that may miss acknowledged entries
		// after a restart. Hold reads here in every case; handleReady
		// issues them once the leader's entry commits.
		return
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	n.reads[id] = &readBatch{readers: n.pendingReads, sentAt: n.ticks}
	n.pendingReads = nil
	n.rn.ReadIndex(id[:])
}

// committedInTerm reports whether this node's commit index is an entry of
// its current term.
func (n *Node) committedInTerm() bool {
	bs := n.rn.BasicStatus()
	t, err := n.log.Term(bs.GetCommit())
	return err == nil && t == bs.GetTerm()
}

// retryReads re-sends, under new IDs, ReadIndex requests that went
// unanswered for ReadRetryTicks (all of them when the leader changed).
func (n *Node) retryReads(all bool) {
	for id, b := range n.reads {
		if all || n.ticks-b.sentAt >= uint64(n.cfg.ReadRetryTicks) {
			delete(n.reads, id)
			n.pendingReads = append(n.pendingReads, b.readers...)
		}
	}
	n.issueRead()
}

// handleReady handles one Ready in the order that keeps acknowledged writes
// safe: (1) a leader sends its appends and heartbeats at once, in parallel
// with its own disk write; (2) snapshot, entries and HardState are
// persisted, synced when raft says so; (3) only then go the messages that
// promise durability (append and vote responses: all of a follower's);
// (4) committed entries are applied, and reads released; (5) Advance.
func (n *Node) handleReady(rd raft.Ready) error {
	if rd.SoftState != nil {
		leaderChanged := rd.SoftState.Lead != n.lead
		n.lead, n.role = rd.SoftState.Lead, rd.SoftState.RaftState
		if leaderChanged {
			n.retryReads(true)
		}
	}
	n.stats.readies.Add(1)
	var late []*pb.Message
	if n.role == raft.StateLeader {
		var early []*pb.Message
		for _, m := range rd.Messages {
			if needsDurability(m.GetType()) {
				late = append(late, m)
			} else {
				early = append(early, m)
			}
		}
		n.send(early)
	} else {
		late = rd.Messages
	}

	snap := !raft.IsEmptySnap(rd.Snapshot)
	if snap {
		if err := n.installSnapshotState(rd.Snapshot); err != nil {
			return err
		}
	}
	if snap || len(rd.Entries) > 0 || !raft.IsEmptyHardState(rd.HardState) {
		b := n.db.NewBatch()
		if snap {
			if err := n.log.stageSnapshot(b, rd.Snapshot.GetMetadata()); err != nil {
				b.Close()
				return err
			}
		}
		if err := n.log.stageAppend(b, rd.Entries, rd.HardState); err != nil {
			b.Close()
			return err
		}
		wo := pebble.NoSync
		if rd.MustSync || snap {
			wo = pebble.Sync
			n.stats.syncs.Add(1)
		}
		n.stats.entries.Add(uint64(len(rd.Entries)))
		err := b.Commit(wo)
		b.Close()
		if err != nil {
			return fmt.Errorf("raft: persist log: %w", err)
		}
		if snap {
			n.log.snapshotInstalled(rd.Snapshot.GetMetadata())
			n.snapshotApplied()
		}
		n.log.appended(rd.Entries, rd.HardState)
	}
	n.send(late)

	for _, rs := range rd.ReadStates {
		var id [8]byte
		if len(rs.RequestCtx) != len(id) {
			continue
		}
		copy(id[:], rs.RequestCtx)
		if b := n.reads[id]; b != nil {
			delete(n.reads, id)
			for _, r := range b.readers {
				r.done <- readResult{index: rs.Index}
			}
		}
	}
	if len(rd.CommittedEntries) > 0 {
		if err := n.apply(rd.CommittedEntries); err != nil {
			return err
		}
	}
	n.rn.Advance(rd)
	if len(n.pendingReads) > 0 {
		n.issueRead()
	}
	n.publishStatus()
	return n.maybeCompact()
}

// needsDurability reports whether a message may only be sent once the Ready
// it came with is persisted: raft's own rule (see raft.send).
func needsDurability(t pb.MessageType) bool {
	return t == pb.MsgAppResp || t == pb.MsgVoteResp || t == pb.MsgPreVoteResp
}

func (n *Node) send(msgs []*pb.Message) {
	var out []*pb.Message
	for _, m := range msgs {
		if m.GetType() == pb.MsgSnap {
			n.sendSnapshot(m)
			continue
		}
		out = append(out, m)
	}
	if len(out) > 0 {
		n.tr.Send(out)
	}
}

// sendSnapshot ships the state range as of now, not as of the truncation
// point raft asked for: the metadata is rewritten from the Pebble snapshot's
// own applied state, so state and metadata match exactly. The log is not
// compacted past it while it is in flight, so a slow transfer cannot be
// outrun by compaction (consul#9609).
func (n *Node) sendSnapshot(m *pb.Message) {
	to := m.GetTo()
	snap := n.db.NewSnapshot()
	v, ok, err := dbGet(snap, keyApplied)
	var st appliedState
	if err == nil && ok {
		st, err = decodeApplied(v)
	}
	if err != nil || !ok {
		snap.Close()
		n.rn.ReportSnapshot(to, raft.SnapshotFailure)
		return
	}
	body, err := newSnapshotReader(snap)
	if err != nil {
		n.rn.ReportSnapshot(to, raft.SnapshotFailure)
		return
	}
	m.Snapshot = &pb.Snapshot{Metadata: &pb.SnapshotMetadata{
		Index: new(st.index), Term: new(st.term), ConfState: st.conf,
	}}
	n.snapInflight[to] = st.index
	n.stats.snapshotsSent.Add(1)
	n.tr.SendSnapshot(m, body)
}

// installSnapshotState replaces the state range with a received snapshot,
// atomically (one ingest that excises the old range).
func (n *Node) installSnapshotState(s *pb.Snapshot) error {
	idx := s.GetMetadata().GetIndex()
	path, ok := n.snapFiles[idx]
	if !ok {
		return fmt.Errorf("%w: raft restored snapshot %d that was never received", ErrCorrupt, idx)
	}
	delete(n.snapFiles, idx)
	if _, err := n.db.IngestAndExcise(context.Background(), []string{path}, nil, nil,
		pebble.KeyRange{Start: stateStart, End: stateEnd}); err != nil {
		return fmt.Errorf("raft: install snapshot: %w", err)
	}
	_ = n.cfg.FS.Remove(path)
	n.stats.snapshotsInstalled.Add(1)
	return nil
}

// snapshotApplied reloads what the loop keeps of the state after a snapshot
// replaced it.
func (n *Node) snapshotApplied() {
	v, ok, err := dbGet(n.db, keyApplied)
	if err == nil && ok {
		if st, err := decodeApplied(v); err == nil {
			n.st = st
		}
	}
	n.log.setConf(n.st.conf)
	n.removedIDs = map[uint64]bool{}
	if it, err := n.db.NewIter(&pebble.IterOptions{LowerBound: keyRemoved, UpperBound: prefixEnd(keyRemoved)}); err == nil {
		for ok := it.First(); ok; ok = it.Next() {
			n.removedIDs[binary.BigEndian.Uint64(it.Key()[len(keyRemoved):])] = true
		}
		it.Close()
	}
	// Proposals the snapshot already contains are done.
	for id, p := range n.waiters {
		if _, ok, _ := dbGet(n.db, reqKey(id)); ok {
			p.done <- nil
			delete(n.waiters, id)
		}
	}
	n.setApplied(n.st.index)
	if n.cfg.OnApply != nil {
		n.cfg.OnApply(nil)
	}
}

func (n *Node) dropUnusedSnapshots() {
	for idx, path := range n.snapFiles {
		_ = n.cfg.FS.Remove(path)
		delete(n.snapFiles, idx)
	}
}

// apply applies committed entries in one Pebble batch that also records the
// new applied state (etcd#13766: never one without the other). Entries the
// state already covers (after a snapshot) are skipped.
func (n *Node) apply(ents []*pb.Entry) error {
	b := n.db.NewBatch()
	defer b.Close()
	st := n.st
	inBatch := map[reqID]uint64{}
	var changed []string
	var done []*proposal
	var doneErr []error
	selfRemoved := false
	for _, e := range ents {
		if e.GetIndex() <= st.index {
			continue
		}
		switch e.GetType() {
		case pb.EntryNormal:
			if len(e.GetData()) == 0 {
				break // a new leader's empty entry
			}
			cmd, err := decodeCommand(e.GetData())
			if err != nil {
				break // deterministic on every node: skipped everywhere
			}
			dup, err := n.isDuplicate(cmd.id, e.GetIndex(), inBatch)
			if err != nil {
				return err
			}
			if !dup {
				for _, o := range cmd.ops {
					if n.cfg.OnApply != nil {
						changed = append(changed, o.key)
					}
					if o.put {
						err = b.Set(kvKey(o.key), o.value, nil)
					} else {
						err = b.Delete(kvKey(o.key), nil)
					}
					if err != nil {
						return err
					}
				}
				_ = b.Set(reqKey(cmd.id), binary.BigEndian.AppendUint64(nil, e.GetIndex()), nil)
				_ = b.Set(reqOrderKey(e.GetIndex(), cmd.id), nil, nil)
				inBatch[cmd.id] = e.GetIndex()
			}
			if p := n.waiters[cmd.id]; p != nil {
				delete(n.waiters, cmd.id)
				done, doneErr = append(done, p), append(doneErr, nil)
			}
		case pb.EntryConfChange, pb.EntryConfChangeV2:
			cc, err := decodeConfChange(e)
			if err != nil {
				break
			}
			var result error
			for _, c := range cc.GetChanges() {
				t := c.GetType()
				if (t == pb.ConfChangeAddNode || t == pb.ConfChangeAddLearnerNode) && n.removedIDs[c.GetNodeId()] {
					result = ErrIDReused
				}
			}
			if result == nil {
				st.conf = n.rn.ApplyConfChange(cc)
				for _, c := range cc.GetChanges() {
					if c.GetType() == pb.ConfChangeRemoveNode {
						n.removedIDs[c.GetNodeId()] = true
						_ = b.Set(removedKey(c.GetNodeId()), nil, nil)
						if c.GetNodeId() == n.id {
							selfRemoved = true
						}
					}
				}
			}
			var id reqID
			if len(cc.GetContext()) == len(id) {
				copy(id[:], cc.GetContext())
				if p := n.waiters[id]; p != nil {
					delete(n.waiters, id)
					done, doneErr = append(done, p), append(doneErr, result)
				}
			}
		}
		st.index, st.term = e.GetIndex(), e.GetTerm()
	}
	if st.index == n.st.index {
		return nil
	}
	if err := b.Set(keyApplied, st.encode(), nil); err != nil {
		return err
	}
	wo := pebble.NoSync
	if n.cfg.SyncApply {
		wo = pebble.Sync
	}
	if err := b.Commit(wo); err != nil {
		return fmt.Errorf("raft: apply: %w", err)
	}
	n.st = st
	n.log.setConf(st.conf)
	for i, p := range done {
		p.done <- doneErr[i]
	}
	if selfRemoved {
		n.markRemoved()
	}
	n.setApplied(st.index)
	if n.cfg.OnApply != nil && len(changed) > 0 {
		n.cfg.OnApply(changed)
	}
	return nil
}

// isDuplicate reports whether request id, about to be applied at index, was
// applied already within the dedupe window. The answer depends only on the
// log, so every node gives the same one: eviction removes only IDs that fall
// outside the window anyway.
func (n *Node) isDuplicate(id reqID, index uint64, inBatch map[reqID]uint64) (bool, error) {
	if _, ok := inBatch[id]; ok {
		return true, nil
	}
	v, ok, err := dbGet(n.db, reqKey(id))
	if err != nil || !ok || len(v) != 8 {
		return false, err
	}
	return binary.BigEndian.Uint64(v)+n.cfg.DedupeWindow >= index, nil
}

func decodeConfChange(e *pb.Entry) (*pb.ConfChangeV2, error) {
	if e.GetType() == pb.EntryConfChange {
		var cc pb.ConfChange
		if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
			return nil, err
		}
		return cc.AsV2(), nil
	}
	var cc pb.ConfChangeV2
	if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
		return nil, err
	}
	return &cc, nil
}

// maybeCompact truncates the log once SnapshotEntries entries are applied
// past the truncation point, keeping KeepEntries, and never past a snapshot
// still being sent. It also evicts request IDs older than the dedupe window.
func (n *Node) maybeCompact() error {
	trunc := n.log.truncState()
	if n.st.index < trunc.index+n.cfg.SnapshotEntries {
		return nil
	}
	target := n.st.index - n.cfg.KeepEntries
	for _, idx := range n.snapInflight {
		target = min(target, idx)
	}
	if target <= trunc.index {
		return nil
	}
	if err := n.log.compact(target); err != nil {
		return fmt.Errorf("raft: compact log: %w", err)
	}
	if n.st.index <= n.cfg.DedupeWindow {
		return nil
	}
	upper := reqOrderKey(n.st.index-n.cfg.DedupeWindow, reqID{})
	it, err := n.db.NewIter(&pebble.IterOptions{LowerBound: keyReqOrder, UpperBound: upper})
	if err != nil {
		return err
	}
	b := n.db.NewBatch()
	defer b.Close()
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		var id reqID
		copy(id[:], k[len(keyReqOrder)+8:])
		_ = b.Delete(reqKey(id), nil)
	}
	if err := it.Close(); err != nil {
		return err
	}
	_ = b.DeleteRange(keyReqOrder, upper, nil)
	return b.Commit(pebble.NoSync)
}

func (n *Node) setApplied(idx uint64) {
	n.mu.Lock()
	n.applied = idx
	ws := n.appliedWs[:0]
	for _, w := range n.appliedWs {
		if w.index <= idx {
			close(w.ch)
		} else {
			ws = append(ws, w)
		}
	}
	n.appliedWs = ws
	n.mu.Unlock()
}

func (n *Node) markRemoved() {
	n.mu.Lock()
	n.removed = true
	n.mu.Unlock()
	for id, p := range n.waiters {
		p.done <- ErrRemoved
		delete(n.waiters, id)
	}
	for id, b := range n.reads {
		for _, r := range b.readers {
			r.done <- readResult{err: ErrRemoved}
		}
		delete(n.reads, id)
	}
	for _, r := range n.pendingReads {
		r.done <- readResult{err: ErrRemoved}
	}
	n.pendingReads = nil
}

func (n *Node) isRemoved() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.removed
}

func (n *Node) publishStatus() {
	bs := n.rn.BasicStatus()
	cs := pb.EnsureConfState(n.st.conf)
	n.mu.Lock()
	n.status = Status{
		ID: n.id, Leader: bs.Lead, Term: bs.GetTerm(), Role: bs.RaftState,
		Commit: bs.GetCommit(), Applied: n.st.index,
		Voters: append([]uint64(nil), cs.Voters...), Learners: append([]uint64(nil), cs.Learners...),
		Removed: n.removed,
	}
	n.mu.Unlock()
}

// fail stops the node after a storage error: nothing more is persisted or
// applied, and every caller gets ErrStopped.
func (n *Node) fail(err error) {
	n.mu.Lock()
	n.fatal = err
	n.mu.Unlock()
	n.cfg.Logger.Errorf("raft: node %d stopped: %v", n.id, err)
}

// Status returns the node's view of the cluster.
func (n *Node) Status() Status {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.status
	s.Removed = n.removed
	return s
}

// ID returns the node's raft ID.
func (n *Node) ID() uint64 { return n.id }

// Tick advances the node's clock by one tick; for Config.ManualTick.
func (n *Node) Tick() {
	select {
	case n.tickc <- struct{}{}:
	case <-n.donec:
	}
}

// do runs f on the raft goroutine and waits for it.
func (n *Node) do(ctx context.Context, f func()) error {
	done := make(chan struct{})
	select {
	case n.ctrlc <- func() { f(); close(done) }:
	case <-n.donec:
		return n.closedErr()
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-n.donec:
		return n.closedErr()
	}
}

// Campaign makes the node stand for election at once (tests, step-up).
func (n *Node) Campaign(ctx context.Context) error {
	return n.do(ctx, func() { _ = n.rn.Campaign() })
}

// TransferLeadership asks the leader to hand over to transferee.
func (n *Node) TransferLeadership(ctx context.Context, transferee uint64) error {
	return n.do(ctx, func() { n.rn.TransferLeader(transferee) })
}

// ErrNoTransferee: StepDown found no other voter to hand leadership to.
var ErrNoTransferee = errors.New("raft: no other voter can take over")

// StepDown hands leadership to the voter whose log is the most up to date
// and returns once this node no longer leads (sys/step-down). It fails
// when this node does not lead, when it is the only voter, or when no
// other node has taken over within two election timeouts.
func (n *Node) StepDown(ctx context.Context) error {
	var to uint64
	var leads bool
	if err := n.do(ctx, func() {
		st := n.rn.Status()
		if leads = st.RaftState == raft.StateLeader; !leads {
			return
		}
		var best uint64
		for id, pr := range st.Progress {
			if id != n.id && !pr.IsLearner && (to == 0 || pr.Match > best) {
				to, best = id, pr.Match
			}
		}
		if to != 0 {
			n.rn.TransferLeader(to)
		}
	}); err != nil {
		return err
	}
	switch {
	case !leads:
		return errors.New("raft: this node does not lead")
	case to == 0:
		return ErrNoTransferee
	}
	deadline := time.Now().Add(2 * time.Duration(n.cfg.ElectionTicks) * n.cfg.TickInterval)
	for n.Status().Leader == n.id {
		if time.Now().After(deadline) {
			return fmt.Errorf("raft: node %d did not take over in time", to)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(n.cfg.TickInterval):
		}
	}
	return nil
}

// AddLearner adds a non-voting member, which catches up (by snapshot) before
// it is promoted with AddVoter. It returns once the change is applied here.
func (n *Node) AddLearner(ctx context.Context, id uint64) error {
	return n.changeConf(ctx, pb.ConfChangeAddLearnerNode, id)
}

// AddVoter adds a voting member, or promotes a learner.
func (n *Node) AddVoter(ctx context.Context, id uint64) error {
	return n.changeConf(ctx, pb.ConfChangeAddNode, id)
}

// RemoveNode removes a member. Its ID can never be used again.
func (n *Node) RemoveNode(ctx context.Context, id uint64) error {
	return n.changeConf(ctx, pb.ConfChangeRemoveNode, id)
}

func (n *Node) changeConf(ctx context.Context, t pb.ConfChangeType, id uint64) error {
	if id == 0 {
		return errors.New("raft: node ID 0")
	}
	rid := n.newReqID()
	cc := &pb.ConfChangeV2{
		Transition: pb.ConfChangeTransitionAuto.Enum(),
		Changes:    []*pb.ConfChangeSingle{{Type: t.Enum(), NodeId: new(id)}},
		Context:    rid[:],
	}
	return n.submit(ctx, &proposal{id: rid, cc: cc, done: make(chan error, 1)})
}

// propose replicates ops and returns once they are committed and applied on
// this node.
func (n *Node) propose(ctx context.Context, ops []op) error {
	c := command{id: n.newReqID(), ops: ops}
	return n.submit(ctx, &proposal{id: c.id, data: c.encode(), done: make(chan error, 1)})
}

func (n *Node) submit(ctx context.Context, p *proposal) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ctx, cancel := n.bound(ctx)
	defer cancel()
	if !n.enqueue(func() { n.propQ = append(n.propQ, p) }) {
		return n.closedErr()
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		p.gaveUp.Store(true)
		if p.state.CompareAndSwap(propPending, propAbandoned) {
			return n.timeoutErr(ctx, ErrNoLeader) // never reached raft
		}
		return n.timeoutErr(ctx, ErrTimeout)
	case <-n.donec:
		return n.closedErr()
	}
}

// linearize returns once this node's state reflects every write that
// completed before it was called: a ReadIndex round (the leader confirms its
// leadership with a quorum, and has committed an entry of its term), then a
// wait for this node to apply up to the index it returns.
func (n *Node) linearize(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ctx, cancel := n.bound(ctx)
	defer cancel()
	r := &readReq{done: make(chan readResult, 1)}
	if !n.enqueue(func() { n.readQ = append(n.readQ, r) }) {
		return n.closedErr()
	}
	var res readResult
	select {
	case res = <-r.done:
	case <-ctx.Done():
		if n.Status().Leader == 0 {
			return n.timeoutErr(ctx, ErrNoLeader)
		}
		return n.timeoutErr(ctx, ErrTimeout)
	case <-n.donec:
		return n.closedErr()
	}
	if res.err != nil {
		return res.err
	}
	return n.waitApplied(ctx, res.index)
}

func (n *Node) waitApplied(ctx context.Context, idx uint64) error {
	n.mu.Lock()
	if n.applied >= idx {
		n.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	n.appliedWs = append(n.appliedWs, appliedWaiter{index: idx, ch: ch})
	n.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return n.timeoutErr(ctx, ErrTimeout)
	case <-n.donec:
		return n.closedErr()
	}
}

// bound gives ctx the node's RequestTimeout unless it has an earlier deadline.
func (n *Node) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, n.cfg.RequestTimeout)
}

// timeoutErr names why a wait ended: the caller's own context, or the node's
// bounded wait (reason).
func (n *Node) timeoutErr(ctx context.Context, reason error) error {
	if n.isRemoved() {
		return ErrRemoved
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.DeadlineExceeded) {
		return cause // canceled by the caller
	}
	return fmt.Errorf("%w (%w)", reason, context.DeadlineExceeded)
}

func (n *Node) enqueue(add func()) bool {
	if n.isRemoved() {
		return false
	}
	n.qmu.Lock()
	if n.closedQ {
		n.qmu.Unlock()
		return false
	}
	add()
	n.qmu.Unlock()
	select {
	case n.wakec <- struct{}{}:
	default:
	}
	return true
}

func (n *Node) closedErr() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.removed:
		return ErrRemoved
	case n.fatal != nil:
		return fmt.Errorf("%w: %v", ErrStopped, n.fatal)
	}
	return storage.ErrClosed
}

func (n *Node) newReqID() reqID {
	var id reqID
	binary.BigEndian.PutUint64(id[:8], n.id)
	binary.BigEndian.PutUint64(id[8:], n.reqSeq.Add(1))
	return id
}

// Close stops the node: the raft goroutine, the transport (and every
// goroutine it started), then the database. Calls in flight return
// storage.ErrClosed. It returns the storage error that stopped the node
// early, if any.
func (n *Node) Close() error {
	if n.stopped.Swap(true) {
		return nil
	}
	n.halt()
	err := n.tr.Close()
	n.recvWG.Wait()
	n.dbMu.Lock()
	if cerr := n.db.Close(); err == nil {
		err = cerr
	}
	n.db = nil
	n.dbMu.Unlock()
	n.mu.Lock()
	fatal := n.fatal
	n.mu.Unlock()
	if fatal != nil {
		return fatal
	}
	return err
}

// halt stops the raft goroutine, so nothing more is written or
// acknowledged; Close finishes the job. Tests crash a node by halting it,
// cloning its filesystem without unsynced data, then closing it.
func (n *Node) halt() {
	n.haltOnce.Do(func() {
		n.qmu.Lock()
		n.closedQ = true
		n.qmu.Unlock()
		close(n.stopc)
		<-n.donec
	})
}

// handler is what the Transport delivers to.
type handler struct{ n *Node }

func (h handler) Step(ctx context.Context, m *pb.Message) error {
	select {
	case h.n.recvc <- m:
		return nil
	case <-h.n.stopc:
		return storage.ErrClosed
	default:
		return errors.New("raft: receive queue full")
	}
}

// ReportUnreachable never blocks (a transport may call it from Send, on the
// raft goroutine); a report lost to a full queue only delays raft's probe.
func (h handler) ReportUnreachable(id uint64) {
	select {
	case h.n.unreachc <- id:
	default:
	}
}

// ReportSnapshot must reach raft, or the peer would wait for its snapshot
// until the next heartbeat round reveals its state.
func (h handler) ReportSnapshot(id uint64, status raft.SnapshotStatus) {
	select {
	case h.n.snapStatusc <- snapStatus{id, status}:
	case <-h.n.stopc:
	}
}

// ReceiveSnapshot writes the stream into an sstable, then hands the message
// to raft. The state range is replaced only if raft accepts the snapshot
// (handleReady), atomically, before raft is told it is persisted.
func (h handler) ReceiveSnapshot(ctx context.Context, m *pb.Message, body io.Reader) error {
	n := h.n
	n.qmu.Lock()
	if n.closedQ {
		n.qmu.Unlock()
		return storage.ErrClosed
	}
	n.recvWG.Add(1)
	n.qmu.Unlock()
	defer n.recvWG.Done()
	if n.isRemoved() {
		return ErrRemoved
	}
	meta := m.GetSnapshot().GetMetadata()
	path := n.cfg.FS.PathJoin(n.snapIn, fmt.Sprintf("%016x-%016x-%d.sst", meta.GetIndex(), meta.GetTerm(), n.reqSeq.Add(1)))
	st, err := writeSnapshotSST(n.cfg.FS, path, n.wo, body)
	if err != nil {
		return err
	}
	if st.index != meta.GetIndex() || st.term != meta.GetTerm() {
		_ = n.cfg.FS.Remove(path)
		return fmt.Errorf("%w: state at %d/%d, metadata says %d/%d", ErrBadSnapshot, st.index, st.term, meta.GetIndex(), meta.GetTerm())
	}
	select {
	case n.snapc <- receivedSnap{msg: m, path: path}:
		return nil
	case <-n.stopc:
		_ = n.cfg.FS.Remove(path)
		return storage.ErrClosed
	case <-ctx.Done():
		_ = n.cfg.FS.Remove(path)
		return ctx.Err()
	}
}

// dbEmpty reports whether db holds no key at all.
func dbEmpty(db *pebble.DB) (bool, error) {
	it, err := db.NewIter(nil)
	if err != nil {
		return false, err
	}
	empty := !it.First()
	return empty, it.Close()
}
