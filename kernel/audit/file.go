package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultFileMode is the mode of a new log file.
const DefaultFileMode os.FileMode = 0o600

// FileConfig configures a FileDevice.
type FileConfig struct {
	DeviceConfig
	// Path is the log file. "-" or "stdout" writes to standard output
	// (Reopen then does nothing and the chain cannot resume from the
	// output's last line).
	Path string
	// Mode is the file's permission bits (default 0600); like Vault, it is
	// applied to an existing file too.
	Mode os.FileMode
	// KeepMode leaves the mode of an existing file alone (Vault's mode =
	// "0000"); a new file still gets Mode.
	KeepMode bool
	// Fsync makes every batch of lines durable (fsync) before Log
	// returns. Without it, Log returns once write(2) has returned: the
	// lines survive a crash of Ward but not of the machine.
	Fsync bool
}

func (c FileConfig) withDefaults() (FileConfig, error) {
	var err error
	if c.DeviceConfig, err = c.DeviceConfig.withDefaults(); err != nil {
		return c, err
	}
	if c.Path == "" {
		return c, fmt.Errorf("%w: file device needs a path", ErrInvalidConfig)
	}
	if c.Mode == 0 {
		c.Mode = DefaultFileMode
	}
	if c.Mode&^fs.ModePerm != 0 {
		return c, fmt.Errorf("%w: mode %v has bits other than permissions", ErrInvalidConfig, c.Mode)
	}
	return c, nil
}

