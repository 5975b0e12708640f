package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardproject/ward/kernel/audit"
)

// testAuditLog is a real audit log written by kernel/audit: a file device
// behind a broker, with a checkpoint every 5 entries and a clock that
// moves 1ms per reading (so no time checkpoint ever falls due).
type testAuditLog struct {
	path   string
	pub    string // base64 public key
	dev    *audit.FileDevice
	broker *audit.Broker
	n      int // entries logged so far
}

type stepClock struct {
	mu sync.Mutex // protects t
	t  time.Time
}

func (c *stepClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

func newTestAuditLog(t *testing.T) *testAuditLog {
	t.Helper()
	clock := &stepClock{t: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))
	path := filepath.Join(t.TempDir(), "audit.log")
	dev, err := audit.NewFileDevice(context.Background(), audit.FileConfig{
		DeviceConfig: audit.DeviceConfig{
			HMACKey:         bytes.Repeat([]byte{7}, audit.KeySize),
			SigningKey:      key,
			CheckpointEvery: 5,
			Now:             clock.now,
		},
		Path: path,
	})
	if err != nil {
		t.Fatal(err)
	}
	b := audit.NewBroker(audit.BrokerOptions{Now: clock.now})
	if err := b.Enable("file/", dev); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return &testAuditLog{path: path, pub: audit.PublicKeyString(dev.PublicKey()), dev: dev, broker: b}
}

// log records n entries, alternating requests and responses.
func (l *testAuditLog) log(t *testing.T, n int) {
	t.Helper()
	for range n {
		l.n++
		req := &audit.Request{
			ID: fmt.Sprintf("req-%d", l.n), Operation: "update", Path: "secret/data/app",
			MountPoint: "secret/", MountType: "kv", ClientToken: fmt.Sprintf("token-%d", l.n),
			Data: map[string]any{"data": map[string]any{"password": fmt.Sprintf("pw-%d", l.n)}},
		}
		var err error
		if l.n%2 == 1 {
			err = l.broker.LogRequest(context.Background(), req)
		} else {
			err = l.broker.LogResponse(context.Background(), &audit.Response{Request: req, StatusCode: 200})
		}
		if err != nil {
			t.Fatalf("entry %d: %v", l.n, err)
		}
	}
}

// anchorFlags returns -anchor-seq and -anchor-hash for the device's latest
// checkpoint.
func (l *testAuditLog) anchorFlags() []string {
	cp := l.dev.LastCheckpoint()
	return []string{fmt.Sprintf("-anchor-seq=%d", cp.Seq), "-anchor-hash=" + cp.Hash}
}

func readLogLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func writeLogLines(t *testing.T, lines []string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// verify runs `ward audit verify` with args.
func verify(t *testing.T, args ...string) result {
	t.Helper()
	return ward(t, "", append([]string{"audit", "verify"}, args...)...)
}

// wantBadLine checks an invalid-log result: exit 2 and a first stderr line
// "FILE:LINE: reason" with reason containing want.
func wantBadLine(t *testing.T, r result, file string, line int, want string) {
	t.Helper()
	r.wantCode(t, exitRemote)
	first, _, _ := strings.Cut(r.stderr, "\n")
	prefix := fmt.Sprintf("%s:%d: ", file, line)
	if !strings.HasPrefix(first, prefix) || !strings.Contains(first, want) {
		t.Fatalf("stderr first line = %q, want %q…%q", first, prefix, want)
	}
}

// 23 entries with a checkpoint every 5 give 28 lines: the open checkpoint
// (1), entries 2-6, checkpoint 7, 8-12, 13, 14-18, 19, 20-24, 25, and
// entries 26-28 (the unverified tail).
func TestAuditVerifyValid(t *testing.T) {
	isolateEnv(t)
	l := newTestAuditLog(t)
	l.log(t, 23)
	lines := readLogLines(t, l.path)
	if len(lines) != 28 || !strings.Contains(lines[24], `"type":"checkpoint"`) {
		t.Fatalf("unexpected log layout (%d lines)", len(lines))
	}

	r := verify(t, "-key="+l.pub, l.path).wantCode(t, 0)
	if !strings.HasPrefix(r.stdout, "Success! The audit log is valid ("+l.path+").") {
		t.Errorf("stdout = %q", r.stdout)
	}
	kv := parseKeyValueTable(t, r.stdout)
	cp := l.dev.LastCheckpoint()
	want := map[string]string{
		"lines": "28", "entries": "23", "checkpoints": "5", "verified_lines": "25", "unverified_tail": "3",
		"first_seq": "1", "last_seq": "28", "last_checkpoint_seq": "25", "last_checkpoint_hash": cp.Hash,
		"last_checkpoint_line": l.path + ":25", "anchor": "none",
		"last_checkpoint_time": cp.Time.UTC().Format(time.RFC3339Nano),
	}
	for k, v := range want {
		if kv[k] != v {
			t.Errorf("%s = %q, want %q", k, kv[k], v)
		}
	}
	if !strings.Contains(r.stdout, "The last 3 line(s) follow the last checkpoint") || !strings.Contains(r.stdout, "No anchor") {
		t.Errorf("notes missing:\n%s", r.stdout)
	}

	// The key from a file (with its newline), and an explicit anchor.
	keyFile := filepath.Join(t.TempDir(), "file.pub")
	os.WriteFile(keyFile, []byte(l.pub+"\n"), 0o600)
	r = verify(t, append([]string{"-key-file=" + keyFile}, append(l.anchorFlags(), l.path)...)...).wantCode(t, 0)
	if kv := parseKeyValueTable(t, r.stdout); kv["anchor"] != "seq 25 (from the flags)" {
		t.Errorf("anchor = %q", kv["anchor"])
	}

	// JSON.
	var out map[string]any
	r = verify(t, "-format=json", "-key="+l.pub, l.path).wantCode(t, 0)
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatal(err)
	}
	if out["valid"] != true || out["lines"] != float64(28) || out["unverified_tail"] != float64(3) || out["anchor"] != nil {
		t.Errorf("json = %v", out)
	}
	lc := out["last_checkpoint"].(map[string]any)
	if lc["seq"] != float64(25) || lc["line"] != float64(25) || lc["file"] != l.path || lc["hash"] != cp.Hash {
		t.Errorf("last_checkpoint = %v", lc)
	}

	// From stdin.
	raw, _ := os.ReadFile(l.path)
	r = ward(t, string(raw), "audit", "verify", "-key="+l.pub, "-").wantCode(t, 0)
	if kv := parseKeyValueTable(t, r.stdout); kv["last_checkpoint_line"] != "<stdin>:25" {
		t.Errorf("last_checkpoint_line = %q", kv["last_checkpoint_line"])
	}
}

