package raft

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

// logStore is raft.Storage over the raft range of the node's Pebble DB. The
// raft goroutine is its only writer; mu lets Status and the snapshot sender
// read it from elsewhere. Recent entries are kept in memory, so appends to
// followers and Term look-ups rarely touch Pebble.
type logStore struct {
	db       *pebble.DB
	cacheMax int

	mu    sync.Mutex // protects the fields below
	hs    *pb.HardState
	trunc truncState
	last  uint64
	conf  *pb.ConfState // membership as of the applied state
	cache []*pb.Entry   // the log's tail: cache[i].Index == last-len(cache)+1+i
}

var _ raft.Storage = (*logStore)(nil)

// loadLogStore reads the raft range.
func loadLogStore(db *pebble.DB, conf *pb.ConfState, cacheMax int) (*logStore, error) {
	s := &logStore{db: db, cacheMax: cacheMax, hs: &pb.HardState{}, conf: conf}
	if v, ok, err := dbGet(db, keyHardState); err != nil {
		return nil, err
	} else if ok {
		if err := proto.Unmarshal(v, s.hs); err != nil {
			return nil, fmt.Errorf("%w: hard state: %v", ErrCorrupt, err)
		}
	}
	if v, ok, err := dbGet(db, keyTrunc); err != nil {
		return nil, err
	} else if ok {
		if s.trunc, err = decodeTrunc(v); err != nil {
			return nil, err
		}
	}
	s.last = s.trunc.index
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: keyLogPrefix, UpperBound: prefixEnd(keyLogPrefix)})
	if err != nil {
		return nil, err
	}
	if it.Last() {
		e := &pb.Entry{}
		if err := proto.Unmarshal(it.Value(), e); err != nil {
			it.Close()
			return nil, fmt.Errorf("%w: log entry: %v", ErrCorrupt, err)
		}
		if e.GetIndex() > s.last {
			s.last = e.GetIndex()
		}
	}
	if err := it.Close(); err != nil {
		return nil, err
	}
	return s, nil
}

// InitialState implements raft.Storage.
func (s *logStore) InitialState() (*pb.HardState, *pb.ConfState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return proto.Clone(s.hs).(*pb.HardState), proto.Clone(pb.EnsureConfState(s.conf)).(*pb.ConfState), nil
}

// FirstIndex implements raft.Storage.
func (s *logStore) FirstIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.trunc.index + 1, nil
}

// LastIndex implements raft.Storage.
func (s *logStore) LastIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, nil
}

// Term implements raft.Storage.
func (s *logStore) Term(i uint64) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case i == s.trunc.index:
		return s.trunc.term, nil
	case i < s.trunc.index:
		return 0, raft.ErrCompacted
	case i > s.last:
		return 0, raft.ErrUnavailable
	}
	if e := s.cachedLocked(i); e != nil {
		return e.GetTerm(), nil
	}
	v, ok, err := dbGet(s.db, logKey(i))
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, raft.ErrUnavailable
	}
	e := &pb.Entry{}
	if err := proto.Unmarshal(v, e); err != nil {
		return 0, fmt.Errorf("%w: log entry %d: %v", ErrCorrupt, i, err)
	}
	return e.GetTerm(), nil
}

func (s *logStore) cachedLocked(i uint64) *pb.Entry {
	if len(s.cache) == 0 {
		return nil
	}
	first := s.last - uint64(len(s.cache)) + 1
	if i < first || i > s.last {
		return nil
	}
	return s.cache[i-first]
}