// FileDevice writes entries to a local file, synchronously: Log returns
// once the entry's line is written (and synced, with Fsync). Concurrent
// Logs are grouped into one write (group commit), so the file's line order
// is the chain's order and a slow disk is paid once per batch, not per
// entry.
//
// When a write or an open fails, the device reports the error to the
// callers whose lines were not written, rolls its chain back to the last
// line written, and retries opening the file on the next Log (and on its
// ticker), so it recovers without a restart once the path is writable.
type FileDevice struct {
	cfg    FileConfig
	format *formatter
	stdout bool

	// writeMu is held while a batch is written, and by Reopen and Close,
	// so batches reach the file one at a time and in chain order.
	writeMu sync.Mutex

	mu sync.Mutex // protects the fields below
	// chain is the chain including lines appended to cur and not yet
	// written; durable is its state at the end of the last line written.
	chain   *chain
	durable chainState
	f       *os.File // nil while broken and after Close
	cur     *batch   // lines waiting for the next write, or nil
	closed  bool
	lastErr error
	// write writes one batch; a test seam for fault injection.
	write func(f *os.File, b []byte) error

	logged, failed, checkpoints, resyncs atomic.Uint64
	// forming counts the Logs between their start and the moment their
	// line joins a batch. A leader yields the processor once before
	// writing when lines are forming, or when yielding recently let other
	// lines join (under load, the goroutines that run meanwhile reach the
	// device and share the write): yieldMisses counts the latest yields
	// that gathered nothing; past maxYieldMisses only one leader in
	// yieldProbe yields, so a lone caller does not pay for it.
	forming     atomic.Int32
	yieldMisses atomic.Int32
	leaders     atomic.Uint32

	saveCh   chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// batch is a group of lines written with one write(2). Its writers wait on
// done; err is set before done is closed.
type batch struct {
	buf     []byte
	pb      *pooledBuf // buf's holder, returned to the pool once written
	entries int        // entry lines (not checkpoints)
	cps     int
	done    chan struct{}
	err     error
}

func newBatch() *batch {
	pb := getBuf()
	return &batch{buf: pb.b, pb: pb, done: make(chan struct{})}
}

// release hands the batch's buffer back to the pool once it is written
// (or failed); lines can no longer be added to it.
func (b *batch) release() {
	if b.pb != nil {
		b.pb.b = b.buf
		putBuf(b.pb)
		b.buf, b.pb = nil, nil
	}
}

// NewFileDevice loads the device's chain state from cfg.Chain and opens the
// file, writing an "open" checkpoint. An invalid configuration or a failed
// Load is an error; a failure to open the file is not: the device is
// returned broken (Err reports why), refuses entries, and retries on each
// Log. The kernel decides whether enabling a broken device is acceptable.
func NewFileDevice(ctx context.Context, cfg FileConfig) (*FileDevice, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	d := &FileDevice{
		cfg:    cfg,
		format: newFormatter(cfg.HMACKey, cfg.LogRaw, cfg.RawAccessors),
		stdout: cfg.Path == "-" || cfg.Path == "stdout",
		chain:  cfg.newChain(),
		saveCh: make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	d.write = d.writeOut
	if cfg.Chain != nil {
		saved, err := cfg.Chain.Load(ctx)
		if err != nil {
			return nil, fmt.Errorf("audit: file %s: loading chain state: %w", cfg.Path, err)
		}
		if d.chain.st, err = importState(saved); err != nil {
			return nil, err
		}
		d.durable = d.chain.st
	}
	if err := d.commit(nil); err != nil {
		cfg.Logger.Warn("audit: file device is not writable; entries are refused until it is", "path", cfg.Path, "error", err)
	}
	go d.run()
	return d, nil
}

// Synchronous is true: a nil error from Log means the line is written.
func (d *FileDevice) Synchronous() bool { return true }

// Hash returns the HMAC of value under the device's key.
func (d *FileDevice) Hash(value string) string { return d.format.hmac(value) }

// PublicKey returns the key that verifies the device's checkpoints.
func (d *FileDevice) PublicKey() ed25519.PublicKey { return publicKey(d.cfg.SigningKey) }

// Err returns why the device is broken, or nil when its last open and
// write succeeded.
func (d *FileDevice) Err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastErr
}

// LastCheckpoint returns the last checkpoint written to the file.
func (d *FileDevice) LastCheckpoint() Checkpoint {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.durable.cp
}

// Log formats ev, appends it to the chain and returns once its line (and
// any checkpoint that became due) is written. ctx is not consulted: a
// line handed to the file is written or fails as a whole.
func (d *FileDevice) Log(_ context.Context, ev *Event) error {
	t := ev.Time
	if t.IsZero() {
		t = d.cfg.Now()
	}
	t = t.UTC()
	// Formatting, redaction and most of the line's hash happen here,
	// before the device lock; under it the line only gets its seq and
	// prev and is copied into the batch.
	d.forming.Add(1)
	joined := false
	pb := getBuf()
	body, err := d.format.appendEntry(pb.b, ev, t)
	if err == nil {
		h := hashBody(body)
		err = d.commit(func(b *batch) {
			var n int
			b.buf, n = d.chain.appendEntry(b.buf, body, h, t)
			b.entries++
			b.cps += n - 1
			joined = true
			d.forming.Add(-1)
		})
		putHash(h)
	}
	if !joined {
		d.forming.Add(-1)
	}
	pb.b = body
	putBuf(pb)
	if err != nil {
		d.failed.Add(1)
		return err
	}
	d.logged.Add(1)
	return nil
}

// Checkpoint writes a checkpoint now and returns it: a fresh anchor for
// VerifyOptions (last_checkpoint in sys/audit/<path>/verify-key).
func (d *FileDevice) Checkpoint() (Checkpoint, error) {
	err := d.commit(func(b *batch) {
		b.buf = d.chain.appendCheckpoint(b.buf, reasonManual)
		b.cps++
	})
	return d.LastCheckpoint(), err
}

// commit opens the file if it is broken, lets add append lines to the
// current batch (under mu), and waits until the batch is written. The
// first writer of a batch writes it once the previous batch is done; the
// others wait for it.
func (d *FileDevice) commit(add func(b *batch)) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return ErrClosed
	}
	opened := false
	if d.f == nil {
		if err := d.openLocked(); err != nil {
			d.mu.Unlock()
			return err
		}
		opened = true
	}
	b := d.cur
	leader := b == nil
	if leader {
		b = newBatch()
		d.cur = b
	}
	if opened {
		b.buf = d.chain.appendCheckpoint(b.buf, reasonOpen)
		b.cps++
	}
	if add != nil {
		add(b)
	}
	d.mu.Unlock()

	if leader {
		yielded := d.yield()
		d.writeMu.Lock()
		d.mu.Lock()
		if yielded {
			if b.entries > 1 {
				d.yieldMisses.Store(0)
			} else {
				d.yieldMisses.Add(1)
			}
		}
		if d.cur == b { // else Reopen or Close wrote it, or a failure failed it
			d.flushLocked()
		}
		d.mu.Unlock()
		d.writeMu.Unlock()
	}
	<-b.done
	return b.err
}

