package audit

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
)

// buildLog writes 23 entries with a checkpoint every 5 and returns the
// lines: 1 open checkpoint; entries 2-6, checkpoint 7; 8-12, 13; 14-18, 19;
// 20-24, 25; entries 26-28 (the unverified tail).
func buildLog(t *testing.T) ([]string, *FileDevice) {
	t.Helper()
	path := tempLog(t)
	cfg := testDeviceConfig()
	cfg.CheckpointEvery = 5
	cfg.Now = newFakeClock().Now
	d := newTestFile(t, FileConfig{DeviceConfig: cfg, Path: path})
	logN(t, d, 0, 23)
	lines := readLines(t, path)
	if len(lines) != 28 {
		t.Fatalf("%d lines, want 28", len(lines))
	}
	for _, i := range []int{1, 7, 13, 19, 25} {
		if !strings.HasPrefix(lines[i-1], `{"type":"checkpoint"`) {
			t.Fatalf("line %d is not a checkpoint: %.60s", i, lines[i-1])
		}
	}
	return lines, d
}

func wantLine(t *testing.T, log string, opts VerifyOptions, line int, reason string) {
	t.Helper()
	if opts.PublicKey == nil {
		opts.PublicKey = testPub
	}
	_, err := VerifyLog(strings.NewReader(log), opts)
	var ve *VerifyError
	if !errors.As(err, &ve) || !errors.Is(err, ErrInvalidLog) {
		t.Fatalf("want a VerifyError at line %d, got %v", line, err)
	}
	if ve.Line != line || !strings.Contains(ve.Reason, reason) {
		t.Fatalf("got %q, want line %d (%s)", err, line, reason)
	}
}

func editByte(line string, at string) string {
	i := strings.Index(line, at)
	if i < 0 {
		panic("marker not found: " + at)
	}
	b := []byte(line)
	j := i + len(at)
	if b[j] == 'a' {
		b[j] = 'b'
	} else {
		b[j] = 'a'
	}
	return string(b)
}

