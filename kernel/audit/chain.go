package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"slices"
	"strconv"
	"sync"
	"time"
)

// sigDomain prefixes the bytes a checkpoint signature covers, so a Ward
// checkpoint signature can never be mistaken for a signature of anything
// else made with the same key.
const sigDomain = "ward-audit-checkpoint-v1\n"

// Checkpoint reasons, written in the "reason" field.
const (
	reasonOpen     = "open"     // the device (re)opened its output: start, restart, recovery, rotation
	reasonEntries  = "entries"  // CheckpointEvery entries since the previous checkpoint
	reasonInterval = "interval" // CheckpointInterval elapsed
	reasonRotate   = "rotate"   // last line of a file before Reopen
	reasonClose    = "close"    // last line before Close
	reasonManual   = "manual"   // Checkpoint was called
)

var zeroHash [sha256.Size]byte

// Checkpoint identifies a checkpoint line: its sequence number, the hex
// SHA-256 of its exact bytes and its time. A device reports its latest one
// (FileDevice.LastCheckpoint); given to VerifyOptions.Anchor it proves the
// log has not been truncated before it.
type Checkpoint struct {
	Seq  uint64    `json:"seq"`
	Hash string    `json:"hash"`
	Time time.Time `json:"time"`
}

// ChainState is a device's position in its chain, as saved in a
// ChainStore. The kernel stores it as an opaque JSON document.
type ChainState struct {
	// Seq is the sequence number of the last line written (0: none yet)
	// and Hash the hex SHA-256 of that line's bytes.
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
	// Head is the hex SHA-256 of the last entry (non-checkpoint) line.
	Head string `json:"head"`
	// Pending counts entry lines written since Checkpoint.
	Pending uint64 `json:"pending"`
	// Checkpoint is the last checkpoint line written.
	Checkpoint Checkpoint `json:"checkpoint"`
}

// ChainStore persists a device's ChainState so its chain continues across
// restarts. The kernel implements it over the barrier (one document per
// device); the device calls Save after each checkpoint is written and on
// Close, and Load once when it is created. Both are called from one
// goroutine at a time per device.
type ChainStore interface {
	// Load returns the saved state, or nil and no error if none was saved.
	Load(ctx context.Context) (*ChainState, error)
	Save(ctx context.Context, st *ChainState) error
}

// MemoryChainStore is the reference ChainStore, kept in memory (tests,
// dev servers). The zero value is ready to use.
type MemoryChainStore struct {
	mu    sync.Mutex // protects the fields below
	st    *ChainState
	saves int
}

var _ ChainStore = (*MemoryChainStore)(nil)

func (m *MemoryChainStore) Load(context.Context) (*ChainState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.st == nil {
		return nil, nil
	}
	st := *m.st
	return &st, nil
}

func (m *MemoryChainStore) Save(_ context.Context, st *ChainState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := *st
	m.st = &c
	m.saves++
	return nil
}

// Saves reports how many times Save was called.
func (m *MemoryChainStore) Saves() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.saves
}

// chainState is ChainState with decoded hashes.
type chainState struct {
	seq     uint64
	last    [sha256.Size]byte
	head    [sha256.Size]byte
	pending uint64
	cp      Checkpoint
}

func (s *chainState) export() *ChainState {
	return &ChainState{
		Seq:        s.seq,
		Hash:       hex.EncodeToString(s.last[:]),
		Head:       hex.EncodeToString(s.head[:]),
		Pending:    s.pending,
		Checkpoint: s.cp,
	}
}

func importState(in *ChainState) (chainState, error) {
	var s chainState
	if in == nil {
		return s, nil
	}
	s.seq, s.pending, s.cp = in.Seq, in.Pending, in.Checkpoint
	if err := decodeHash(&s.last, in.Hash); err != nil {
		return s, fmt.Errorf("audit: stored chain state: hash: %w", err)
	}
	if err := decodeHash(&s.head, in.Head); err != nil {
		return s, fmt.Errorf("audit: stored chain state: head: %w", err)
	}
	return s, nil
}