const (
	maxYieldMisses = 4
	yieldProbe     = 32
)

// yield lets other goroutines run before a leader writes its batch, when
// that is likely to let more lines join it (see forming), and reports
// whether it did. Entries still wait for their own write: this only
// groups more of them into one write(2).
func (d *FileDevice) yield() bool {
	if d.forming.Load() == 0 && d.yieldMisses.Load() >= maxYieldMisses && d.leaders.Add(1)%yieldProbe != 0 {
		return false
	}
	runtime.Gosched()
	return true
}

// flushLocked writes the current batch. writeMu and mu must be held; mu is
// released during the write.
func (d *FileDevice) flushLocked() {
	b := d.cur
	if b == nil {
		return
	}
	d.cur = nil
	end := d.chain.st
	var err error
	if len(b.buf) > 0 {
		f, write := d.f, d.write
		d.mu.Unlock()
		if f == nil {
			err = errors.New("file is not open")
		} else {
			err = write(f, b.buf)
		}
		d.mu.Lock()
	}
	b.release()
	if err == nil {
		d.durable = end
		d.checkpoints.Add(uint64(b.cps))
		if b.cps > 0 {
			select {
			case d.saveCh <- struct{}{}:
			default:
			}
		}
	} else {
		err = fmt.Errorf("audit: file %s: %w", d.cfg.Path, err)
		if d.lastErr == nil {
			d.cfg.Logger.Error("audit: write to file device failed; entries are refused until it recovers", "path", d.cfg.Path, "error", err)
		}
		d.lastErr = err
		d.chain.st = d.durable
		d.closeFileLocked()
		// Lines appended since were chained on top of the failed ones.
		if c := d.cur; c != nil {
			d.cur = nil
			c.release()
			c.err = err
			close(c.done)
		}
	}
	b.err = err
	close(b.done)
}

func (d *FileDevice) writeOut(f *os.File, b []byte) error {
	if _, err := f.Write(b); err != nil {
		return err
	}
	if d.cfg.Fsync && !d.stdout {
		return f.Sync()
	}
	return nil
}

func (d *FileDevice) closeFileLocked() {
	if d.f != nil && !d.stdout {
		d.f.Close()
	}
	d.f = nil
}

// openLocked opens the output and reconciles the chain with the file's
// last line. The caller appends the "open" checkpoint. mu must be held,
// and no batch may be pending (d.cur == nil, d.chain.st == d.durable).
func (d *FileDevice) openLocked() error {
	if d.stdout {
		d.f, d.lastErr = os.Stdout, nil
		return nil
	}
	f, err := os.OpenFile(d.cfg.Path, os.O_RDWR|os.O_APPEND|os.O_CREATE, d.cfg.Mode)
	if err == nil {
		err = d.reconcileLocked(f)
		if err != nil {
			f.Close()
		}
	}
	if err != nil {
		err = fmt.Errorf("audit: file %s: %w", d.cfg.Path, err)
		if d.lastErr == nil {
			d.cfg.Logger.Error("audit: cannot open file device; entries are refused until it can", "path", d.cfg.Path, "error", err)
		}
		d.lastErr = err
		return err
	}
	if d.lastErr != nil {
		d.cfg.Logger.Info("audit: file device recovered", "path", d.cfg.Path)
	}
	d.f, d.lastErr = f, nil
	return nil
}

// reconcileLocked removes an incomplete last line (never acknowledged: Log
// succeeds only for complete lines) and, when the file's last line is not
// where the chain state says the chain ends, continues from the file.
func (d *FileDevice) reconcileLocked(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !d.cfg.KeepMode && fi.Mode().Perm() != d.cfg.Mode {
		if err := f.Chmod(d.cfg.Mode); err != nil {
			return err
		}
	}
	ti, err := scanTail(f, fi.Size())
	if err != nil {
		return fmt.Errorf("reading the end of the file: %w", err)
	}
	if ti.size < fi.Size() {
		if err := f.Truncate(ti.size); err != nil {
			return err
		}
		d.cfg.Logger.Warn("audit: removed an incomplete last line (interrupted write)", "path", d.cfg.Path, "bytes", fi.Size()-ti.size)
	}
	known := d.chain.st
	if !ti.lines || (ti.parsed && ti.st.seq == known.seq && ti.st.last == known.last) {
		return nil // empty (new or rotated) file, or the file ends where we know
	}
	st := ti.st
	if !ti.parsed {
		st = known
		st.last = ti.st.last
	}
	d.resyncs.Add(1)
	d.cfg.Logger.Warn("audit: the file's last line is not where the stored chain state ends; continuing the chain from the file",
		"path", d.cfg.Path, "file_seq", st.seq, "stored_seq", known.seq, "last_line_parsed", ti.parsed)
	d.chain.st, d.durable = st, st
	return nil
}