func TestAuditVerifyTampered(t *testing.T) {
	isolateEnv(t)
	l := newTestAuditLog(t)
	l.log(t, 23)
	lines := readLogLines(t, l.path)
	mutate := func(f func(l []string) []string) string {
		return writeLogLines(t, f(append([]string(nil), lines...)))
	}
	anchor := l.anchorFlags()

	tests := []struct {
		name   string
		path   string
		extra  []string
		line   int
		reason string
	}{
		{"edit one byte", mutate(func(l []string) []string {
			l[8] = flipHexAfter(t, l[8], `"password":"hmac-sha256:`)
			return l
		}), nil, 9, "modified"},
		{"delete a line", mutate(func(l []string) []string { return append(l[:8], l[9:]...) }), nil, 9, "removed"},
		{"swap two lines", mutate(func(l []string) []string { l[9], l[10] = l[10], l[9]; return l }), nil, 10, "reordered"},
		{"truncate after a checkpoint, with an anchor", mutate(func(l []string) []string { return l[:19] }), anchor, 20, "truncated"},
		{"delete a checkpoint", mutate(func(l []string) []string { return append(l[:12], l[13:]...) }), nil, 13, "removed"},
		{"cut in the middle of the last line", func() string {
			p := mutate(func(l []string) []string { return l })
			raw, _ := os.ReadFile(p)
			os.WriteFile(p, raw[:len(raw)-20], 0o600)
			return p
		}(), nil, 28, "incomplete"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"-key=" + l.pub}, tc.extra...)
			wantBadLine(t, verify(t, append(args, tc.path)...), tc.path, tc.line, tc.reason)
		})
	}

	t.Run("the same truncation without an anchor is a valid prefix", func(t *testing.T) {
		path := mutate(func(l []string) []string { return l[:19] })
		verify(t, "-key="+l.pub, path).wantCode(t, 0)
	})

	t.Run("wrong key", func(t *testing.T) {
		other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize)).Public().(ed25519.PublicKey)
		wantBadLine(t, verify(t, "-key="+audit.PublicKeyString(other), l.path), l.path, 1, "signature")
	})

	t.Run("json", func(t *testing.T) {
		path := mutate(func(l []string) []string { return append(l[:8], l[9:]...) })
		r := verify(t, "-format=json", "-key="+l.pub, path)
		wantBadLine(t, r, path, 9, "removed")
		out := mustJSON(t, r.stdout)
		e := out["error"].(map[string]any)
		if out["valid"] != false || e["file"] != path || e["line"] != float64(9) || !strings.Contains(e["reason"].(string), "removed") {
			t.Errorf("json = %v", out)
		}
	})
}

func TestAuditVerifyUsage(t *testing.T) {
	f := setup(t) // no request may reach the server
	l := newTestAuditLog(t)
	l.log(t, 3)
	missing := filepath.Join(t.TempDir(), "nope.log")

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-key=" + l.pub, missing}, "Error opening " + missing + ": no such file or directory"},
		{[]string{"-key=" + l.pub, l.path, missing}, "Error opening " + missing},
		{[]string{"-key=" + l.pub, t.TempDir()}, "is a directory"},
		{[]string{"-key=bm90IGEga2V5", l.path}, "Invalid -key"},
		{[]string{"-key=%%%", l.path}, "Invalid -key"},
		{[]string{"-key-file=" + missing, l.path}, "Error reading the key file"},
		{[]string{l.path}, "exactly one of -key, -key-file and -device"},
		{[]string{"-key=" + l.pub, "-device=file", l.path}, "exactly one of"},
		{[]string{"-key=" + l.pub}, "Not enough arguments"},
		{[]string{"-key=" + l.pub, "-anchor-seq=3", l.path}, "must be given together"},
		{[]string{"-key=" + l.pub, "-anchor-seq=3", "-anchor-hash=xyz", l.path}, "Invalid -anchor-hash"},
		{[]string{"-key=" + l.pub, "-anchor-seq=0", "-anchor-hash=" + strings.Repeat("a", 64), l.path}, "Invalid -anchor-seq"},
		{[]string{"-key=" + l.pub, "-", "-"}, "only once"},
		{[]string{"-key=" + l.pub, l.path, "-format=json"}, "must come before"},
	} {
		r := verify(t, tc.args...).wantCode(t, exitLocal)
		if !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: stderr = %q, want %q", tc.args, r.stderr, tc.want)
		}
	}
	if len(f.allRequests()) != 0 {
		t.Errorf("requests sent: %+v", f.allRequests())
	}
}

