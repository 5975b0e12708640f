package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/wardproject/ward/kernel/audit"
)

// `ward audit verify` checks audit log files locally: it reads them and
// hands them to the verifier of kernel/audit, the only code that knows
// the chain and checkpoint format. The server is only asked, with -device,
// for the public key and the latest checkpoint; the log never leaves the
// machine.

type auditVerifyCommand struct {
	baseCommand
	flagKey        string
	flagKeyFile    string
	flagDevice     string
	flagAnchorSeq  uint64
	flagAnchorHash string
	flagNoAnchor   bool
}

func (c *auditVerifyCommand) Synopsis() string { return "Verify audit log files" }

func (c *auditVerifyCommand) Help() string {
	return helpText(`
Usage: ward audit verify [options] FILE...

  Verifies audit log files written by a Ward audit device: every line is
  chained to the one before it by a hash, and the device signs a checkpoint
  line at regular intervals. The first line that was modified, removed,
  reordered or cut is reported as FILE:LINE with the reason.

  The device's public key is given with -key (base64), read from a file
  with -key-file, or fetched from the server with -device=PATH
  (sys/audit/PATH/verify-key; needs a token with sudo). -device also uses
  the device's latest checkpoint as the anchor: the log must contain it,
  which detects a log cut right after an earlier checkpoint. -anchor-seq
  and -anchor-hash give an anchor explicitly; -no-anchor verifies without
  the server's (to check an archived file that ends before it).

  Several FILEs are verified as one log, in the order given: list rotated
  files oldest first, with none missing between them. A FILE of - reads
  standard input (e.g. a decompressed rotated file).

      $ ward audit verify -device=file /var/log/ward/audit.log
      $ ward audit verify -key-file=file.pub audit.log.2 audit.log.1 audit.log
      $ zcat audit.log.3.gz | ward audit verify -key=… -

  Lines after the last checkpoint are not covered by a signature yet: they
  are counted as the unverified tail, not as an error.

  Exit codes: 0 when the log is valid, 2 when it is not (or the server
  could not be asked for the key), 1 for a usage or local error (a missing
  file, a malformed key).
`, c.flags())
}

func (c *auditVerifyCommand) flags() *flag.FlagSet {
	fs := c.flagSet("audit verify", withFormat)
	fs.StringVar(&c.flagKey, "key", "", "The device's checkpoint verification key: base64 of the raw Ed25519 public key.")
	fs.StringVar(&c.flagKeyFile, "key-file", "", "Read the verification key (base64) from this file.")
	fs.StringVar(&c.flagDevice, "device", "",
		"Fetch the verification key and the latest checkpoint (the anchor) of the audit device at this path from the server.")
	fs.Uint64Var(&c.flagAnchorSeq, "anchor-seq", 0, "Sequence number of a checkpoint the log must contain (with -anchor-hash).")
	fs.StringVar(&c.flagAnchorHash, "anchor-hash", "", "Hex SHA-256 of that checkpoint line (with -anchor-seq).")
	fs.BoolVar(&c.flagNoAnchor, "no-anchor", false, "With -device, do not require the log to contain the device's latest checkpoint.")
	return fs
}

// verifyAnchor is the anchor used and where it came from.
type verifyAnchor struct {
	Seq    uint64     `json:"seq"`
	Hash   string     `json:"hash"`
	Time   *time.Time `json:"time,omitempty"` // known only from the server
	Source string     `json:"source"`         // "server" or "flags"
}

func (a *verifyAnchor) checkpoint() *audit.Checkpoint {
	return &audit.Checkpoint{Seq: a.Seq, Hash: a.Hash}
}

