package plugin

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/wardproject/ward/sdk/proto/ward/plugin/v1"
)

// maxFrameSize bounds one frame; the host's request size limit is lower.
const maxFrameSize = 64 << 20

// errChannelClosed is returned for calls on a closed data channel.
var errChannelClosed = errors.New("plugin data channel closed")

// channel is one end of the data channel: framed protobuf over a stream
// connection, with calls matched to answers by id. Each side numbers its
// own calls; answers (reply, storage_result) go to the caller waiting on
// that id, everything else to the side's handler.
type channel struct {
	conn    net.Conn
	handler func(*pb.Frame)
	nextID  atomic.Uint64
	// writeTimeout is set at creation (tests shorten it).
	writeTimeout time.Duration

	wmu     sync.Mutex // protects the fields below: the write side
	wbuf    []byte     // frames waiting to be written
	spare   []byte     // the other buffer, reused
	writing bool       // a sender is writing; others only append to wbuf

	mu      sync.Mutex // protects the fields below
	pending map[uint64]chan *pb.Frame
	err     error
	done    chan struct{}
}

func newChannel(conn net.Conn, handler func(*pb.Frame)) *channel {
	return &channel{conn: conn, handler: handler, writeTimeout: defaultWriteTimeout,
		pending: map[uint64]chan *pb.Frame{}, done: make(chan struct{})}
}

// errFrameTooLarge is a local error: the frame is refused and the channel
// stays up, so one oversized request cannot disturb other mounts.
var errFrameTooLarge = errors.New("message too large for the plugin channel")

// errFrameEncode is a local error too: the frame cannot be encoded (a
// string field that is not valid UTF-8); only this send fails.
var errFrameEncode = errors.New("encode frame")

const (
	// maxQueuedBytes bounds frames waiting to be written. A peer that
	// stops reading fills it, and the channel fails instead of the host
	// running out of memory.
	maxQueuedBytes = 2 * maxFrameSize
)

// defaultWriteTimeout bounds one write: a peer that does not drain its
// socket for this long is broken.
const defaultWriteTimeout = 10 * time.Second

// send queues one frame and makes sure it is written. Under load, frames
// from concurrent senders are coalesced: the sender that finds no write in
// progress writes everything queued, in one syscall per round, while the
// others return at once. A write error or timeout fails the channel, which
// every waiting call observes; an oversized or unencodable frame fails only
// this send.
func (c *channel) send(f *pb.Frame) error {
	size := proto.Size(f)
	if size > maxFrameSize {
		return errFrameTooLarge
	}
	buf := make([]byte, 4, 4+size)
	binary.BigEndian.PutUint32(buf, uint32(size))
	buf, err := proto.MarshalOptions{}.MarshalAppend(buf, f)
	if err != nil {
		return fmt.Errorf("%w: %w", errFrameEncode, err)
	}
	c.wmu.Lock()
	if len(c.wbuf)+len(buf) > maxQueuedBytes {
		c.wmu.Unlock()
		err := errors.New("peer is not reading: write queue full")
		c.fail(err)
		return err
	}
	c.wbuf = append(c.wbuf, buf...)
	if c.writing {
		c.wmu.Unlock()
		return nil
	}
	c.writing = true
	for len(c.wbuf) > 0 {
		out := c.wbuf
		c.wbuf = c.spare[:0]
		c.wmu.Unlock()
		_ = c.conn.SetWriteDeadline(time.Now().Add(c.writeTimeout))
		_, err = c.conn.Write(out)
		c.wmu.Lock()
		c.spare = out
		if err != nil {
			break
		}
	}
	c.writing = false
	c.wbuf = c.wbuf[:0]
	c.wmu.Unlock()
	if err != nil {
		c.fail(err)
	}
	return err
}

// call sends f with a fresh id and waits for the answer with that id.
func (c *channel) call(ctx context.Context, f *pb.Frame) (*pb.Frame, error) {
	id := c.nextID.Add(1)
	f.Id = id
	ch := make(chan *pb.Frame, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	c.pending[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()
	if err := c.send(f); err != nil {
		return nil, err
	}
	select {
	case ans := <-ch:
		return ans, nil
	case <-c.done:
		return nil, c.closeErr()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *channel) closeErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// fail closes the channel; every waiting call returns err.
func (c *channel) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = fmt.Errorf("%w: %v", errChannelClosed, err)
	close(c.done)
	c.conn.Close()
}

// closed reports whether the channel is unusable.
func (c *channel) closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// readLoop reads frames until the connection ends.
func (c *channel) readLoop(br *bufio.Reader) {
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			c.fail(err)
			return
		}
		size := binary.BigEndian.Uint32(hdr[:])
		if size > maxFrameSize {
			c.fail(fmt.Errorf("peer sent a %d-byte frame", size))
			return
		}
		buf := make([]byte, size)
		if _, err := io.ReadFull(br, buf); err != nil {
			c.fail(err)
			return
		}
		f := &pb.Frame{}
		if err := proto.Unmarshal(buf, f); err != nil {
			c.fail(fmt.Errorf("malformed frame: %w", err))
			return
		}
		switch f.Body.(type) {
		case *pb.Frame_Reply, *pb.Frame_StorageResult:
			// Each call takes exactly one answer: the entry goes with the
			// first, and a duplicate or unknown id is dropped, never
			// blocking this loop.
			c.mu.Lock()
			ch := c.pending[f.Id]
			delete(c.pending, f.Id)
			c.mu.Unlock()
			if ch != nil {
				select {
				case ch <- f:
				default:
				}
			}
		default:
			c.handler(f)
		}
	}
}
