package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults of SocketConfig.
const (
	DefaultSocketWriteTimeout = 2 * time.Second
	DefaultSocketQueueSize    = 4096
)

const (
	backoffMin = 50 * time.Millisecond
	backoffMax = 30 * time.Second
	// maxWriteBatch bounds the bytes a stream socket write gathers.
	maxWriteBatch = 256 << 10
)

// SocketConfig configures a SocketDevice.
type SocketConfig struct {
	DeviceConfig
	// Network is "tcp" (default), "udp", "unix" or "unixgram"; Address is
	// what net.Dial takes for it.
	Network string
	Address string
	// WriteTimeout bounds each dial and each write (default 2s).
	WriteTimeout time.Duration
	// QueueSize is how many lines wait for the connection at most
	// (default 4096); past it lines are dropped and counted.
	QueueSize int
}

func (c SocketConfig) withDefaults() (SocketConfig, error) {
	var err error
	if c.DeviceConfig, err = c.DeviceConfig.withDefaults(); err != nil {
		return c, err
	}
	switch c.Network {
	case "":
		c.Network = "tcp"
	case "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6", "unix", "unixgram":
	default:
		return c, fmt.Errorf("%w: unsupported socket network %q", ErrInvalidConfig, c.Network)
	}
	if c.Address == "" {
		return c, fmt.Errorf("%w: socket device needs an address", ErrInvalidConfig)
	}
	if c.WriteTimeout < 0 || c.QueueSize < 0 {
		return c, fmt.Errorf("%w: negative write timeout or queue size", ErrInvalidConfig)
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultSocketWriteTimeout
	}
	if c.QueueSize == 0 {
		c.QueueSize = DefaultSocketQueueSize
	}
	return c, nil
}

// datagram reports whether each line travels as its own packet.
func (c *SocketConfig) datagram() bool {
	switch c.Network {
	case "udp", "udp4", "udp6", "unixgram":
		return true
	}
	return false
}

