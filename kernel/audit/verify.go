package audit

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// VerifyOptions configures VerifyLog.
type VerifyOptions struct {
	// PublicKey verifies the checkpoints' signatures. Required.
	PublicKey ed25519.PublicKey
	// Anchor, when set, is a checkpoint the device is known to have
	// written (its LastCheckpoint, read from sys/audit/<path>/verify-key or
	// the chain state); the log must contain it. This is what detects a
	// log cut right after an earlier checkpoint, which nothing in the
	// remaining lines can reveal.
	Anchor *Checkpoint
}

// VerifyResult describes a log that was read (fully, or up to the first
// bad line when Verify fails).
type VerifyResult struct {
	// Lines, Entries and Checkpoints count the lines read.
	Lines, Entries, Checkpoints int
	// FirstSeq and LastSeq are the first and last sequence numbers;
	// FirstPrev is the first line's prev: all zeros when the log starts at
	// the device's genesis, otherwise the hash of the last line of the
	// previous file, which links the two files.
	FirstSeq, LastSeq uint64
	FirstPrev         string
	// VerifiedLines counts the lines up to and including the last
	// checkpoint: every one of them is bound by a valid signature.
	VerifiedLines int
	// UnverifiedTail counts the lines after the last checkpoint: they are
	// chained but not signed yet, so removing some of them from the end
	// cannot be detected (a checkpoint is written at most CheckpointEvery
	// entries or CheckpointInterval later).
	UnverifiedTail int
	// LastCheckpoint is the last checkpoint read, at line
	// LastCheckpointLine.
	LastCheckpoint     Checkpoint
	LastCheckpointLine int
}

// VerifyError names the first line at which verification failed (lines
// are numbered from 1; Lines+1 means "after the last line") and why. It
// wraps ErrInvalidLog.
type VerifyError struct {
	Line   int
	Reason string
}

func (e *VerifyError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Reason) }
func (e *VerifyError) Unwrap() error { return ErrInvalidLog }

// Verify checks a log read from r against the device's verification key.
// See VerifyLog.
func Verify(r io.Reader, pub ed25519.PublicKey) (*VerifyResult, error) {
	return VerifyLog(r, VerifyOptions{PublicKey: pub})
}

// VerifyLog reads a log (one file, or several rotated files concatenated
// in order) and checks, line by line:
//
//   - every line is a JSON object with seq and prev; seq increases by one
//     (a gap or a step back means a line was removed or lines reordered);
//   - prev is the SHA-256 of the previous line's exact bytes (a line
//     edited in any byte breaks the link to the next one; the error names
//     the edited line when the line after it confirms which it is);
//   - a line with seq 1 chains to all zeros (genesis);
//   - a checkpoint is byte for byte its canonical encoding, its Ed25519
//     signature is valid, and its head, count and prev_checkpoint agree
//     with the lines before it;
//   - a checkpoint follows every entry that made one due (interval_entries
//     entries, or interval_ms elapsed, since the previous checkpoint), so
//     removing a checkpoint, or cutting the log right before one, fails;
//   - the log has at least one checkpoint, and contains opts.Anchor.
//
// It returns a *VerifyError for the first bad line, with the result so far.
// Lines after the last checkpoint are reported as UnverifiedTail, not as
// an error.
func VerifyLog(r io.Reader, opts VerifyOptions) (*VerifyResult, error) {
	if len(opts.PublicKey) != ed25519.PublicKeySize {
		return nil, errors.New("audit: verify: an Ed25519 public key is required")
	}
	v := verifier{opts: opts, lr: lineReader{br: bufio.NewReaderSize(r, 64<<10)}}
	err := v.run()
	v.res.UnverifiedTail = v.res.Lines - v.res.VerifiedLines
	return &v.res, err
}

type verifier struct {
	opts VerifyOptions
	lr   lineReader
	res  VerifyResult

	lastSeq    uint64
	lastHash   [sha256.Size]byte
	lastWasCP  bool
	head       [sha256.Size]byte // hash of the last entry line read
	haveHead   bool
	cp         cpFields // last checkpoint read
	cpTime     time.Time
	cpHead     [sha256.Size]byte
	haveCP     bool
	pending    uint64 // entries since cp
	dueAfter   int    // line after which a checkpoint is due (0: none)
	dueReason  string
	anchorSeen bool
}

