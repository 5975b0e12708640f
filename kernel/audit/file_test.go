package audit

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestFileDeviceBasic(t *testing.T) {
	path := tempLog(t)
	d := newTestFile(t, FileConfig{DeviceConfig: testDeviceConfig(), Path: path})
	logN(t, d, 0, 10)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	// open checkpoint, 10 entries, close checkpoint
	if len(lines) != 12 || !strings.Contains(lines[11], `"reason":"close"`) || !strings.Contains(lines[0], `"reason":"open"`) {
		t.Fatalf("%d lines:\n%s", len(lines), joinLines(lines))
	}
	res := mustVerify(t, joinLines(lines))
	if res.UnverifiedTail != 0 {
		t.Fatalf("%+v", res)
	}
	st := d.Stats()
	if st.Logged != 10 || st.Failed != 0 || st.Checkpoints != 2 || st.Seq != 12 || st.Healthy {
		t.Fatalf("stats %+v", st)
	}
	if err := d.Log(context.Background(), &Event{Request: sampleRequest(1)}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Log after Close: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
}

func TestFileMode(t *testing.T) {
	for _, tc := range []struct {
		mode, want os.FileMode
	}{{0, 0o600}, {0o640, 0o640}} {
		path := tempLog(t)
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		newTestFile(t, FileConfig{DeviceConfig: testDeviceConfig(), Path: path, Mode: tc.mode})
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != tc.want {
			t.Errorf("mode %v, want %v", fi.Mode().Perm(), tc.want)
		}
	}
}

func TestInvalidConfig(t *testing.T) {
	for _, cfg := range []FileConfig{
		{DeviceConfig: DeviceConfig{HMACKey: testHMACKey}, Path: "x"},
		{DeviceConfig: DeviceConfig{SigningKey: testSigningKey}, Path: "x"},
		{DeviceConfig: testDeviceConfig()},
		{DeviceConfig: testDeviceConfig(), Path: "x", Mode: os.ModeDir | 0o600},
	} {
		if _, err := NewFileDevice(context.Background(), cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
	if _, err := NewSocketDevice(context.Background(), SocketConfig{DeviceConfig: testDeviceConfig(), Network: "sctp", Address: "x"}); !errors.Is(err, ErrInvalidConfig) {
		t.Error(err)
	}
}

// After logrotate renames the file, lines keep going to the renamed file
// until Reopen; then a new file starts at path, chained to the old one.
func TestFileReopenAfterRename(t *testing.T) {
	path := tempLog(t)
	d := newTestFile(t, FileConfig{DeviceConfig: testDeviceConfig(), Path: path})
	logN(t, d, 0, 5)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	logN(t, d, 5, 3)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("a file appeared at path before Reopen")
	}
	if err := d.Reopen(); err != nil {
		t.Fatal(err)
	}
	logN(t, d, 8, 4)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	old, cur := readLines(t, path+".1"), readLines(t, path)
	if len(old) != 10 || !strings.Contains(old[9], `"reason":"rotate"`) {
		t.Fatalf("old file:\n%s", joinLines(old))
	}
	if len(cur) != 6 || !strings.Contains(cur[0], `"reason":"open"`) {
		t.Fatalf("new file:\n%s", joinLines(cur))
	}
	mustVerify(t, joinLines(old))
	res := mustVerify(t, joinLines(cur))
	if res.FirstSeq != 11 {
		t.Fatalf("new file starts at seq %d", res.FirstSeq)
	}
	mustVerify(t, joinLines(append(old, cur...)))
}

// The chain continues across a restart, in the same file and in a new
// one (the file was rotated while Ward was down).
func TestFileRestartWithChainStore(t *testing.T) {
	path := tempLog(t)
	store := &MemoryChainStore{}
	cfg := testDeviceConfig()
	cfg.Chain = store
	cfg.CheckpointEvery = 100

	d := newTestFile(t, FileConfig{DeviceConfig: cfg, Path: path})
	logN(t, d, 0, 250)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if store.Saves() < 3 {
		t.Fatalf("%d saves, want one per checkpoint and on Close", store.Saves())
	}

	d = newTestFile(t, FileConfig{DeviceConfig: cfg, Path: path})
	logN(t, d, 250, 30)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if d.Stats().Resyncs != 0 {
		t.Fatal("resynced although the store matched the file")
	}
	first := readLines(t, path)
	res := mustVerify(t, joinLines(first))
	if res.Entries != 280 {
		t.Fatalf("%+v", res)
	}

	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	d = newTestFile(t, FileConfig{DeviceConfig: cfg, Path: path})
	logN(t, d, 280, 5)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	second := readLines(t, path)
	res = mustVerify(t, joinLines(append(first, second...)))
	if res.Entries != 285 || res.UnverifiedTail != 0 {
		t.Fatalf("%+v", res)
	}
}

// A crash leaves the store behind the file (it is saved at checkpoints):
// the device continues from the file and says so.
func TestFileRestartStaleStore(t *testing.T) {
	path := tempLog(t)
	store := &MemoryChainStore{}
	cfg := testDeviceConfig()
	cfg.Chain = store
	cfg.CheckpointEvery = 10

	d := newTestFile(t, FileConfig{DeviceConfig: cfg, Path: path})
	logN(t, d, 0, 25)
	time.Sleep(50 * time.Millisecond) // let the background save run
	d.Close()
	stale, _ := store.Load(context.Background())
	stale.Seq, stale.Hash = 5, strings.Repeat("ab", 32) // as if saved long ago
	store.Save(context.Background(), stale)

	d = newTestFile(t, FileConfig{DeviceConfig: cfg, Path: path})
	if d.Stats().Resyncs != 1 {
		t.Fatalf("stats %+v", d.Stats())
	}
	logN(t, d, 25, 13)
	d.Close()
	res := mustVerify(t, joinLines(readLines(t, path)))
	if res.Entries != 38 {
		t.Fatalf("%+v", res)
	}
}

// Without a store, a restart continues from the file's last line, and
// from a crash that left entries after the last checkpoint.
func TestFileRestartWithoutStore(t *testing.T) {
	path := tempLog(t)
	cfg := testDeviceConfig()
	cfg.CheckpointEvery = 7
	d := newTestFile(t, FileConfig{DeviceConfig: cfg, Path: path})
	logN(t, d, 0, 10)
	// Simulate a crash: no close checkpoint (the file is left as is).
	d.mu.Lock()
	d.chain.st.pending = 0
	d.mu.Unlock()
	d.Close()

	d = newTestFile(t, FileConfig{DeviceConfig: cfg, Path: path})
	logN(t, d, 10, 10)
	d.Close()
	lines := readLines(t, path)
	res := mustVerify(t, joinLines(lines))
	if res.Entries != 20 || res.FirstSeq != 1 {
		t.Fatalf("%+v", res)
	}
}

// An interrupted write leaves half a line; it was never acknowledged, so
// reopening removes it.
func TestFileIncompleteLastLine(t *testing.T) {
	path := tempLog(t)
	d := newTestFile(t, FileConfig{DeviceConfig: testDeviceConfig(), Path: path})
	logN(t, d, 0, 3)
	d.Close()
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"time":"2026-11-24T10:00:00Z","type":"requ`)
	f.Close()

	d = newTestFile(t, FileConfig{DeviceConfig: testDeviceConfig(), Path: path})
	logN(t, d, 3, 3)
	d.Close()
	res := mustVerify(t, joinLines(readLines(t, path)))
	if res.Entries != 6 {
		t.Fatalf("%+v", res)
	}
}

// Write failures (full disk, partial writes) fail the entries of the batch,
// roll the chain back, and the device recovers on the next Log.
func TestFileWriteFailure(t *testing.T) {
	path := tempLog(t)
	d := newTestFile(t, FileConfig{DeviceConfig: testDeviceConfig(), Path: path})
	logN(t, d, 0, 3)

	for _, partial := range []bool{false, true} {
		d.mu.Lock()
		d.write = func(f *os.File, b []byte) error {
			if partial {
				f.Write(b[:len(b)/2])
			}
			return syscall.ENOSPC
		}
		d.mu.Unlock()
		err := d.Log(context.Background(), &Event{Request: sampleRequest(99)})
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Log with a full disk: %v", err)
		}
		if st := d.Stats(); st.Healthy || !strings.Contains(st.Err, "no space") {
			t.Fatalf("stats %+v", st)
		}
		d.mu.Lock()
		d.write = d.writeOut
		d.mu.Unlock()
		logN(t, d, 3, 2)
		if st := d.Stats(); !st.Healthy {
			t.Fatalf("not recovered: %+v", st)
		}
	}
	d.Close()
	res := mustVerify(t, joinLines(readLines(t, path)))
	if res.Entries != 7 {
		t.Fatalf("%+v", res)
	}
	if d.Stats().Failed != 2 {
		t.Fatalf("stats %+v", d.Stats())
	}
}

func TestTimeCheckpoints(t *testing.T) {
	path := tempLog(t)
	clock := newFakeClock()
	cfg := testDeviceConfig()
	cfg.Now = clock.Now
	cfg.CheckpointInterval = time.Second
	d := newTestFile(t, FileConfig{DeviceConfig: cfg, Path: path})
	logN(t, d, 0, 2)
	clock.Advance(2 * time.Second)
	b := NewBroker(BrokerOptions{Now: clock.Now})
	b.Enable("file/", d)
	if err := b.LogRequest(context.Background(), sampleRequest(3)); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	if len(lines) != 5 || !strings.Contains(lines[4], `"reason":"interval"`) {
		t.Fatalf("no interval checkpoint after the entry:\n%s", joinLines(lines))
	}

	// The ticker writes one when the device is idle.
	logN(t, d, 4, 1)
	clock.Advance(2 * time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for len(readLines(t, path)) < 7 {
		if time.Now().After(deadline) {
			t.Fatalf("the ticker wrote no checkpoint:\n%s", joinLines(readLines(t, path)))
		}
		time.Sleep(10 * time.Millisecond)
	}
	mustVerify(t, joinLines(readLines(t, path)))
}

func TestStdout(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	d, err := NewFileDevice(context.Background(), FileConfig{DeviceConfig: testDeviceConfig(), Path: "-"})
	if err != nil {
		os.Stdout = old
		t.Fatal(err)
	}
	logN(t, d, 0, 2)
	d.Reopen()
	d.Close()
	os.Stdout = old
	w.Close()
	res, err := Verify(r, testPub)
	if err != nil || res.Entries != 2 {
		t.Fatalf("%v %+v", err, res)
	}
}
