package audit

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Device types NewDevice knows.
const (
	TypeFile   = "file"
	TypeSocket = "socket"
)

// NewDevice builds a device of type typ ("file" or "socket") from the
// options of its config stanza or sys/audit call (Vault's names, strings),
// on top of base, which carries what the kernel supplies: the keys, the
// ChainStore, the clock and the logger. Options:
//
//	all:    log_raw (bool, default false), hmac_accessor (bool, default true),
//	        checkpoint_every (entries), checkpoint_interval (duration, "10s"),
//	        format ("json" only)
//	file:   file_path (or path; "-" or "stdout" for standard output; required),
//	        mode (octal, default "0600"; "0000" leaves an existing file's mode
//	        alone), fsync (bool, default false)
//	socket: address (required), socket_type ("tcp", "udp", "unix"; default "tcp"),
//	        write_timeout (duration, default "2s"), queue_size (lines, default 4096)
//
// An unknown option is an error wrapping ErrInvalidConfig.
func NewDevice(ctx context.Context, typ string, options map[string]string, base DeviceConfig) (Device, error) {
	o := optionReader{opts: options}
	o.common(&base)
	switch typ {
	case TypeFile:
		cfg := FileConfig{DeviceConfig: base}
		cfg.Path = o.str("file_path")
		if p := o.str("path"); cfg.Path == "" {
			cfg.Path = p
		}
		if m := o.str("mode"); m != "" {
			v, err := strconv.ParseUint(m, 8, 32)
			if err != nil {
				o.fail("mode", err)
			}
			cfg.Mode, cfg.KeepMode = os.FileMode(v), v == 0
		}
		cfg.Fsync = o.bool("fsync", false)
		if err := o.done(); err != nil {
			return nil, err
		}
		return NewFileDevice(ctx, cfg)
	case TypeSocket:
		cfg := SocketConfig{DeviceConfig: base}
		cfg.Address = o.str("address")
		cfg.Network = o.str("socket_type")
		cfg.WriteTimeout = o.duration("write_timeout")
		cfg.QueueSize = o.int("queue_size")
		if err := o.done(); err != nil {
			return nil, err
		}
		return NewSocketDevice(ctx, cfg)
	}
	return nil, fmt.Errorf("%w: unknown audit device type %q (file, socket)", ErrInvalidConfig, typ)
}

// optionReader reads options, remembering the first error and which
// options were used.
type optionReader struct {
	opts map[string]string
	used []string
	err  error
}

func (o *optionReader) str(k string) string {
	o.used = append(o.used, k)
	return o.opts[k]
}

func (o *optionReader) fail(k string, err error) {
	if o.err == nil {
		o.err = fmt.Errorf("%w: option %s: %v", ErrInvalidConfig, k, err)
	}
}

func (o *optionReader) bool(k string, def bool) bool {
	s := o.str(k)
	if s == "" {
		return def
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		o.fail(k, err)
	}
	return v
}

func (o *optionReader) int(k string) int {
	s := o.str(k)
	if s == "" {
		return 0
	}
	v, err := strconv.Atoi(s)
	if err == nil && v <= 0 {
		err = fmt.Errorf("must be positive")
	}
	if err != nil {
		o.fail(k, err)
	}
	return v
}

// duration reads a Go duration ("10s") or a number of seconds.
func (o *optionReader) duration(k string) time.Duration {
	s := o.str(k)
	if s == "" {
		return 0
	}
	if n, err := strconv.Atoi(s); err == nil {
		s = strconv.Itoa(n) + "s"
	}
	v, err := time.ParseDuration(s)
	if err == nil && v <= 0 {
		err = fmt.Errorf("must be positive")
	}
	if err != nil {
		o.fail(k, err)
	}
	return v
}

func (o *optionReader) common(c *DeviceConfig) {
	c.LogRaw = o.bool("log_raw", false)
	c.RawAccessors = !o.bool("hmac_accessor", true)
	c.CheckpointEvery = o.int("checkpoint_every")
	c.CheckpointInterval = o.duration("checkpoint_interval")
	if f := o.str("format"); f != "" && f != "json" {
		o.fail("format", fmt.Errorf("only json is supported"))
	}
}

func (o *optionReader) done() error {
	if o.err != nil {
		return o.err
	}
	var unknown []string
	for k := range o.opts {
		if !slices.Contains(o.used, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return fmt.Errorf("%w: unknown options %s", ErrInvalidConfig, strings.Join(unknown, ", "))
	}
	return nil
}