func (v *verifier) fail(line int, format string, args ...any) error {
	return &VerifyError{Line: line, Reason: fmt.Sprintf(format, args...)}
}

func (v *verifier) run() error {
	for {
		l, err := v.lr.next()
		if err == io.EOF {
			return v.end()
		}
		if err != nil {
			return fmt.Errorf("audit: verify: reading line %d: %w", v.lr.n, err)
		}
		if err := v.line(l); err != nil {
			return err
		}
	}
}

func (v *verifier) line(l rawLine) error {
	i := l.no
	if !l.complete {
		return v.fail(i, "incomplete last line: the log was cut in the middle of a line")
	}
	var h lineHeader
	if err := json.Unmarshal(l.b, &h); err != nil {
		return v.fail(i, "not valid JSON: the line was modified or corrupted")
	}
	if h.Seq == nil || h.Prev == nil {
		return v.fail(i, "no seq or prev: not a line of a Ward audit chain (or modified)")
	}
	seq := *h.Seq
	var prev [sha256.Size]byte
	if len(*h.Prev) != 2*sha256.Size {
		return v.fail(i, "malformed prev: want %d hex characters", 2*sha256.Size)
	}
	if err := decodeHash(&prev, *h.Prev); err != nil {
		return v.fail(i, "malformed prev: %v", err)
	}
	sum := sha256.Sum256(l.b)

	if i == 1 {
		if seq == 0 {
			return v.fail(i, "seq 0: sequence numbers start at 1")
		}
		if seq == 1 && prev != zeroHash {
			return v.fail(i, "seq 1 must chain to the genesis hash (all zeros)")
		}
		v.res.FirstSeq, v.res.FirstPrev = seq, *h.Prev
	} else {
		if seq != v.lastSeq+1 {
			return v.fail(i, "seq %d where %d was expected: a line was removed before this one, or lines were reordered", seq, v.lastSeq+1)
		}
		if prev != v.lastHash {
			if !v.lastWasCP && v.lr.nextLinksTo(sum) {
				return v.fail(i-1, "the line was modified: its hash does not match the prev recorded by line %d", i)
			}
			return v.fail(i, "prev does not match the hash of line %d: this line was modified", i-1)
		}
	}
	if v.dueAfter != 0 && h.Type != "checkpoint" {
		return v.fail(i, "a checkpoint was due after line %d (%s) but an entry follows: the checkpoint was removed", v.dueAfter, v.dueReason)
	}
	v.dueAfter = 0

	switch h.Type {
	case "checkpoint":
		if err := v.checkpoint(i, l.b, seq, sum); err != nil {
			return err
		}
	case "request", "response":
		t, err := time.Parse(time.RFC3339Nano, h.Time)
		if err != nil {
			return v.fail(i, "malformed time")
		}
		v.res.Entries++
		v.pending++
		v.head, v.haveHead = sum, true
		if v.haveCP {
			switch {
			case v.pending >= v.cp.IntervalEntries:
				v.dueAfter, v.dueReason = i, fmt.Sprintf("%d entries since the checkpoint at seq %d", v.pending, v.cp.Seq)
			case due(v.cpTime, time.Duration(v.cp.IntervalMS)*time.Millisecond, t):
				v.dueAfter, v.dueReason = i, fmt.Sprintf("%dms elapsed since the checkpoint at seq %d", v.cp.IntervalMS, v.cp.Seq)
			}
		}
		v.lastWasCP = false
	default:
		return v.fail(i, "unknown line type %q", h.Type)
	}

	if a := v.opts.Anchor; a != nil && seq == a.Seq {
		if hex.EncodeToString(sum[:]) != a.Hash {
			return v.fail(i, "does not match the anchor checkpoint seq %d", a.Seq)
		}
		v.anchorSeen = true
	}
	v.res.Lines = i
	v.res.LastSeq = seq
	v.lastSeq, v.lastHash = seq, sum
	return nil
}

// checkpointLine is a checkpoint as read.
type checkpointLine struct {
	Type string `json:"type"`
	cpFields
	Signature string `json:"signature"`
}