// Rotated files (logrotate renames, SIGHUP reopens) verify together, in
// order, and errors name the file and its own line number.
func TestAuditVerifyRotated(t *testing.T) {
	isolateEnv(t)
	l := newTestAuditLog(t)
	dir := t.TempDir()
	rotate := func(to string) {
		t.Helper()
		if err := os.Rename(l.path, to); err != nil {
			t.Fatal(err)
		}
		if err := l.broker.Reopen(); err != nil {
			t.Fatal(err)
		}
	}
	first, second := filepath.Join(dir, "audit.log.2"), filepath.Join(dir, "audit.log.1")
	l.log(t, 8)   // open checkpoint 1, entries 2-6, checkpoint 7, entries 8-10
	rotate(first) // rotate checkpoint 11 ends it; the new file opens with checkpoint 12
	l.log(t, 6)   // entries 13-17, checkpoint 18, entry 19
	firstLines, secondLines := readLogLines(t, first), readLogLines(t, l.path)
	if len(firstLines) != 11 || len(secondLines) != 8 {
		t.Fatalf("%d and %d lines, want 11 and 8", len(firstLines), len(secondLines))
	}

	r := verify(t, "-key="+l.pub, first, l.path).wantCode(t, 0)
	kv := parseKeyValueTable(t, r.stdout)
	if kv["lines"] != "19" || kv["entries"] != "14" || kv["last_seq"] != "19" || kv["last_checkpoint_line"] != l.path+":7" {
		t.Errorf("table = %v", kv)
	}
	// The newer file alone starts mid-chain, which is said.
	r = verify(t, "-key="+l.pub, l.path).wantCode(t, 0)
	if !strings.Contains(r.stdout, "The log starts at seq 12") {
		t.Errorf("stdout = %q", r.stdout)
	}

	// Newest first: the older file's first line steps back.
	wantBadLine(t, verify(t, "-key="+l.pub, l.path, first), first, 1, "seq 1 where 20 was expected")
	wantBadLine(t, verify(t, "-key="+l.pub, l.path, first), first, 1, "oldest first")

	// A line edited in the second file is reported with its own number,
	// and so are the line numbers in the reason.
	lines := append([]string(nil), secondLines...)
	lines[3] = strings.Replace(lines[3], `"operation":"update"`, `"operation":"delete"`, 1)
	edited := writeLogLines(t, lines)
	wantBadLine(t, verify(t, "-key="+l.pub, first, edited), edited, 4, "the prev recorded by "+edited+":5")
	lines = append([]string(nil), secondLines...)
	lines[0] = flipHexAfter(t, lines[0], `"prev":"`)
	edited = writeLogLines(t, lines)
	wantBadLine(t, verify(t, "-key="+l.pub, first, edited), edited, 1, "prev does not match the hash of "+first+":11")

	// A file missing in between.
	l.log(t, 4)    // entries 20-23, checkpoint 24
	rotate(second) // no entry since checkpoint 24: the new file opens with checkpoint 25
	wantBadLine(t, verify(t, "-key="+l.pub, first, l.path), l.path, 1, "seq 25 where 12 was expected")
	wantBadLine(t, verify(t, "-key="+l.pub, first, l.path), l.path, 1, "none missing")
	r = verify(t, "-key="+l.pub, first, second, l.path).wantCode(t, 0)
	if kv := parseKeyValueTable(t, r.stdout); kv["lines"] != "25" || kv["last_checkpoint_line"] != l.path+":1" {
		t.Errorf("table = %v", kv)
	}

	// An older file cut in the middle of its last line is reported there,
	// not glued to the next file's first line.
	raw, _ := os.ReadFile(first)
	cut := filepath.Join(t.TempDir(), "audit.log.2")
	os.WriteFile(cut, raw[:len(raw)-10], 0o600)
	wantBadLine(t, verify(t, "-key="+l.pub, cut, second), cut, 11, "incomplete")

	// An empty rotated file among the others is harmless.
	empty := filepath.Join(t.TempDir(), "empty.log")
	os.WriteFile(empty, nil, 0o600)
	verify(t, "-key="+l.pub, first, empty, second, l.path).wantCode(t, 0)

	// Truncation of the last file after a checkpoint, with the anchor:
	// reported after the last line of the last file.
	l.log(t, 5) // entries 26-30, checkpoint 31
	anchor := l.anchorFlags()
	truncated := writeLogLines(t, readLogLines(t, l.path)[:1])
	wantBadLine(t, verify(t, append(append([]string{"-key=" + l.pub}, anchor...), first, second, truncated)...),
		truncated, 2, "truncated after "+truncated+":1")
}