func (c *auditVerifyCommand) Run(args []string) int {
	fs := c.flags()
	files, ok := c.parse(fs, args)
	if !ok || !checkArgs(files, 1, -1) {
		return exitLocal
	}
	if n := countSet(c.flagKey != "", c.flagKeyFile != "", c.flagDevice != ""); n != 1 {
		printErr("Give exactly one of -key, -key-file and -device")
		return exitLocal
	}
	anchor, ok := c.flagAnchor(fs)
	if !ok {
		return exitLocal
	}
	stdinFiles := 0
	for _, f := range files {
		if f == "-" {
			stdinFiles++
		}
	}
	if stdinFiles > 1 {
		printErr("Standard input (-) can be given only once")
		return exitLocal
	}

	var pub ed25519.PublicKey
	var err error
	switch {
	case c.flagKey != "":
		if pub, err = audit.ParsePublicKey(c.flagKey); err != nil {
			printErr("Invalid -key: %s", err)
			return exitLocal
		}
	case c.flagKeyFile != "":
		raw, err := os.ReadFile(c.flagKeyFile)
		if err != nil {
			printErr("Error reading the key file: %s", err)
			return exitLocal
		}
		if pub, err = audit.ParsePublicKey(string(raw)); err != nil {
			printErr("Invalid key in %s: %s", c.flagKeyFile, err)
			return exitLocal
		}
	default:
		// Fetched before the files are read: they then hold the anchor
		// (and maybe later lines), whereas an anchor fetched afterwards
		// could be newer than what was read and look like a truncation.
		var serverAnchor *audit.Checkpoint
		var code int
		if pub, serverAnchor, code = c.fetchVerifyKey(); code != exitOK {
			return code
		}
		if anchor == nil && serverAnchor != nil && !c.flagNoAnchor {
			anchor = &verifyAnchor{Seq: serverAnchor.Seq, Hash: serverAnchor.Hash, Time: &serverAnchor.Time, Source: "server"}
		}
	}

	log, err := openLogFiles(files)
	if err != nil {
		printErr("Error %s", err)
		return exitLocal
	}
	defer log.Close()

	opts := audit.VerifyOptions{PublicKey: pub}
	if anchor != nil {
		opts.Anchor = anchor.checkpoint()
	}
	res, err := audit.VerifyLog(log, opts)
	var ve *audit.VerifyError
	switch {
	case errors.As(err, &ve):
		return c.reportInvalid(log, res, anchor, ve)
	case err != nil:
		var re *logReadError
		if errors.As(err, &re) {
			printErr("Error reading %s: %s", re.name, re.err)
		} else {
			printErr("Error verifying the audit log: %s", err)
		}
		return exitLocal
	}
	return c.reportValid(log, res, anchor)
}

// flagAnchor reads -anchor-seq and -anchor-hash, which go together.
func (c *auditVerifyCommand) flagAnchor(fs *flag.FlagSet) (*verifyAnchor, bool) {
	seqSet, hashSet := flagWasSet(fs, "anchor-seq"), flagWasSet(fs, "anchor-hash")
	switch {
	case !seqSet && !hashSet:
		return nil, true
	case seqSet != hashSet:
		printErr("-anchor-seq and -anchor-hash must be given together")
		return nil, false
	case c.flagNoAnchor:
		printErr("-no-anchor cannot be combined with -anchor-seq and -anchor-hash")
		return nil, false
	case c.flagAnchorSeq == 0:
		printErr("Invalid -anchor-seq: sequence numbers start at 1")
		return nil, false
	}
	h := strings.ToLower(strings.TrimSpace(c.flagAnchorHash))
	if b, err := hex.DecodeString(h); err != nil || len(b) != 32 {
		printErr("Invalid -anchor-hash: want the 64 hex characters of a SHA-256")
		return nil, false
	}
	return &verifyAnchor{Seq: c.flagAnchorSeq, Hash: h, Source: "flags"}, true
}

// fetchVerifyKey reads sys/audit/<device>/verify-key: the device's public
// key and its last checkpoint (nil when it has written none yet).
func (c *auditVerifyCommand) fetchVerifyKey() (ed25519.PublicKey, *audit.Checkpoint, int) {
	device := sanitizePath(c.flagDevice)
	if device == "" {
		printErr("Invalid -device: empty path")
		return nil, nil, exitLocal
	}
	client, err := c.client()
	if err != nil {
		return nil, nil, clientFailed(err)
	}
	doing := "reading the verification key of audit device " + device + "/"
	secret, err := client.Logical().ReadWithContext(context.Background(), auditAPIPath(device)+"/verify-key")
	if err != nil {
		return nil, nil, remoteFailed(doing, err)
	}
	if secret == nil || secret.Data == nil {
		printErr("Error %s: no such audit device", doing)
		return nil, nil, exitRemote
	}
	keyText, _ := secret.Data["public_key"].(string)
	pub, err := audit.ParsePublicKey(keyText)
	if err != nil {
		printErr("Error %s: the server sent an invalid key: %s", doing, err)
		return nil, nil, exitRemote
	}
	raw, ok := secret.Data["last_checkpoint"]
	if !ok || raw == nil {
		return pub, nil, exitOK
	}
	var cp audit.Checkpoint
	b, _ := json.Marshal(raw)
	if err := json.Unmarshal(b, &cp); err != nil {
		printErr("Error %s: the server sent an invalid last_checkpoint: %s", doing, err)
		return nil, nil, exitRemote
	}
	if cp.Seq == 0 {
		return pub, nil, exitOK // no checkpoint written yet
	}
	return pub, &cp, exitOK
}