// SocketDevice sends entries to a remote collector without ever making Log
// wait for the network (a stalled collector stalled every request in
// Vault, hashicorp/vault#5361). Log formats and chains the entry and puts
// its line on a bounded queue; one goroutine writes the queue to the
// connection, reconnecting with backoff (50ms doubling to 30s) after a
// failure. When the queue is full the line is dropped and counted; the
// gap in seq (and the broken prev link) shows the loss to whoever verifies
// the remote copy. After a reconnection the lines of the failed write are
// sent again, so the collector may see a line twice (same seq).
//
// The device is asynchronous: a nil error from Log means the line was
// queued while the device was connected. It is not a record; fail-closed
// guarantees come from synchronous devices (see Broker).
type SocketDevice struct {
	cfg    SocketConfig
	format *formatter

	mu     sync.Mutex // protects the fields below; held while lines are queued so queue order is chain order
	chain  *chain
	closed bool

	queue     chan []byte
	connected atomic.Bool
	lastErr   atomic.Pointer[string]

	logged, failed, dropped, sent, checkpoints atomic.Uint64

	// conn is owned by the run goroutine (and by the constructor before
	// it starts).
	conn net.Conn

	reopen   chan struct{}
	saveCh   chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// NewSocketDevice loads the chain state from cfg.Chain, dials the collector
// once (a failure is not an error: the device starts disconnected and keeps
// trying), queues an "open" checkpoint and starts its writer.
func NewSocketDevice(ctx context.Context, cfg SocketConfig) (*SocketDevice, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	d := &SocketDevice{
		cfg:    cfg,
		format: newFormatter(cfg.HMACKey, cfg.LogRaw, cfg.RawAccessors),
		chain:  cfg.newChain(),
		queue:  make(chan []byte, cfg.QueueSize),
		reopen: make(chan struct{}, 1),
		saveCh: make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	if cfg.Chain != nil {
		saved, err := cfg.Chain.Load(ctx)
		if err != nil {
			return nil, fmt.Errorf("audit: socket %s: loading chain state: %w", cfg.Address, err)
		}
		if d.chain.st, err = importState(saved); err != nil {
			return nil, err
		}
	}
	if err := d.dial(); err != nil {
		cfg.Logger.Warn("audit: socket device is not connected; retrying in the background", "address", cfg.Address, "error", err)
	}
	d.mu.Lock()
	d.enqueueLocked(d.chain.appendCheckpoint(nil, reasonOpen))
	d.checkpoints.Add(1)
	d.mu.Unlock()
	go d.run()
	return d, nil
}

// Synchronous is false: lines are delivered in the background.
func (d *SocketDevice) Synchronous() bool { return false }

// Hash returns the HMAC of value under the device's key.
func (d *SocketDevice) Hash(value string) string { return d.format.hmac(value) }

// PublicKey returns the key that verifies the device's checkpoints.
func (d *SocketDevice) PublicKey() ed25519.PublicKey { return publicKey(d.cfg.SigningKey) }

// Log formats ev, chains it and queues its line without blocking. It
// returns ErrQueueFull if the line was dropped, ErrUnavailable if it was
// queued while the device is disconnected, ErrClosed after Close.
func (d *SocketDevice) Log(_ context.Context, ev *Event) error {
	t := ev.Time
	if t.IsZero() {
		t = d.cfg.Now()
	}
	t = t.UTC()
	pb := getBuf()
	body, err := d.format.appendEntry(pb.b, ev, t)
	pb.b = body
	if err != nil {
		putBuf(pb)
		d.failed.Add(1)
		return err
	}
	h := hashBody(body)
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		putHash(h)
		putBuf(pb)
		d.failed.Add(1)
		return ErrClosed
	}
	buf, n := d.chain.appendEntry(nil, body, h, t)
	var queued bool
	if n == 2 {
		i := bytes.IndexByte(buf, '\n') + 1
		queued = d.enqueueLocked(buf[:i:i])
		d.enqueueLocked(buf[i:])
		d.checkpointedLocked()
	} else {
		queued = d.enqueueLocked(buf)
	}
	d.mu.Unlock()
	putHash(h)
	putBuf(pb)
	switch {
	case !queued:
		d.failed.Add(1)
		return ErrQueueFull
	case !d.connected.Load():
		d.failed.Add(1)
		return ErrUnavailable
	}
	d.logged.Add(1)
	return nil
}

// enqueueLocked queues one line (with its newline) or drops it.
func (d *SocketDevice) enqueueLocked(line []byte) bool {
	select {
	case d.queue <- line:
		return true
	default:
		d.dropped.Add(1)
		return false
	}
}

// Reopen drops the current connection; the writer reconnects.
func (d *SocketDevice) Reopen() error {
	select {
	case d.reopen <- struct{}{}:
	default:
	}
	return nil
}

// Close queues a "close" checkpoint if entries followed the last one,
// gives the writer up to WriteTimeout to deliver what is queued, closes
// the connection and saves the chain state.
func (d *SocketDevice) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	if d.chain.st.pending > 0 {
		d.enqueueLocked(d.chain.appendCheckpoint(nil, reasonClose))
		d.checkpoints.Add(1)
	}
	st := d.chain.st.export()
	d.mu.Unlock()
	d.stopOnce.Do(func() { close(d.stop) })
	<-d.done
	if d.cfg.Chain != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.cfg.Chain.Save(ctx, st); err != nil {
			return fmt.Errorf("audit: socket %s: saving chain state: %w", d.cfg.Address, err)
		}
	}
	return nil
}

// Stats reports the device's counters; Seq and LastCheckpoint describe the
// lines queued, not those delivered.
func (d *SocketDevice) Stats() DeviceStats {
	d.mu.Lock()
	seq, cp, closed := d.chain.st.seq, d.chain.st.cp, d.closed
	d.mu.Unlock()
	s := DeviceStats{
		Logged:         d.logged.Load(),
		Failed:         d.failed.Load(),
		Dropped:        d.dropped.Load(),
		Sent:           d.sent.Load(),
		Checkpoints:    d.checkpoints.Load(),
		Seq:            seq,
		LastCheckpoint: cp,
		Healthy:        d.connected.Load() && !closed,
	}
	if !d.connected.Load() {
		if e := d.lastErr.Load(); e != nil {
			s.Err = *e
		}
	}
	return s
}

func (d *SocketDevice) dial() error {
	c, err := net.DialTimeout(d.cfg.Network, d.cfg.Address, d.cfg.WriteTimeout)
	if err != nil {
		d.setBroken(err)
		return err
	}
	d.conn = c
	d.connected.Store(true)
	return nil
}

func (d *SocketDevice) setBroken(err error) {
	msg := fmt.Sprintf("audit: socket %s: %v", d.cfg.Address, err)
	d.lastErr.Store(&msg)
	d.connected.Store(false)
}

func (d *SocketDevice) dropConn() {
	if d.conn != nil {
		d.conn.Close()
		d.conn = nil
	}
}

