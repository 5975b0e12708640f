package audit

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBrokerNoDevices(t *testing.T) {
	b := NewBroker(BrokerOptions{})
	if err := b.LogRequest(context.Background(), sampleRequest(1)); err != nil {
		t.Fatal(err)
	}
	if err := b.LogResponse(context.Background(), sampleResponse(1)); err != nil {
		t.Fatal(err)
	}
}

// With its only device unwritable the broker refuses; once the path is
// writable the same device records again, without a restart.
func TestBrokerFailClosedAndRecovers(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "logs")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil { // a file where the directory should be
		t.Fatal(err)
	}
	path := filepath.Join(blocker, "audit.log")
	d := newTestFile(t, FileConfig{DeviceConfig: testDeviceConfig(), Path: path})
	if d.Err() == nil {
		t.Fatal("device opened an unwritable path")
	}
	b := NewBroker(BrokerOptions{})
	if err := b.Enable("file/", d); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	err := b.LogRequest(ctx, sampleRequest(1))
	if !errors.Is(err, ErrNotRecorded) || !strings.Contains(err.Error(), "file/") {
		t.Fatalf("LogRequest to an unwritable device: %v", err)
	}
	if strings.Contains(err.Error(), "token-s.0001") {
		t.Fatal("error contains the token")
	}
	if b.Refused() != 1 {
		t.Fatalf("refused %d", b.Refused())
	}

	os.Remove(blocker)
	os.Mkdir(blocker, 0o700)
	if err := b.LogRequest(ctx, sampleRequest(2)); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	if err := b.LogResponse(ctx, sampleResponse(2)); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	res := mustVerify(t, joinLines(readLines(t, path)))
	if res.Entries != 2 {
		t.Fatalf("%+v", res)
	}
}

func TestBrokerSyncDevicesDecide(t *testing.T) {
	ctx := context.Background()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	down := ln.Addr().String()
	ln.Close()
	c := newCollector(t, "tcp", "127.0.0.1:0")

	goodFile := func() Device { return newTestFile(t, FileConfig{DeviceConfig: testDeviceConfig(), Path: tempLog(t)}) }
	badFile := func() Device {
		return newTestFile(t, FileConfig{DeviceConfig: testDeviceConfig(), Path: filepath.Join(t.TempDir(), "missing", "audit.log")})
	}
	downSocket := func() Device { return newTestSocket(t, SocketConfig{Address: down}) }
	upSocket := func() Device { return newTestSocket(t, SocketConfig{Address: c.ln.Addr().String()}) }

	for _, tc := range []struct {
		name    string
		devices []func() Device
		ok      bool
	}{
		{"file", []func() Device{goodFile}, true},
		{"broken file", []func() Device{badFile}, false},
		{"broken file and good file", []func() Device{badFile, goodFile}, true},
		{"file and a socket that is down", []func() Device{goodFile, downSocket}, true},
		{"broken file and a socket that is up", []func() Device{badFile, upSocket}, false},
		{"only a socket, up", []func() Device{upSocket}, true},
		{"only a socket, down", []func() Device{downSocket}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBroker(BrokerOptions{})
			for i, mk := range tc.devices {
				if err := b.Enable(string(rune('a'+i))+"/", mk()); err != nil {
					t.Fatal(err)
				}
			}
			err := b.LogRequest(ctx, sampleRequest(1))
			if (err == nil) != tc.ok {
				t.Fatalf("LogRequest: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestBrokerDevices(t *testing.T) {
	b := NewBroker(BrokerOptions{})
	d := newTestFile(t, FileConfig{DeviceConfig: testDeviceConfig(), Path: tempLog(t)})
	if err := b.Enable("file/", d); err != nil {
		t.Fatal(err)
	}
	if err := b.Enable("file/", d); !errors.Is(err, ErrDeviceExists) {
		t.Fatal(err)
	}
	d2 := newTestFile(t, FileConfig{DeviceConfig: testDeviceConfig(), Path: tempLog(t)})
	b.Enable("another/", d2)
	if got := b.Names(); len(got) != 2 || got[0] != "another/" || got[1] != "file/" {
		t.Fatal(got)
	}
	if h, err := b.Hash("file/", "v"); err != nil || h != Hash(testHMACKey, "v") {
		t.Fatal(h, err)
	}
	if _, err := b.Hash("nope/", "v"); !errors.Is(err, ErrNoDevice) {
		t.Fatal(err)
	}
	if err := b.Reopen(); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); len(st) != 2 || !st["file/"].Healthy {
		t.Fatal(st)
	}
	if err := b.Disable("file/"); err != nil {
		t.Fatal(err)
	}
	if err := b.Disable("file/"); !errors.Is(err, ErrNoDevice) {
		t.Fatal(err)
	}
	if _, ok := b.Device("file/"); ok {
		t.Fatal("disabled device still enabled")
	}
	if err := b.LogResponse(context.Background(), &Response{}); err == nil {
		t.Fatal("response without request accepted")
	}
}