// decodeHash decodes a 64-character lower-case hex SHA-256 ("" = zeros).
func decodeHash(dst *[sha256.Size]byte, s string) error {
	if s == "" {
		*dst = zeroHash
		return nil
	}
	if len(s) != 2*sha256.Size {
		return fmt.Errorf("want %d hex characters, got %d", 2*sha256.Size, len(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("not lower-case hex")
		}
	}
	_, err := hex.Decode(dst[:], []byte(s))
	return err
}

// chain appends lines to a device's chain. It is not safe for concurrent
// use: its device serialises calls.
type chain struct {
	st chainState
	// latest is the latest entry time appended; a checkpoint's time is
	// never earlier, so an entry stamped ahead of the device clock cannot
	// make every following entry due for a checkpoint.
	latest   time.Time
	every    uint64
	interval time.Duration
	key      ed25519.PrivateKey
	now      func() time.Time
}

// linePool holds SHA-256 states for hashBody.
var linePool = sync.Pool{New: func() any { return sha256.New() }}

// hashBody starts the hash of the entry line made from body: the line is
// body without its closing brace, then seq, prev and the brace, so all but
// the last bytes can be hashed before the device takes its lock (and
// without holding it). Hand the result to chain.appendEntry, then to
// putHash.
func hashBody(body []byte) hash.Hash {
	h := linePool.Get().(hash.Hash)
	h.Reset()
	h.Write(body[:len(body)-1])
	return h
}

func putHash(h hash.Hash) { linePool.Put(h) }

// appendEntry appends to dst the entry line made from body (a JSON object
// without seq and prev) and, when one is due, a checkpoint line. h is
// hashBody(body) (appendEntry completes it with the rest of the line). t
// is the entry's time as written in it. It reports how many lines it
// appended.
func (c *chain) appendEntry(dst, body []byte, h hash.Hash, t time.Time) ([]byte, int) {
	c.st.seq++
	if t.After(c.latest) {
		c.latest = t
	}
	dst = slices.Grow(dst, len(body)+len(`,"seq":,"prev":""}`)+20+2*sha256.Size+1)
	dst = append(dst, body[:len(body)-1]...)
	tail := len(dst)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, c.st.seq, 10)
	dst = append(dst, `,"prev":"`...)
	dst = hex.AppendEncode(dst, c.st.last[:])
	dst = append(dst, `"}`...)
	h.Write(dst[tail:])
	h.Sum(c.st.last[:0])
	c.st.head = c.st.last
	dst = append(dst, '\n')
	c.st.pending++
	if c.st.pending >= c.every {
		return c.appendCheckpoint(dst, reasonEntries), 2
	}
	if due(c.st.cp.Time, c.interval, t) {
		return c.appendCheckpoint(dst, reasonInterval), 2
	}
	return dst, 1
}

// due reports whether an entry written at t, after a checkpoint written at
// cp, must be followed by a checkpoint. The verifier applies the same rule
// to the times written in the log.
func due(cp time.Time, interval time.Duration, t time.Time) bool {
	return !cp.IsZero() && !t.Before(cp.Add(interval))
}

// appendCheckpoint appends a signed checkpoint line to dst.
func (c *chain) appendCheckpoint(dst []byte, reason string) []byte {
	now := c.now().UTC()
	if now.Before(c.latest) {
		now = c.latest
	}
	c.st.seq++
	cp := cpFields{
		Time:            now.Format(time.RFC3339Nano),
		Seq:             c.st.seq,
		Prev:            hex.EncodeToString(c.st.last[:]),
		Head:            hex.EncodeToString(c.st.head[:]),
		Count:           c.st.pending,
		PrevCheckpoint:  c.st.cp.Seq,
		IntervalEntries: c.every,
		IntervalMS:      c.interval.Milliseconds(),
		Reason:          reason,
	}
	unsigned := cp.appendUnsigned(nil)
	sig := ed25519.Sign(c.key, append([]byte(sigDomain), unsigned...))
	start := len(dst)
	dst = appendSigned(dst, unsigned, base64.StdEncoding.EncodeToString(sig))
	c.st.last = sha256.Sum256(dst[start:])
	dst = append(dst, '\n')
	c.st.pending = 0
	c.st.cp = Checkpoint{Seq: c.st.seq, Hash: hex.EncodeToString(c.st.last[:]), Time: now}
	return dst
}

// cpFields are a checkpoint's fields other than its signature.
type cpFields struct {
	Time            string `json:"time"`
	Seq             uint64 `json:"seq"`
	Prev            string `json:"prev"`
	Head            string `json:"head"`
	Count           uint64 `json:"count"`
	PrevCheckpoint  uint64 `json:"prev_checkpoint"`
	IntervalEntries uint64 `json:"interval_entries"`
	IntervalMS      int64  `json:"interval_ms"`
	Reason          string `json:"reason"`
}