// flipHexAfter changes the hex digit that follows marker in line into
// another hex digit.
func flipHexAfter(t *testing.T, line, marker string) string {
	t.Helper()
	i := strings.Index(line, marker)
	if i < 0 {
		t.Fatalf("%q not in line", marker)
	}
	b := []byte(line)
	j := i + len(marker)
	if b[j] == '0' {
		b[j] = '1'
	} else {
		b[j] = '0'
	}
	return string(b)
}

// -device fetches the key and the device's last checkpoint, which then
// anchors the log.
func TestAuditVerifyDevice(t *testing.T) {
	f := setup(t)
	l := newTestAuditLog(t)
	l.log(t, 23)
	cp := l.dev.LastCheckpoint()
	cpJSON, _ := json.Marshal(cp)
	f.on("GET", "/v1/sys/audit/file/verify-key", 200,
		`{"request_id":"r","data":{"public_key":"`+l.pub+`","last_checkpoint":`+string(cpJSON)+`}}`)

	r := verify(t, "-device=file/", l.path).wantCode(t, 0)
	if req := f.only("GET", "/v1/sys/audit/file/verify-key"); req.Token != "test-token" {
		t.Errorf("token = %q", req.Token)
	}
	if kv := parseKeyValueTable(t, r.stdout); kv["anchor"] != "seq 25 (from the server)" {
		t.Errorf("anchor = %q", kv["anchor"])
	}

	out := mustJSON(t, verify(t, "-format=json", "-device=file", l.path).wantCode(t, 0).stdout)
	a := out["anchor"].(map[string]any)
	if a["seq"] != float64(25) || a["hash"] != cp.Hash || a["source"] != "server" || a["time"] != cp.Time.Format(time.RFC3339Nano) {
		t.Errorf("anchor = %v", a)
	}

	// Cut right after an earlier checkpoint: only the anchor reveals it.
	truncated := writeLogLines(t, readLogLines(t, l.path)[:19])
	wantBadLine(t, verify(t, "-device=file", truncated), truncated, 20, "truncated")
	// Unless told not to use it, or given another anchor.
	verify(t, "-device=file", "-no-anchor", truncated).wantCode(t, 0)
	sum := sha256.Sum256([]byte(readLogLines(t, l.path)[18]))
	r = verify(t, "-device=file", "-anchor-seq=19", "-anchor-hash="+hex.EncodeToString(sum[:]), truncated).wantCode(t, 0)
	if kv := parseKeyValueTable(t, r.stdout); kv["anchor"] != "seq 19 (from the flags)" {
		t.Errorf("anchor = %q", kv["anchor"])
	}

	// No checkpoint yet: no anchor.
	f = setup(t)
	f.on("GET", "/v1/sys/audit/file/verify-key", 200, `{"request_id":"r","data":{"public_key":"`+l.pub+`","last_checkpoint":null}}`)
	r = verify(t, "-device=file", truncated).wantCode(t, 0)
	if kv := parseKeyValueTable(t, r.stdout); kv["anchor"] != "none" {
		t.Errorf("anchor = %q", kv["anchor"])
	}

	// Server errors.
	f = setup(t)
	f.on("GET", "/v1/sys/audit/file/verify-key", 403, `{"errors":["permission denied"]}`)
	r = verify(t, "-device=file", l.path).wantCode(t, exitRemote)
	if r.stderr != "Error reading the verification key of audit device file/: permission denied\n" {
		t.Errorf("stderr = %q", r.stderr)
	}
	f = setup(t)
	f.on("GET", "/v1/sys/audit/file/verify-key", 200, `{"request_id":"r","data":{"public_key":"short"}}`)
	r = verify(t, "-device=file", l.path).wantCode(t, exitRemote)
	if !strings.Contains(r.stderr, "invalid key") {
		t.Errorf("stderr = %q", r.stderr)
	}
	setup(t) // no route: 404
	r = verify(t, "-device=nope", l.path).wantCode(t, exitRemote)
	if !strings.Contains(r.stderr, "nope/") {
		t.Errorf("stderr = %q", r.stderr)
	}
}
