package keylock

import (
	"testing"
	"time"

	"github.com/wardproject/ward/sdk/internal/hostlock"
)

// failingHost is a host whose lock calls panic.
type failingHost struct{ lock, unlock bool }

func (f failingHost) Lock(string, bool) {
	if f.lock {
		panic("host lock failed")
	}
}

func (f failingHost) Unlock(string) {
	if f.unlock {
		panic("host unlock failed")
	}
}

// A failing host call never leaves the in-process stripe held: the next
// Lock of the key (or of any key on its stripe) does not deadlock.
func TestHostFailureReleasesStripe(t *testing.T) {
	defer func(h hostlock.Locker) { hostlock.Host = h }(hostlock.Host)
	var s Set
	try := func(f func()) (panicked bool) {
		defer func() { panicked = recover() != nil }()
		f()
		return false
	}
	lockable := func(what string) {
		t.Helper()
		hostlock.Host = nil
		done := make(chan struct{})
		go func() {
			s.Lock("k")
			s.Unlock("k")
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("after %s the stripe is still held", what)
		}
	}
	for _, c := range []struct {
		what string
		host failingHost
		lock func()
	}{
		{"a failed Lock", failingHost{lock: true}, func() { s.Lock("k") }},
		{"a failed RLock", failingHost{lock: true}, func() { s.RLock("k") }},
		{"a failed Unlock", failingHost{unlock: true}, func() { s.Lock("k"); s.Unlock("k") }},
		{"a failed RUnlock", failingHost{unlock: true}, func() { s.RLock("k"); s.RUnlock("k") }},
	} {
		hostlock.Host = c.host
		if !try(c.lock) {
			t.Fatalf("%s did not panic", c.what)
		}
		lockable(c.what)
	}
}