// appendUnsigned appends the canonical encoding of the checkpoint without
// its signature: a JSON object with the fields in this fixed order and no
// white space. The signature covers sigDomain followed by these bytes.
func (c *cpFields) appendUnsigned(dst []byte) []byte {
	dst = append(dst, `{"type":"checkpoint","time":`...)
	dst = appendJSONString(dst, c.Time)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, c.Seq, 10)
	dst = append(dst, `,"prev":`...)
	dst = appendJSONString(dst, c.Prev)
	dst = append(dst, `,"head":`...)
	dst = appendJSONString(dst, c.Head)
	dst = append(dst, `,"count":`...)
	dst = strconv.AppendUint(dst, c.Count, 10)
	dst = append(dst, `,"prev_checkpoint":`...)
	dst = strconv.AppendUint(dst, c.PrevCheckpoint, 10)
	dst = append(dst, `,"interval_entries":`...)
	dst = strconv.AppendUint(dst, c.IntervalEntries, 10)
	dst = append(dst, `,"interval_ms":`...)
	dst = strconv.AppendInt(dst, c.IntervalMS, 10)
	dst = append(dst, `,"reason":`...)
	dst = appendJSONString(dst, c.Reason)
	return append(dst, '}')
}

// appendSigned appends the checkpoint line: the unsigned object with the
// signature added as its last field.
func appendSigned(dst, unsigned []byte, sig string) []byte {
	dst = append(dst, unsigned[:len(unsigned)-1]...)
	dst = append(dst, `,"signature":`...)
	dst = appendJSONString(dst, sig)
	return append(dst, '}')
}

func appendJSONString(dst []byte, s string) []byte { return appendString(dst, s) }

// lineHeader is what the device and the verifier read of every line.
type lineHeader struct {
	Type string  `json:"type"`
	Seq  *uint64 `json:"seq"`
	Prev *string `json:"prev"`
	Time string  `json:"time"`
	Head string  `json:"head"`
}

// tailInfo is what scanTail learns from the end of a file.
type tailInfo struct {
	// size is the size of the complete lines (the file is truncated to it
	// when it ends with an incomplete line).
	size int64
	// lines is false for an empty file.
	lines bool
	// parsed is false when the last line is not a chained line; st then
	// holds only its hash.
	parsed bool
	st     chainState
}

const (
	scanWindow = 1 << 20  // first read from the end of a file
	scanMax    = 32 << 20 // bytes scanned back at most to find a checkpoint
)

// scanTail reconstructs the chain state at the end of a log: the last
// line's seq and hash, and, from the last checkpoint within scanMax bytes,
// the head and the count of entries after it.
func scanTail(r interface {
	ReadAt([]byte, int64) (int, error)
}, size int64) (tailInfo, error) {
	ti := tailInfo{size: size}
	if size == 0 {
		return ti, nil
	}
	for window := int64(scanWindow); ; window *= 2 {
		if window > size {
			window = size
		}
		buf := make([]byte, window)
		if _, err := r.ReadAt(buf, size-window); err != nil {
			return ti, err
		}
		atStart := window == size
		// Drop an incomplete last line.
		end := bytes.LastIndexByte(buf, '\n') + 1
		if end == 0 && !atStart {
			if window >= scanMax {
				return ti, fmt.Errorf("no end of line in the last %d bytes", window)
			}
			continue
		}
		ti.size = size - window + int64(end)
		buf = buf[:end]
		if len(buf) == 0 {
			return ti, nil // the whole file is one incomplete line
		}
		found, err := ti.fromLines(buf, atStart)
		if err != nil || found || atStart || window >= scanMax {
			return ti, err
		}
	}
}

// fromLines fills ti from buf, a run of complete lines at the end of the
// file (its first line may be cut unless atStart). It reports whether a
// checkpoint was found.
func (ti *tailInfo) fromLines(buf []byte, atStart bool) (bool, error) {
	ti.lines = true
	ti.st = chainState{}
	ti.parsed = false
	lines := bytes.Split(buf[:len(buf)-1], []byte{'\n'})
	if !atStart {
		lines = lines[1:] // possibly cut
	}
	sawEntry := false
	for i := len(lines) - 1; i >= 0; i-- {
		l := lines[i]
		sum := sha256.Sum256(l)
		var h lineHeader
		ok := json.Unmarshal(l, &h) == nil && h.Seq != nil
		if i == len(lines)-1 {
			ti.st.last = sum
			if !ok {
				return true, nil // nothing more can be learned
			}
			ti.parsed = true
			ti.st.seq = *h.Seq
		}
		if !ok {
			continue
		}
		if h.Type == "checkpoint" {
			t, _ := time.Parse(time.RFC3339Nano, h.Time)
			ti.st.cp = Checkpoint{Seq: *h.Seq, Hash: hex.EncodeToString(sum[:]), Time: t}
			if !sawEntry {
				_ = decodeHash(&ti.st.head, h.Head)
			}
			return true, nil
		}
		if !sawEntry {
			ti.st.head = sum
			sawEntry = true
		}
		ti.st.pending++
	}
	return false, nil
}
