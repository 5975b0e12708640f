package raft

import (
	"encoding/binary"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	pb "go.etcd.io/raft/v3/raftpb"
)

// Key layout of the node's one Pebble database. The first byte names the
// range; nothing outside a range's owner reads or writes it.
//
//	0x01 'i'                    node identity (node ID), written once
//	0x02 'h'                    raft HardState (proto)
//	0x02 't'                    truncation state: index and term of the last
//	                            entry removed from the log (16 bytes)
//	0x02 'l' <index be64>       raft log entry (proto)
//	0x03 'a'                    applied state: index, term, ConfState of the
//	                            last applied entry, written in the same batch
//	                            as the state it describes
//	0x03 'k' <key>              a storage.Backend key and its value
//	0x03 'q' <request id>       dedupe: index at which a request was applied
//	0x03 'r' <index be64> <id>  dedupe eviction order
//	0x03 'x' <node id be64>     a node ID removed from the cluster (never reused)
//
// Range 0x03 is the replicated state machine: a snapshot is exactly that
// range, and installing one replaces it atomically.
const (
	rangeMeta  = 0x01
	rangeRaft  = 0x02
	rangeState = 0x03
)

var (
	keyNodeID    = []byte{rangeMeta, 'i'}
	keyHardState = []byte{rangeRaft, 'h'}
	keyTrunc     = []byte{rangeRaft, 't'}
	keyLogPrefix = []byte{rangeRaft, 'l'}
	keyApplied   = []byte{rangeState, 'a'}
	keyKVPrefix  = []byte{rangeState, 'k'}
	keyReqPrefix = []byte{rangeState, 'q'}
	keyReqOrder  = []byte{rangeState, 'r'}
	keyRemoved   = []byte{rangeState, 'x'}

	stateStart = []byte{rangeState}
	stateEnd   = []byte{rangeState + 1}
)

func logKey(index uint64) []byte {
	k := make([]byte, 0, len(keyLogPrefix)+8)
	k = append(k, keyLogPrefix...)
	return binary.BigEndian.AppendUint64(k, index)
}

func kvKey(key string) []byte {
	k := make([]byte, 0, len(keyKVPrefix)+len(key))
	return append(append(k, keyKVPrefix...), key...)
}

func reqKey(id reqID) []byte {
	return append(append([]byte(nil), keyReqPrefix...), id[:]...)
}

func reqOrderKey(index uint64, id reqID) []byte {
	k := binary.BigEndian.AppendUint64(append([]byte(nil), keyReqOrder...), index)
	return append(k, id[:]...)
}

func removedKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), keyRemoved...), id)
}

// truncState is the index and term of the last entry removed from the log:
// the log holds entries (index, lastIndex].
type truncState struct{ index, term uint64 }

func (t truncState) encode() []byte {
	b := binary.BigEndian.AppendUint64(nil, t.index)
	return binary.BigEndian.AppendUint64(b, t.term)
}

func decodeTrunc(b []byte) (truncState, error) {
	if len(b) != 16 {
		return truncState{}, fmt.Errorf("%w: truncation state has %d bytes", ErrCorrupt, len(b))
	}
	return truncState{binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])}, nil
}

// appliedState describes the state machine: the last entry applied to it and
// the membership that entry left. It is stored in the state range, in the
// same Pebble batch as the writes of the entries it covers, so the two can
// never disagree (etcd#13766).
type appliedState struct {
	index, term uint64
	conf        *pb.ConfState
}

const appliedVersion = 1

func (a appliedState) encode() []byte {
	cs, err := proto.Marshal(pb.EnsureConfState(a.conf))
	if err != nil {
		panic(err) // marshaling a valid message cannot fail
	}
	b := []byte{appliedVersion}
	b = binary.BigEndian.AppendUint64(b, a.index)
	b = binary.BigEndian.AppendUint64(b, a.term)
	return append(b, cs...)
}

func decodeApplied(b []byte) (appliedState, error) {
	if len(b) < 17 || b[0] != appliedVersion {
		return appliedState{}, fmt.Errorf("%w: applied state", ErrCorrupt)
	}
	cs := &pb.ConfState{}
	if err := proto.Unmarshal(b[17:], cs); err != nil {
		return appliedState{}, fmt.Errorf("%w: applied conf state: %v", ErrCorrupt, err)
	}
	return appliedState{index: binary.BigEndian.Uint64(b[1:]), term: binary.BigEndian.Uint64(b[9:]), conf: cs}, nil
}

// reqID names one proposal so that the proposer can recognise it when it is
// applied, and so that a proposal delivered twice (a re-proposal after a lost
// forward, or a duplicated message) takes effect once.
type reqID [16]byte

// Command encoding (the Data of a normal entry):
//
//	version byte (1) | request id (16) | uvarint op count | ops
//	op: kind byte | uvarint key length | key | [uvarint value length | value]
const cmdVersion = 1

type command struct {
	id  reqID
	ops []op
}

type op struct {
	put   bool
	key   string
	value []byte
}

func (c *command) encode() []byte {
	size := 1 + 16 + binary.MaxVarintLen64
	for _, o := range c.ops {
		size += 1 + 2*binary.MaxVarintLen64 + len(o.key) + len(o.value)
	}
	b := make([]byte, 0, size)
	b = append(b, cmdVersion)
	b = append(b, c.id[:]...)
	b = binary.AppendUvarint(b, uint64(len(c.ops)))
	for _, o := range c.ops {
		if o.put {
			b = append(b, 'p')
		} else {
			b = append(b, 'd')
		}
		b = binary.AppendUvarint(b, uint64(len(o.key)))
		b = append(b, o.key...)
		if o.put {
			b = binary.AppendUvarint(b, uint64(len(o.value)))
			b = append(b, o.value...)
		}
	}
	return b
}

var errBadCommand = errors.New("malformed command")

func decodeCommand(b []byte) (command, error) {
	var c command
	if len(b) < 17 || b[0] != cmdVersion {
		return c, errBadCommand
	}
	copy(c.id[:], b[1:17])
	b = b[17:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return c, errBadCommand
	}
	b = b[k:]
	c.ops = make([]op, 0, n)
	readBytes := func() ([]byte, bool) {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return nil, false
		}
		v := b[k : k+int(l)]
		b = b[k+int(l):]
		return v, true
	}
	for range n {
		if len(b) == 0 {
			return c, errBadCommand
		}
		kind := b[0]
		b = b[1:]
		key, ok := readBytes()
		if !ok || (kind != 'p' && kind != 'd') {
			return c, errBadCommand
		}
		o := op{put: kind == 'p', key: string(key)}
		if o.put {
			if o.value, ok = readBytes(); !ok {
				return c, errBadCommand
			}
		}
		c.ops = append(c.ops, o)
	}
	if len(b) != 0 {
		return c, errBadCommand
	}
	return c, nil
}
