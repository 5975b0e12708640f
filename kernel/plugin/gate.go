package plugin

import (
	"context"
	"sync"

	"github.com/wardproject/ward/sdk/logical"
)

// gate lets a mount's backend be replaced without two backends ever
// serving the mount at once (their caches would not see each other's
// writes): calls hold it shared; replacing takes it exclusively, so it
// waits for the calls in flight, and calls that arrive meanwhile wait too
// and then go to the successor.
type gate struct {
	mu     sync.RWMutex
	closed bool
	next   Backend // where calls go once closed; nil: refused
}

// enter registers a call. When the backend was replaced or closed it
// returns ok false and the successor (nil if none).
func (g *gate) enter() (next Backend, ok bool) {
	g.mu.RLock()
	if g.closed {
		next = g.next
		g.mu.RUnlock()
		return next, false
	}
	return nil, true
}

func (g *gate) leave() { g.mu.RUnlock() }

// shut waits for the calls in flight, runs switchOver (which routes new
// calls elsewhere) and closes the gate towards next. It reports whether the
// gate was open.
func (g *gate) shut(next Backend, switchOver func()) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	if switchOver != nil {
		switchOver()
	}
	g.closed, g.next = true, next
	return true
}

// forward serves a call that reached a replaced backend.
func forwardRequest(ctx context.Context, next Backend, req *logical.Request) (*logical.Response, error) {
	if next == nil {
		return nil, errMountClosed
	}
	return next.HandleRequest(ctx, req)
}

func forwardExistence(ctx context.Context, next Backend, req *logical.Request) (bool, bool, error) {
	if next == nil {
		return false, false, errMountClosed
	}
	return next.HandleExistenceCheck(ctx, req)
}

// Replace moves a mount from old to next: once old's calls in flight have
// answered, switchOver runs (the kernel routes the mount to next there),
// calls that reached old meanwhile go to next, and old is torn down.
func Replace(ctx context.Context, old, next Backend, switchOver func()) {
	switch b := old.(type) {
	case *Handle:
		if b.gate.shut(next, switchOver) {
			b.p.remove(ctx, b)
		}
	case *wasmBackend:
		if b.gate.shut(next, switchOver) {
			b.teardown(ctx)
		}
	default:
		switchOver()
		old.Close(ctx)
	}
}