func TestVerifyUntouched(t *testing.T) {
	lines, d := buildLog(t)
	res := mustVerify(t, joinLines(lines))
	if res.Lines != 28 || res.Entries != 23 || res.Checkpoints != 5 || res.VerifiedLines != 25 || res.UnverifiedTail != 3 ||
		res.FirstSeq != 1 || res.LastSeq != 28 || res.FirstPrev != strings.Repeat("0", 64) || res.LastCheckpointLine != 25 {
		t.Fatalf("result %+v", res)
	}
	if cp := d.LastCheckpoint(); cp != res.LastCheckpoint {
		t.Fatalf("device checkpoint %+v, verifier %+v", cp, res.LastCheckpoint)
	}
	// With the device's anchor too.
	if _, err := VerifyLog(strings.NewReader(joinLines(lines)), VerifyOptions{PublicKey: testPub, Anchor: &res.LastCheckpoint}); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyTamper(t *testing.T) {
	lines, d := buildLog(t)
	anchor := d.LastCheckpoint()
	mutate := func(f func(l []string) []string) string {
		return joinLines(f(append([]string(nil), lines...)))
	}
	tests := []struct {
		name   string
		log    string
		opts   VerifyOptions
		line   int
		reason string
	}{
		{"edit a data byte", mutate(func(l []string) []string { l[8] = editByte(l[8], `"password":"hmac-sha256:`); return l }), VerifyOptions{}, 9, "modified"},
		{"edit a byte of the time", mutate(func(l []string) []string {
			l[9] = strings.Replace(l[9], `"time":"2026-11-24T10:00:00.0`, `"time":"2026-11-24T10:00:01.0`, 1)
			return l
		}), VerifyOptions{}, 10, "modified"},
		{"edit the time into garbage", mutate(func(l []string) []string { l[9] = editByte(l[9], `"time":"2026-11-24T10:00:00.0`); return l }), VerifyOptions{}, 10, "time"},
		{"edit seq", mutate(func(l []string) []string { l[9] = strings.Replace(l[9], `"seq":10,`, `"seq":11,`, 1); return l }), VerifyOptions{}, 10, "seq 11 where 10"},
		{"edit prev", mutate(func(l []string) []string { l[9] = editByte(l[9], `"prev":"`); return l }), VerifyOptions{}, 10, "prev does not match"},
		{"edit a checkpoint", mutate(func(l []string) []string { l[12] = strings.Replace(l[12], `"count":5`, `"count":6`, 1); return l }), VerifyOptions{}, 13, "signature"},
		{"edit a checkpoint's form", mutate(func(l []string) []string {
			l[12] = strings.Replace(l[12], `{"type":"checkpoint",`, `{"type": "checkpoint",`, 1)
			return l
		}), VerifyOptions{}, 13, "canonical"},
		{"edit into bad JSON", mutate(func(l []string) []string { l[15] = l[15][:40] + "}" + l[15][41:]; return l }), VerifyOptions{}, 16, "JSON"},
		{"edit the last line", mutate(func(l []string) []string { l[27] = editByte(l[27], `"prev":"`); return l }), VerifyOptions{}, 28, "prev does not match"},
		{"delete an entry", mutate(func(l []string) []string { return append(l[:8], l[9:]...) }), VerifyOptions{}, 9, "removed"},
		{"delete a checkpoint", mutate(func(l []string) []string { return append(l[:6], l[7:]...) }), VerifyOptions{}, 7, "removed"},
		{"delete the first line", mutate(func(l []string) []string { return l[1:] }), VerifyOptions{Anchor: &Checkpoint{Seq: 1, Hash: "x"}}, 1, "starts at seq 2"},
		{"swap two lines", mutate(func(l []string) []string { l[9], l[10] = l[10], l[9]; return l }), VerifyOptions{}, 10, "reordered"},
		{"swap an entry and a checkpoint", mutate(func(l []string) []string { l[5], l[6] = l[6], l[5]; return l }), VerifyOptions{}, 6, "reordered"},
		{"truncate after a checkpoint (anchor)", mutate(func(l []string) []string { return l[:19] }), VerifyOptions{Anchor: &anchor}, 20, "truncated"},
		{"truncate before the last checkpoint", mutate(func(l []string) []string { return l[:24] }), VerifyOptions{}, 25, "checkpoint was due"},
		{"remove the last checkpoint only", mutate(func(l []string) []string { return append(l[:24], l[25:]...) }), VerifyOptions{}, 25, "removed"},
		{"truncate mid-line", strings.TrimSuffix(joinLines(lines), "\n")[:len(joinLines(lines))-30], VerifyOptions{}, 28, "incomplete"},
		{"no checkpoint", joinLines(lines[25:]), VerifyOptions{}, 4, "no checkpoint"},
		{"empty", "", VerifyOptions{}, 1, "empty"},
		{"blank line", mutate(func(l []string) []string { return append(l[:3], append([]string{""}, l[3:]...)...) }), VerifyOptions{}, 4, "JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { wantLine(t, tc.log, tc.opts, tc.line, tc.reason) })
	}

	t.Run("wrong key", func(t *testing.T) {
		wantLine(t, joinLines(lines), VerifyOptions{PublicKey: NewSigningKey().Public().(ed25519.PublicKey)}, 1, "signature")
	})
	t.Run("truncate after a checkpoint without anchor is an unverified prefix", func(t *testing.T) {
		res := mustVerify(t, joinLines(lines[:19]))
		if res.UnverifiedTail != 0 || res.LastCheckpointLine != 19 {
			t.Fatalf("%+v", res)
		}
		res = mustVerify(t, joinLines(lines[:27]))
		if res.UnverifiedTail != 2 {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("a slice that starts mid-chain verifies", func(t *testing.T) {
		res := mustVerify(t, joinLines(lines[7:]))
		if res.FirstSeq != 8 || res.FirstPrev == strings.Repeat("0", 64) {
			t.Fatalf("%+v", res)
		}
	})
}

func FuzzVerify(f *testing.F) {
	f.Add([]byte(`{"type":"request","time":"2026-01-01T00:00:00Z","seq":1,"prev":"` + strings.Repeat("0", 64) + `"}` + "\n"))
	f.Add([]byte(`{"type":"checkpoint","time":"x","seq":1,"prev":"` + strings.Repeat("0", 64) + `","head":"","count":0,"prev_checkpoint":0,"interval_entries":1,"interval_ms":1,"reason":"open","signature":"AA=="}` + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := Verify(strings.NewReader(string(b)), testPub)
		if res == nil {
			t.Fatal("nil result")
		}
		if err != nil && !errors.Is(err, ErrInvalidLog) {
			t.Fatalf("error not wrapping ErrInvalidLog: %v", err)
		}
	})
}