// run owns the connection: it writes queued lines, reconnects with
// backoff, and queues time checkpoints. Close stops it.
func (d *SocketDevice) run() {
	defer close(d.done)
	defer d.dropConn()
	tick := time.NewTicker(d.cfg.tickEvery())
	defer tick.Stop()
	var pending [][]byte
	backoff := time.Duration(0)
	for {
		if len(pending) == 0 {
			select {
			case <-d.stop:
				d.drain(nil)
				return
			case <-tick.C:
				d.tick()
				continue
			case <-d.saveCh:
				d.save()
				continue
			case <-d.reopen:
				d.dropConn()
				continue
			case line := <-d.queue:
				pending = d.gather(append(pending, line))
			}
		}
		err := d.send(pending)
		if err == nil {
			d.sent.Add(uint64(len(pending)))
			pending = pending[:0]
			backoff = 0
			continue
		}
		d.dropConn()
		if d.connected.Load() {
			d.cfg.Logger.Warn("audit: socket device disconnected; reconnecting", "address", d.cfg.Address, "error", err)
		}
		d.setBroken(err)
		backoff = min(max(2*backoff, backoffMin), backoffMax)
		timer := time.NewTimer(backoff)
	wait:
		for {
			select {
			case <-d.stop:
				timer.Stop()
				d.drain(pending)
				return
			case <-tick.C:
				d.tick()
			case <-d.saveCh:
				d.save()
			case <-timer.C:
				break wait
			}
		}
	}
}

// gather adds queued lines to pending without blocking, for one write.
func (d *SocketDevice) gather(pending [][]byte) [][]byte {
	if d.cfg.datagram() {
		return pending
	}
	n := 0
	for _, l := range pending {
		n += len(l)
	}
	for n < maxWriteBatch {
		select {
		case l := <-d.queue:
			pending = append(pending, l)
			n += len(l)
		default:
			return pending
		}
	}
	return pending
}

// send writes lines to the connection, dialling first if needed.
func (d *SocketDevice) send(lines [][]byte) error {
	if d.conn == nil {
		if err := d.dial(); err != nil {
			return err
		}
		d.cfg.Logger.Info("audit: socket device connected", "address", d.cfg.Address)
	}
	if err := d.conn.SetWriteDeadline(time.Now().Add(d.cfg.WriteTimeout)); err != nil {
		return err
	}
	if d.cfg.datagram() {
		for _, l := range lines {
			if _, err := d.conn.Write(l); err != nil {
				if errors.Is(err, syscall.EMSGSIZE) {
					// Too big for one datagram: retrying can never work
					// and would wedge the device. Drop it; the seq gap
					// shows the loss.
					d.dropped.Add(1)
					d.cfg.Logger.Warn("audit: line too large for a datagram; dropped", "address", d.cfg.Address, "bytes", len(l))
					continue
				}
				return err
			}
		}
	} else {
		bufs := net.Buffers(append([][]byte(nil), lines...))
		if _, err := bufs.WriteTo(d.conn); err != nil {
			return err
		}
	}
	d.connected.Store(true)
	return nil
}

// drain makes one last attempt, bounded by WriteTimeout, to deliver
// pending and the queued lines.
func (d *SocketDevice) drain(pending [][]byte) {
queued:
	for {
		select {
		case l := <-d.queue:
			pending = append(pending, l)
		default:
			break queued
		}
	}
	if len(pending) == 0 {
		return
	}
	deadline := time.Now().Add(d.cfg.WriteTimeout)
	for len(pending) > 0 && time.Now().Before(deadline) {
		n := 1
		if !d.cfg.datagram() {
			n = len(pending)
		}
		if err := d.send(pending[:n]); err != nil {
			d.dropConn()
			break
		}
		d.sent.Add(uint64(n))
		pending = pending[n:]
	}
	if len(pending) > 0 {
		d.dropped.Add(uint64(len(pending)))
	}
}

// tick queues a time checkpoint when one is due.
func (d *SocketDevice) tick() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.chain.st.pending == 0 || !due(d.chain.st.cp.Time, d.cfg.CheckpointInterval, d.cfg.Now()) {
		return
	}
	d.enqueueLocked(d.chain.appendCheckpoint(nil, reasonInterval))
	d.checkpointedLocked()
}

// checkpointedLocked counts a checkpoint and asks the writer to save the
// chain state (the state of the lines queued: a restart continues after
// them, whether or not they were delivered).
func (d *SocketDevice) checkpointedLocked() {
	d.checkpoints.Add(1)
	select {
	case d.saveCh <- struct{}{}:
	default:
	}
}

func (d *SocketDevice) save() {
	if d.cfg.Chain == nil {
		return
	}
	d.mu.Lock()
	st := d.chain.st.export()
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.cfg.Chain.Save(ctx, st); err != nil {
		d.cfg.Logger.Error("audit: saving chain state failed", "address", d.cfg.Address, "error", err)
	}
}
