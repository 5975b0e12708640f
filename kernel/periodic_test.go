package kernel

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/wardproject/ward/kernel/mount"
	"github.com/wardproject/ward/kernel/storage"
	"github.com/wardproject/ward/sdk/logical"
)

// periodicProbe is a plugin mount that records the periodic calls it gets;
// the first one blocks until released, whatever its context says.
type periodicProbe struct {
	mu      sync.Mutex
	calls   []*logical.Request
	release chan struct{}
}

func (p *periodicProbe) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	p.mu.Lock()
	p.calls = append(p.calls, req)
	first := len(p.calls) == 1
	p.mu.Unlock()
	if first {
		<-p.release // past the call's deadline, like a plugin that ignores it
	}
	return nil, nil
}

func (p *periodicProbe) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.calls)
}

func (p *periodicProbe) HandleExistenceCheck(context.Context, *logical.Request) (bool, bool, error) {
	return false, false, nil
}
func (p *periodicProbe) SpecialPaths() *logical.Paths { return &logical.Paths{} }
func (p *periodicProbe) Schema() *logical.Schema      { return &logical.Schema{} }
func (p *periodicProbe) Close(context.Context)        {}

// TestPeriodicCallsEveryPluginMount: each interval, every plugin mount gets
// a RollbackOperation naming it; a mount still busy with the previous call
// is skipped, not called twice at once.
func TestPeriodicCallsEveryPluginMount(t *testing.T) {
	ctx := context.Background()
	c, err := New(Config{Storage: storage.NewInmem(), PeriodicInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Initialize(ctx, InitParams{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Unseal(ctx, res.Keys[0]); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Seal(ctx) })
	u, _ := c.state()
	slow := &periodicProbe{release: make(chan struct{})}
	fast := &periodicProbe{release: make(chan struct{})}
	close(fast.release)
	for path, p := range map[string]*periodicProbe{"slow/": slow, "fast/": fast} {
		e := mount.NewEntry(path, "probe")
		if err := u.secrets.table.Add(ctx, e); err != nil {
			t.Fatal(err)
		}
		u.setHandle(path, p)
	}

	deadline := time.Now().Add(10 * time.Second)
	for fast.count() < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("the fast mount got %d periodic calls", fast.count())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := slow.count(); n != 1 {
		t.Fatalf("a mount busy with its periodic call was called again: %d calls", n)
	}
	close(slow.release)
	for slow.count() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the slow mount was not called again once free")
		}
		time.Sleep(10 * time.Millisecond)
	}
	fast.mu.Lock()
	r := fast.calls[0]
	fast.mu.Unlock()
	if r.Operation != logical.RollbackOperation || r.Path != "" || r.MountPoint != "fast/" || r.MountType != "probe" || r.MountAccessor == "" {
		t.Fatalf("periodic request: %+v", r)
	}
}
