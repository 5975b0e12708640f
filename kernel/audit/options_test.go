package audit

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

func TestNewDevice(t *testing.T) {
	ctx := context.Background()
	path := tempLog(t)
	d, err := NewDevice(ctx, "file", map[string]string{
		"file_path": path, "mode": "0640", "log_raw": "false", "hmac_accessor": "false",
		"fsync": "true", "checkpoint_every": "5", "checkpoint_interval": "2s", "format": "json",
	}, testDeviceConfig())
	if err != nil {
		t.Fatal(err)
	}
	fd := d.(*FileDevice)
	if fd.cfg.Mode != 0o640 || !fd.cfg.Fsync || !fd.cfg.RawAccessors || fd.cfg.LogRaw || fd.cfg.CheckpointEvery != 5 || fd.cfg.CheckpointInterval != 2*time.Second {
		t.Fatalf("%+v", fd.cfg)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Fatal(fi.Mode())
	}
	d.Close()
	os.Chmod(path, 0o604)
	d, err = NewDevice(ctx, "file", map[string]string{"path": path, "mode": "0000"}, testDeviceConfig())
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o604 {
		t.Fatal("mode 0000 changed the mode:", fi.Mode())
	}
	d.Close()

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	d, err = NewDevice(ctx, "socket", map[string]string{"address": ln.Addr().String(), "socket_type": "tcp", "write_timeout": "3", "queue_size": "10"}, testDeviceConfig())
	if err != nil {
		t.Fatal(err)
	}
	sd := d.(*SocketDevice)
	if sd.cfg.WriteTimeout != 3*time.Second || sd.cfg.QueueSize != 10 || sd.cfg.Network != "tcp" {
		t.Fatalf("%+v", sd.cfg)
	}
	d.Close()

	for _, tc := range []struct {
		typ  string
		opts map[string]string
	}{
		{"syslog", nil},
		{"file", map[string]string{}},
		{"file", map[string]string{"file_path": path, "prefix": "x"}},
		{"file", map[string]string{"file_path": path, "mode": "rw"}},
		{"file", map[string]string{"file_path": path, "log_raw": "maybe"}},
		{"file", map[string]string{"file_path": path, "format": "jsonx"}},
		{"socket", map[string]string{"address": "x", "write_timeout": "-1s"}},
		{"socket", map[string]string{"address": "x", "queue_size": "0"}},
	} {
		if _, err := NewDevice(ctx, tc.typ, tc.opts, testDeviceConfig()); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s %v: %v", tc.typ, tc.opts, err)
		}
	}
}
