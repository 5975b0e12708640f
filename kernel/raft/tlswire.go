package raft

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"google.golang.org/protobuf/proto"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

// Wire format of the TLS transport (version 1). Every connection is TLS 1.3
// with ALPN "ward-raft", opened by the sender; data flows one way, from the
// dialer to the listener, except the listener's short answers.
//
//	preface (dialer):   "WRFT" | version u8 | kind u8 | 0 u16 | from u64 | to u64
//	answer (listener):  version u8 | status u8  (0 accepted; see wireStatus)
//
// kind 1, messages: then frames until the connection closes:
//
//	frame:  length u32 (1..MaxFrameSize) | raftpb.Message (protobuf)
//
// kind 2, snapshot: one frame holding the MsgSnap, then the body in chunks,
// then the listener's verdict:
//
//	chunk:   length u32 (1..maxChunk) | bytes     ... ended by length 0
//	verdict: status u8 (0 accepted, 1 rejected) | length u16 | reason
//
// Integers are big-endian. The listener refuses a preface whose from is
// not the node ID in the dialer's certificate, or whose to is not itself.
// It refuses any message not from the dialer, not to itself, of a type raft
// keeps local, or (on a message stream) a MsgSnap.
const (
	wireMagic       = "WRFT"
	wireVersion     = 1
	wirePrefaceLen  = 24
	kindMessages    = 1
	kindSnapshot    = 2
	maxChunk        = 1 << 20
	sendChunk       = 64 << 10
	maxVerdictLen   = 512
	verdictAccepted = 0
	verdictRejected = 1
)

// wireStatus is the listener's answer to a preface.
type wireStatus uint8

const (
	statusOK wireStatus = iota
	statusBadVersion
	statusBadPreface
	statusWrongNode     // to is not the listener's node ID
	statusWrongIdentity // from is not the node in the dialer's certificate
	statusClosing
)

func (s wireStatus) String() string {
	switch s {
	case statusOK:
		return "accepted"
	case statusBadVersion:
		return "unsupported protocol version"
	case statusBadPreface:
		return "malformed preface"
	case statusWrongNode:
		return "wrong receiver node ID"
	case statusWrongIdentity:
		return "sender node ID does not match its certificate"
	case statusClosing:
		return "closing"
	}
	return fmt.Sprintf("status %d", uint8(s))
}

var (
	// errRefused wraps the reason a listener refused a connection.
	errRefused = errors.New("raft: peer refused the connection")
	// errFrameTooLarge is returned for a frame over the size limit, on
	// either side.
	errFrameTooLarge = errors.New("raft: frame too large")
	// errProtocol is returned for a frame that breaks the wire protocol.
	errProtocol = errors.New("raft: transport protocol violation")
	// errSnapshotRejected wraps the receiver's reason for refusing a
	// snapshot.
	errSnapshotRejected = errors.New("raft: snapshot rejected by the receiver")
)

type preface struct {
	version  uint8
	kind     uint8
	from, to uint64
}

func (p preface) encode() []byte {
	b := make([]byte, wirePrefaceLen)
	copy(b, wireMagic)
	b[4], b[5] = p.version, p.kind
	binary.BigEndian.PutUint64(b[8:], p.from)
	binary.BigEndian.PutUint64(b[16:], p.to)
	return b
}

// decodePreface parses a preface; a wrong magic or reserved bytes are an
// error, an unknown version or kind is left for the caller to answer.
func decodePreface(b []byte) (preface, error) {
	if len(b) != wirePrefaceLen || string(b[:4]) != wireMagic || b[6] != 0 || b[7] != 0 {
		return preface{}, fmt.Errorf("%w: bad preface", errProtocol)
	}
	return preface{
		version: b[4], kind: b[5],
		from: binary.BigEndian.Uint64(b[8:]), to: binary.BigEndian.Uint64(b[16:]),
	}, nil
}