// Entries implements raft.Storage.
func (s *logStore) Entries(lo, hi, maxSize uint64) ([]*pb.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if lo <= s.trunc.index {
		return nil, raft.ErrCompacted
	}
	if hi > s.last+1 || lo >= hi {
		return nil, raft.ErrUnavailable
	}
	var out []*pb.Entry
	var size uint64
	add := func(e *pb.Entry) bool {
		size += uint64(proto.Size(e))
		if len(out) > 0 && size > maxSize {
			return false
		}
		out = append(out, e)
		return true
	}
	if len(s.cache) > 0 && lo >= s.last-uint64(len(s.cache))+1 {
		for i := lo; i < hi; i++ {
			if !add(s.cachedLocked(i)) {
				break
			}
		}
		return out, nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: logKey(lo), UpperBound: logKey(hi)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	next := lo
	for ok := it.First(); ok; ok = it.Next() {
		e := &pb.Entry{}
		if err := proto.Unmarshal(it.Value(), e); err != nil {
			return nil, fmt.Errorf("%w: log entry: %v", ErrCorrupt, err)
		}
		if e.GetIndex() != next {
			return nil, raft.ErrUnavailable
		}
		next++
		if !add(e) {
			break
		}
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, raft.ErrUnavailable
	}
	return out, nil
}

// Snapshot implements raft.Storage. It names the truncation point; the
// snapshot actually shipped is taken when the MsgSnap is sent, from a Pebble
// snapshot of the state range, and its metadata is rewritten to match (see
// Node.sendSnapshot), as etcd does with its merged snapshots.
func (s *logStore) Snapshot() (*pb.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.trunc.index == 0 {
		return nil, raft.ErrSnapshotTemporarilyUnavailable
	}
	return &pb.Snapshot{Metadata: &pb.SnapshotMetadata{
		Index:     new(s.trunc.index),
		Term:      new(s.trunc.term),
		ConfState: proto.Clone(pb.EnsureConfState(s.conf)).(*pb.ConfState),
	}}, nil
}

// stageAppend adds entries and the hard state to b. Entries past the last new
// one are deleted: raft only rewrites a suffix of the log.
func (s *logStore) stageAppend(b *pebble.Batch, ents []*pb.Entry, hs *pb.HardState) error {
	if len(ents) > 0 {
		s.mu.Lock()
		last := s.last
		s.mu.Unlock()
		for _, e := range ents {
			v, err := proto.Marshal(e)
			if err != nil {
				return err
			}
			if err := b.Set(logKey(e.GetIndex()), v, nil); err != nil {
				return err
			}
		}
		if newLast := ents[len(ents)-1].GetIndex(); newLast < last {
			if err := b.DeleteRange(logKey(newLast+1), logKey(last+1), nil); err != nil {
				return err
			}
		}
	}
	if !raft.IsEmptyHardState(hs) {
		v, err := proto.Marshal(hs)
		if err != nil {
			return err
		}
		if err := b.Set(keyHardState, v, nil); err != nil {
			return err
		}
	}
	return nil
}

// appended records in memory what stageAppend wrote, once it is committed.
func (s *logStore) appended(ents []*pb.Entry, hs *pb.HardState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !raft.IsEmptyHardState(hs) {
		s.hs = proto.Clone(hs).(*pb.HardState)
	}
	if len(ents) == 0 {
		return
	}
	first, newLast := ents[0].GetIndex(), ents[len(ents)-1].GetIndex()
	// Keep the cached entries before first, if they are contiguous with it.
	if len(s.cache) > 0 {
		cFirst := s.last - uint64(len(s.cache)) + 1
		switch {
		case first > s.last+1 || first < cFirst:
			s.cache = s.cache[:0:0]
		default:
			s.cache = s.cache[: first-cFirst : first-cFirst]
		}
	}
	s.cache = append(s.cache, ents...)
	if over := len(s.cache) - s.cacheMax; over > 0 {
		s.cache = append([]*pb.Entry(nil), s.cache[over:]...)
	}
	s.last = newLast
}

// stageSnapshot adds to b the raft side of installing a snapshot: the whole
// log is dropped and the truncation point moves to the snapshot.
func (s *logStore) stageSnapshot(b *pebble.Batch, meta *pb.SnapshotMetadata) error {
	if err := b.DeleteRange(keyLogPrefix, prefixEnd(keyLogPrefix), nil); err != nil {
		return err
	}
	return b.Set(keyTrunc, truncState{meta.GetIndex(), meta.GetTerm()}.encode(), nil)
}

func (s *logStore) snapshotInstalled(meta *pb.SnapshotMetadata) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trunc = truncState{meta.GetIndex(), meta.GetTerm()}
	s.last = meta.GetIndex()
	s.cache = nil
	s.conf = proto.Clone(pb.EnsureConfState(meta.GetConfState())).(*pb.ConfState)
}

// setConf records the membership of the applied state.
func (s *logStore) setConf(cs *pb.ConfState) {
	s.mu.Lock()
	s.conf = cs
	s.mu.Unlock()
}

// compact drops log entries up to and including index, which must be
// applied. The write is synced; as Pebble has one WAL, that also makes
// every earlier unsynced apply durable.
func (s *logStore) compact(index uint64) error {
	term, err := s.Term(index)
	if err != nil {
		return err
	}
	s.mu.Lock()
	from := s.trunc.index + 1
	s.mu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(logKey(from), logKey(index+1), nil); err != nil {
		return err
	}
	if err := b.Set(keyTrunc, truncState{index, term}.encode(), nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	s.mu.Lock()
	s.trunc = truncState{index, term}
	s.mu.Unlock()
	return nil
}

func (s *logStore) truncState() truncState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.trunc
}

func (s *logStore) hardState() *pb.HardState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return proto.Clone(s.hs).(*pb.HardState)
}

func (s *logStore) lastIndex() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// dbGet returns a copy of the value under key.
func dbGet(r pebble.Reader, key []byte) ([]byte, bool, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := append([]byte{}, v...)
	return out, true, closer.Close()
}

// prefixEnd returns the smallest key greater than every key that starts with
// prefix, or nil when there is none.
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