// verifyOutput is what -format=json prints, valid or not.
type verifyOutput struct {
	Valid          bool                `json:"valid"`
	Error          *verifyErrorOutput  `json:"error,omitempty"`
	Files          []string            `json:"files"`
	Lines          int                 `json:"lines"`
	Entries        int                 `json:"entries"`
	Checkpoints    int                 `json:"checkpoints"`
	VerifiedLines  int                 `json:"verified_lines"`
	UnverifiedTail int                 `json:"unverified_tail"`
	FirstSeq       uint64              `json:"first_seq"`
	FirstPrev      string              `json:"first_prev"`
	LastSeq        uint64              `json:"last_seq"`
	LastCheckpoint *checkpointLocation `json:"last_checkpoint"`
	Anchor         *verifyAnchor       `json:"anchor"`
}

type verifyErrorOutput struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

type checkpointLocation struct {
	audit.Checkpoint
	File string `json:"file"`
	Line int    `json:"line"`
}

func newVerifyOutput(log *logFiles, res *audit.VerifyResult, anchor *verifyAnchor) verifyOutput {
	out := verifyOutput{Files: log.names(), Anchor: anchor}
	if res == nil {
		return out
	}
	out.Lines, out.Entries, out.Checkpoints = res.Lines, res.Entries, res.Checkpoints
	out.VerifiedLines, out.UnverifiedTail = res.VerifiedLines, res.UnverifiedTail
	out.FirstSeq, out.FirstPrev, out.LastSeq = res.FirstSeq, res.FirstPrev, res.LastSeq
	if res.Checkpoints > 0 {
		file, line := log.position(res.LastCheckpointLine)
		out.LastCheckpoint = &checkpointLocation{Checkpoint: res.LastCheckpoint, File: file, Line: line}
	}
	return out
}

func (c *auditVerifyCommand) reportInvalid(log *logFiles, res *audit.VerifyResult, anchor *verifyAnchor, ve *audit.VerifyError) int {
	file, line := log.position(ve.Line)
	reason := log.localizeReason(ve.Reason)
	if line == 1 && file != log.files[0].name &&
		(strings.HasPrefix(reason, "seq ") || strings.HasPrefix(reason, "prev does not match")) {
		reason += " (give rotated files oldest first, with none missing between them)"
	}
	if c.jsonOutput() {
		out := newVerifyOutput(log, res, anchor)
		out.Error = &verifyErrorOutput{File: file, Line: line, Reason: reason}
		if code := printJSON(out); code != exitOK {
			return code
		}
	}
	printErr("%s:%d: %s", file, line, reason)
	printErr("Error: the audit log failed verification (first bad line above)")
	return exitRemote
}

func (c *auditVerifyCommand) reportValid(log *logFiles, res *audit.VerifyResult, anchor *verifyAnchor) int {
	out := newVerifyOutput(log, res, anchor)
	if c.jsonOutput() {
		out.Valid = true
		return printJSON(out)
	}
	writeOut(fmt.Sprintf("Success! The audit log is valid (%s).\n\n", strings.Join(out.Files, ", ")))
	rows := [][]string{
		{"lines", strconv.Itoa(res.Lines)},
		{"entries", strconv.Itoa(res.Entries)},
		{"checkpoints", strconv.Itoa(res.Checkpoints)},
		{"verified_lines", strconv.Itoa(res.VerifiedLines)},
		{"unverified_tail", strconv.Itoa(res.UnverifiedTail)},
		{"first_seq", strconv.FormatUint(res.FirstSeq, 10)},
		{"last_seq", strconv.FormatUint(res.LastSeq, 10)},
	}
	if cp := out.LastCheckpoint; cp != nil {
		rows = append(rows,
			[]string{"last_checkpoint_seq", strconv.FormatUint(cp.Seq, 10)},
			[]string{"last_checkpoint_time", cp.Time.UTC().Format(time.RFC3339Nano)},
			[]string{"last_checkpoint_hash", cp.Hash},
			[]string{"last_checkpoint_line", fmt.Sprintf("%s:%d", cp.File, cp.Line)})
	}
	anchorText := "none"
	if anchor != nil {
		anchorText = fmt.Sprintf("seq %d (from the %s)", anchor.Seq, anchor.Source)
	}
	rows = append(rows, []string{"anchor", anchorText})
	printKeyValues(rows)

	var notes []string
	if res.UnverifiedTail > 0 {
		notes = append(notes, fmt.Sprintf("The last %d line(s) follow the last checkpoint: no signature covers them yet, "+
			"so they could have been altered, or removed from the end, without detection.", res.UnverifiedTail))
	}
	if anchor == nil {
		notes = append(notes, "No anchor: a log cut right after one of its checkpoints would verify too. "+
			"Use -device, or -anchor-seq and -anchor-hash, to rule that out.")
	}
	if res.FirstSeq > 1 {
		notes = append(notes, fmt.Sprintf("The log starts at seq %d: it continues an earlier file, whose last line "+
			"hashes to %s.", res.FirstSeq, res.FirstPrev))
	}
	for _, n := range notes {
		writeOut("\n" + strings.Join(wrapWords(n, 78), "\n") + "\n")
	}
	return exitOK
}