// appendFrame appends m as one frame to buf.
func appendFrame(buf []byte, m *pb.Message, max int) ([]byte, error) {
	start := len(buf)
	buf = append(buf, 0, 0, 0, 0)
	buf, err := proto.MarshalOptions{}.MarshalAppend(buf, m)
	if err != nil {
		return buf[:start], err
	}
	n := len(buf) - start - 4
	if n > max || n == 0 {
		return buf[:start], fmt.Errorf("%w: %d bytes (limit %d)", errFrameTooLarge, n, max)
	}
	binary.BigEndian.PutUint32(buf[start:], uint32(n))
	return buf, nil
}

// frameReader reads frames from a connection. Memory grows with the bytes
// actually received, never with the length a peer claims, and a frame
// once begun must arrive within timeout.
type frameReader struct {
	br      *bufio.Reader
	conn    net.Conn // read deadlines; nil in tests
	max     int
	timeout time.Duration
	buf     bytes.Buffer
}

// next returns the next frame's payload, valid until the next call.
func (r *frameReader) next() ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r.br, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[:]))
	if n == 0 || n > r.max {
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", errFrameTooLarge, n, r.max)
	}
	if r.buf.Cap() > 4<<20 {
		r.buf = bytes.Buffer{} // do not keep a large frame's buffer
	}
	r.buf.Reset()
	deadline := r.conn != nil && r.br.Buffered() < n
	if deadline {
		_ = r.conn.SetReadDeadline(time.Now().Add(r.timeout))
	}
	got, err := r.buf.ReadFrom(io.LimitReader(r.br, int64(n)))
	if deadline {
		_ = r.conn.SetReadDeadline(time.Time{})
	}
	if err != nil {
		return nil, err
	}
	if got != int64(n) {
		return nil, io.ErrUnexpectedEOF
	}
	return r.buf.Bytes(), nil
}

// nextMessage reads one message and checks it may come from node from to
// node to on this kind of stream.
func (r *frameReader) nextMessage(from, to uint64, kind uint8) (*pb.Message, error) {
	b, err := r.next()
	if err != nil {
		return nil, err
	}
	m := &pb.Message{}
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("%w: message does not decode", errProtocol)
	}
	if err := checkInbound(m, from, to, kind); err != nil {
		return nil, err
	}
	return m, nil
}

func checkInbound(m *pb.Message, from, to uint64, kind uint8) error {
	t := m.GetType()
	switch {
	case m.GetFrom() != from:
		return fmt.Errorf("%w: message from %x on the stream of node %x", errProtocol, m.GetFrom(), from)
	case m.GetTo() != to:
		return fmt.Errorf("%w: message to %x received by node %x", errProtocol, m.GetTo(), to)
	case raft.IsLocalMsg(t):
		return fmt.Errorf("%w: local message type %v", errProtocol, t)
	case (t == pb.MsgSnap) != (kind == kindSnapshot):
		return fmt.Errorf("%w: message type %v on stream kind %d", errProtocol, t, kind)
	}
	return nil
}

// chunkReader is the receiver's view of a snapshot body: the chunks'
// bytes, io.EOF at the end marker. Each read must make progress within
// timeout.
type chunkReader struct {
	br      *bufio.Reader
	conn    net.Conn
	timeout time.Duration
	left    int
	eof     bool
	err     error
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.eof {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if c.conn != nil {
		_ = c.conn.SetReadDeadline(time.Now().Add(c.timeout))
	}
	if c.left == 0 {
		var hdr [4]byte
		if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
			return 0, c.fail(err)
		}
		n := int(binary.BigEndian.Uint32(hdr[:]))
		if n == 0 {
			c.eof = true
			return 0, io.EOF
		}
		if n > maxChunk {
			return 0, c.fail(fmt.Errorf("%w: snapshot chunk of %d bytes", errFrameTooLarge, n))
		}
		c.left = n
	}
	if len(p) > c.left {
		p = p[:c.left]
	}
	n, err := c.br.Read(p)
	c.left -= n
	if err != nil {
		return n, c.fail(err)
	}
	return n, nil
}

func (c *chunkReader) fail(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	c.err = err
	return err
}

// finish checks the body ends here, after its consumer stopped reading.
func (c *chunkReader) finish() error {
	var b [1]byte
	n, err := c.Read(b[:])
	if n > 0 || (err != nil && err != io.EOF) {
		return fmt.Errorf("%w: snapshot body longer than its content", errProtocol)
	}
	return nil
}