// Reopen writes a "rotate" checkpoint to the current file (if entries
// followed the last checkpoint), closes it and opens the path again,
// starting the new file with an "open" checkpoint chained to the old
// file's last line. After a rename (logrotate), the next lines go to a new
// file at the path.
func (d *FileDevice) Reopen() error {
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	if d.stdout {
		return nil
	}
	if d.f != nil {
		if d.chain.st.pending > 0 {
			d.appendCheckpointLocked(reasonRotate)
		}
		d.flushLocked()
		d.closeFileLocked()
	}
	if err := d.openLocked(); err != nil {
		return err
	}
	b := d.appendCheckpointLocked(reasonOpen)
	d.flushLocked()
	return b.err
}

// appendCheckpointLocked appends a checkpoint to the current batch,
// creating it; the caller flushes it (holding writeMu).
func (d *FileDevice) appendCheckpointLocked(reason string) *batch {
	if d.cur == nil {
		d.cur = newBatch()
	}
	d.cur.buf = d.chain.appendCheckpoint(d.cur.buf, reason)
	d.cur.cps++
	return d.cur
}

// Close stops the device's ticker, writes a "close" checkpoint if entries
// followed the last one, closes the file and saves the chain state.
func (d *FileDevice) Close() error {
	d.stopOnce.Do(func() { close(d.stop) })
	<-d.done

	d.writeMu.Lock()
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		d.writeMu.Unlock()
		return nil
	}
	var err error
	if d.f != nil && d.chain.st.pending > 0 {
		b := d.appendCheckpointLocked(reasonClose)
		d.flushLocked()
		err = b.err
	}
	d.flushLocked()
	d.closed = true
	d.closeFileLocked()
	st := d.durable.export()
	d.mu.Unlock()
	d.writeMu.Unlock()

	if d.cfg.Chain != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if serr := d.cfg.Chain.Save(ctx, st); serr != nil {
			err = errors.Join(err, fmt.Errorf("audit: file %s: saving chain state: %w", d.cfg.Path, serr))
		}
	}
	return err
}

// run owns the device's background work: time checkpoints, reopening a
// broken file without traffic, and saving the chain state after
// checkpoints. Close stops it.
func (d *FileDevice) run() {
	defer close(d.done)
	t := time.NewTicker(d.cfg.tickEvery())
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-d.saveCh:
			d.save()
		case <-t.C:
			d.tick()
		}
	}
}

func (d *FileDevice) tick() {
	d.mu.Lock()
	broken := !d.closed && d.f == nil
	d.mu.Unlock()
	if broken {
		_ = d.commit(nil) // reopens, writing an "open" checkpoint
		return
	}
	_ = d.commit(func(b *batch) {
		if due(d.chain.st.cp.Time, d.cfg.CheckpointInterval, d.cfg.Now()) && d.chain.st.pending > 0 {
			b.buf = d.chain.appendCheckpoint(b.buf, reasonInterval)
			b.cps++
		}
	})
}

func (d *FileDevice) save() {
	if d.cfg.Chain == nil {
		return
	}
	d.mu.Lock()
	st := d.durable.export()
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.cfg.Chain.Save(ctx, st); err != nil {
		d.cfg.Logger.Error("audit: saving chain state failed", "path", d.cfg.Path, "error", err)
	}
}

// Stats reports the device's counters.
func (d *FileDevice) Stats() DeviceStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := DeviceStats{
		Logged:         d.logged.Load(),
		Failed:         d.failed.Load(),
		Checkpoints:    d.checkpoints.Load(),
		Resyncs:        d.resyncs.Load(),
		Seq:            d.durable.seq,
		LastCheckpoint: d.durable.cp,
		Healthy:        d.lastErr == nil && !d.closed,
	}
	if d.lastErr != nil {
		s.Err = d.lastErr.Error()
	}
	return s
}