func (v *verifier) checkpoint(i int, b []byte, seq uint64, sum [sha256.Size]byte) error {
	var c checkpointLine
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return v.fail(i, "malformed checkpoint: %v", err)
	}
	unsigned := c.appendUnsigned(nil)
	if !bytes.Equal(appendSigned(nil, unsigned, c.Signature), b) {
		return v.fail(i, "checkpoint is not in canonical form: the line was modified")
	}
	sig, err := base64.StdEncoding.DecodeString(c.Signature)
	if err != nil || !ed25519.Verify(v.opts.PublicKey, append([]byte(sigDomain), unsigned...), sig) {
		return v.fail(i, "bad checkpoint signature (modified, or signed with another key)")
	}
	t, err := time.Parse(time.RFC3339Nano, c.Time)
	if err != nil {
		return v.fail(i, "malformed checkpoint time")
	}
	if c.IntervalEntries == 0 || c.IntervalMS <= 0 {
		return v.fail(i, "checkpoint has no interval")
	}
	var head [sha256.Size]byte
	if err := decodeHash(&head, c.Head); err != nil {
		return v.fail(i, "malformed checkpoint head: %v", err)
	}
	switch {
	case v.haveHead && head != v.head:
		return v.fail(i, "checkpoint head is not the hash of the last entry line")
	case !v.haveHead && v.haveCP && head != v.cpHead:
		return v.fail(i, "checkpoint head differs from the previous checkpoint's, with no entry between")
	}
	if v.haveCP {
		if c.Count != v.pending {
			return v.fail(i, "checkpoint count %d, but %d entries follow the previous checkpoint", c.Count, v.pending)
		}
		if c.PrevCheckpoint != v.cp.Seq {
			return v.fail(i, "checkpoint names seq %d as the previous checkpoint, but it is seq %d", c.PrevCheckpoint, v.cp.Seq)
		}
	}
	v.cp, v.cpTime, v.cpHead, v.haveCP = c.cpFields, t, head, true
	v.pending = 0
	v.lastWasCP = true
	v.res.Checkpoints++
	v.res.VerifiedLines = i
	v.res.LastCheckpoint = Checkpoint{Seq: seq, Hash: hex.EncodeToString(sum[:]), Time: t}
	v.res.LastCheckpointLine = i
	return nil
}

func (v *verifier) end() error {
	n := v.res.Lines
	switch {
	case n == 0:
		return v.fail(1, "the log is empty")
	case v.dueAfter != 0:
		return v.fail(n+1, "the log ends after line %d where a checkpoint was due (%s): it was truncated", v.dueAfter, v.dueReason)
	case !v.haveCP:
		return v.fail(n+1, "the log has no checkpoint: nothing in it is signed")
	}
	if a := v.opts.Anchor; a != nil && !v.anchorSeen {
		if v.res.LastSeq < a.Seq {
			return v.fail(n+1, "the log ends at seq %d but the device wrote checkpoint seq %d: the log was truncated after line %d", v.res.LastSeq, a.Seq, n)
		}
		return v.fail(1, "the log starts at seq %d, after the anchor checkpoint seq %d", v.res.FirstSeq, a.Seq)
	}
	return nil
}

// rawLine is one line of the log without its newline.
type rawLine struct {
	no       int
	b        []byte
	complete bool // ended with a newline
}

// lineReader reads lines and can look one line ahead.
type lineReader struct {
	br     *bufio.Reader
	n      int
	peeked *rawLine
	err    error
}

func (r *lineReader) read() (rawLine, error) {
	if r.err != nil {
		return rawLine{}, r.err
	}
	b, err := r.br.ReadBytes('\n')
	if len(b) == 0 && err != nil {
		r.err = err
		return rawLine{}, err
	}
	r.n++
	l := rawLine{no: r.n, b: b, complete: err == nil}
	if l.complete {
		l.b = b[:len(b)-1]
	}
	return l, nil
}

func (r *lineReader) next() (rawLine, error) {
	if r.peeked != nil {
		l := *r.peeked
		r.peeked = nil
		return l, nil
	}
	return r.read()
}

// nextLinksTo reports whether the next line parses and records sum as its
// prev (the line is peeked, not consumed).
func (r *lineReader) nextLinksTo(sum [sha256.Size]byte) bool {
	if r.peeked == nil {
		l, err := r.read()
		if err != nil {
			return false
		}
		r.peeked = &l
	}
	var h lineHeader
	if json.Unmarshal(r.peeked.b, &h) != nil || h.Prev == nil {
		return false
	}
	var prev [sha256.Size]byte
	return decodeHash(&prev, *h.Prev) == nil && prev == sum
}