// ---- reading several files as one log ----

// logFiles reads the files of a log one after the other as one stream
// (as io.MultiReader would) and counts each file's lines, so that a line
// number of the stream (what the verifier reports) can be mapped back to a
// file and a line in it.
//
// A file other than the last that does not end with a newline ends the
// stream's line there with errCutLine rather than gluing its cut last line
// to the next file's first: the verifier's line reader takes a read error
// after some bytes as the end of an incomplete line, and reports it.
type logFiles struct {
	files []*logFile
	cur   int // index of the file being read
}

type logFile struct {
	name   string
	r      io.Reader
	closer io.Closer // nil for stdin
	// lines counts the newlines read, plus the cut last line once the file
	// has ended without a newline; size and last are the bytes read so far
	// and the last of them.
	lines int
	size  int64
	last  byte
}

// errCutLine ends the stream's line at the cut end of a file (see logFiles).
var errCutLine = errors.New("file ends in the middle of a line")

// logReadError is a failure to read one of the files.
type logReadError struct {
	name string
	err  error
}

func (e *logReadError) Error() string { return e.name + ": " + e.err.Error() }
func (e *logReadError) Unwrap() error { return e.err }

// openLogFiles opens every file first, so a missing one is reported before
// anything is verified. "-" is standard input.
func openLogFiles(names []string) (*logFiles, error) {
	l := &logFiles{}
	for _, name := range names {
		if name == "-" {
			l.files = append(l.files, &logFile{name: "<stdin>", r: stdin})
			continue
		}
		f, err := os.Open(name)
		if err == nil {
			var fi os.FileInfo
			if fi, err = f.Stat(); err == nil && fi.IsDir() {
				err = errors.New("is a directory")
			}
			if err != nil {
				f.Close()
			}
		}
		if err != nil {
			l.Close()
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, fmt.Errorf("opening %s: %w", name, err)
		}
		l.files = append(l.files, &logFile{name: name, r: f, closer: f})
	}
	return l, nil
}

func (l *logFiles) Read(p []byte) (int, error) {
	for l.cur < len(l.files) {
		f := l.files[l.cur]
		n, err := f.r.Read(p)
		if n > 0 {
			for _, b := range p[:n] {
				if b == '\n' {
					f.lines++
				}
			}
			f.size += int64(n)
			f.last = p[n-1]
		}
		switch {
		case err == io.EOF:
			l.cur++
			cut := f.size > 0 && f.last != '\n'
			if cut {
				f.lines++
				if l.cur < len(l.files) {
					return n, errCutLine
				}
			}
			if n > 0 {
				return n, nil
			}
		case err != nil:
			return n, &logReadError{name: f.name, err: err}
		default:
			return n, nil
		}
	}
	return 0, io.EOF
}

func (l *logFiles) Close() error {
	for _, f := range l.files {
		if f.closer != nil {
			f.closer.Close()
		}
	}
	return nil
}

func (l *logFiles) names() []string {
	out := make([]string, len(l.files))
	for i, f := range l.files {
		out[i] = f.name
	}
	return out
}

// position maps a line number of the stream to a file and a line in it.
// The verifier reads the stream at least up to the line it reports, so
// every file before that line's file has been read to its end. A line
// after the last one (the verifier's "the log ends here") is placed after
// the last line of the last file that has any.
func (l *logFiles) position(line int) (string, int) {
	rest := line
	for _, f := range l.files {
		if rest <= f.lines {
			return f.name, rest
		}
		rest -= f.lines
	}
	for i := len(l.files) - 1; i >= 0; i-- {
		if f := l.files[i]; f.lines > 0 {
			return f.name, f.lines + rest
		}
	}
	return l.files[0].name, line
}

// lineRef matches the line numbers the verifier's reasons mention ("the
// prev recorded by line 10").
var lineRef = regexp.MustCompile(`\bline (\d+)\b`)

// localizeReason rewrites the stream line numbers in a reason as FILE:LINE
// when the log spans several files; with one file they are already right.
func (l *logFiles) localizeReason(reason string) string {
	if len(l.files) < 2 {
		return reason
	}
	return lineRef.ReplaceAllStringFunc(reason, func(m string) string {
		n, err := strconv.Atoi(m[len("line "):])
		if err != nil {
			return m
		}
		file, line := l.position(n)
		return fmt.Sprintf("%s:%d", file, line)
	})
}

// countSet counts the true values.
func countSet(b ...bool) int {
	n := 0
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}
