package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// BrokerOptions configures a Broker. The zero value is usable.
type BrokerOptions struct {
	// Now stamps entries; nil means time.Now.
	Now func() time.Time
	// Logger receives refusals; nil discards them.
	Logger *slog.Logger
}

// Broker fans entries out to the enabled devices and decides whether an
// entry counts as recorded. Devices are added and removed at runtime; the
// logging path reads an immutable snapshot and holds no lock while a
// device writes. All methods are safe for concurrent use.
type Broker struct {
	now    func() time.Time
	logger *slog.Logger

	// devices is the current snapshot, replaced (never modified) under mu.
	devices atomic.Pointer[[]namedDevice]
	mu      sync.Mutex // serialises Enable and Disable

	refused atomic.Uint64
}

type namedDevice struct {
	name string
	dev  Device
}

// NewBroker returns a broker with no device: logging is a no-op until one
// is enabled (Vault's behaviour).
func NewBroker(opts BrokerOptions) *Broker {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	b := &Broker{now: opts.Now, logger: opts.Logger}
	b.devices.Store(&[]namedDevice{})
	return b
}

// Enable adds a device under name (its sys/audit path, e.g. "file/").
func (b *Broker) Enable(name string, d Device) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := *b.devices.Load()
	for _, nd := range cur {
		if nd.name == name {
			return fmt.Errorf("%w: %s", ErrDeviceExists, name)
		}
	}
	next := append(slices.Clip(cur), namedDevice{name, d})
	slices.SortFunc(next, func(a, b namedDevice) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
	b.devices.Store(&next)
	return nil
}

// Disable removes the device at name and closes it (its final checkpoint
// is written then). Entries being logged to it concurrently may fail.
func (b *Broker) Disable(name string) error {
	b.mu.Lock()
	cur := *b.devices.Load()
	i := slices.IndexFunc(cur, func(nd namedDevice) bool { return nd.name == name })
	if i < 0 {
		b.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrNoDevice, name)
	}
	d := cur[i].dev
	next := slices.Delete(slices.Clone(cur), i, i+1)
	b.devices.Store(&next)
	b.mu.Unlock()
	return d.Close()
}

// Device returns the device enabled at name.
func (b *Broker) Device(name string) (Device, bool) {
	for _, nd := range *b.devices.Load() {
		if nd.name == name {
			return nd.dev, true
		}
	}
	return nil, false
}

// Active reports whether any device is enabled: when none is, the kernel
// need not build entries at all.
func (b *Broker) Active() bool { return len(*b.devices.Load()) > 0 }

// Names lists the enabled devices' names, sorted.
func (b *Broker) Names() []string {
	cur := *b.devices.Load()
	out := make([]string, len(cur))
	for i, nd := range cur {
		out[i] = nd.name
	}
	return out
}

// Hash returns value hashed with the key of the device at name
// (sys/audit-hash/<name>).
func (b *Broker) Hash(name, value string) (string, error) {
	d, ok := b.Device(name)
	if !ok {
		return "", fmt.Errorf("%w: %s", ErrNoDevice, name)
	}
	return d.Hash(value), nil
}

// LogRequest records a request before it runs. It returns nil when no
// device is enabled, or when the entry counts as recorded:
//
//   - if any synchronous device (file) is enabled, at least one of them
//     wrote it; asynchronous devices (socket) never decide, and their
//     drops and disconnections only show in their Stats;
//   - if only asynchronous devices are enabled, at least one of them queued
//     it while connected (a weaker guarantee: configure a file device).
//
// Otherwise it returns an error wrapping ErrNotRecorded and every device's
// error, and the kernel must refuse the request without running it.
func (b *Broker) LogRequest(ctx context.Context, r *Request) error {
	return b.log(ctx, &Event{Request: r})
}

// LogResponse records a response (Response.Request must be set), with the
// same rule as LogRequest. When it fails, the kernel must not send the
// response: Vault answers 500 instead.
func (b *Broker) LogResponse(ctx context.Context, r *Response) error {
	if r.Request == nil {
		return errors.New("audit: response without its request")
	}
	return b.log(ctx, &Event{Response: r})
}

func (b *Broker) log(ctx context.Context, ev *Event) error {
	devs := *b.devices.Load()
	if len(devs) == 0 {
		return nil
	}
	ev.Time = b.now()
	anySync := slices.ContainsFunc(devs, func(nd namedDevice) bool { return nd.dev.Synchronous() })
	var errs []error
	recorded := false
	for _, nd := range devs {
		if err := nd.dev.Log(ctx, ev); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", nd.name, err))
		} else if nd.dev.Synchronous() || !anySync {
			recorded = true
		}
	}
	if recorded {
		return nil
	}
	b.refused.Add(1)
	err := fmt.Errorf("%w: %w", ErrNotRecorded, errors.Join(errs...))
	b.logger.Error("audit: entry not recorded by any device; refusing", "error", err)
	return err
}

// Refused counts the entries LogRequest and LogResponse failed.
func (b *Broker) Refused() uint64 { return b.refused.Load() }

// Stats returns every device's counters by name.
func (b *Broker) Stats() map[string]DeviceStats {
	cur := *b.devices.Load()
	out := make(map[string]DeviceStats, len(cur))
	for _, nd := range cur {
		out[nd.name] = nd.dev.Stats()
	}
	return out
}

// Reopen reopens every device (SIGHUP).
func (b *Broker) Reopen() error {
	var errs []error
	for _, nd := range *b.devices.Load() {
		if err := nd.dev.Reopen(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", nd.name, err))
		}
	}
	return errors.Join(errs...)
}

// Close disables and closes every device (seal, shutdown).
func (b *Broker) Close() error {
	b.mu.Lock()
	cur := *b.devices.Load()
	b.devices.Store(&[]namedDevice{})
	b.mu.Unlock()
	var errs []error
	for _, nd := range cur {
		if err := nd.dev.Close(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", nd.name, err))
		}
	}
	return errors.Join(errs...)
}
