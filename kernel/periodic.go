package kernel

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/wardproject/ward/sdk/logical"
)

// runPeriodic gives every plugin mount its periodic work: each interval it
// sends the mount a RollbackOperation (Vault's name for it), on which
// framework backends run their PeriodicFunc (the database engine rotates
// static roles that fell due, transit rotates keys past their
// auto_rotate_period). Plugins keep no timers of their own: a WASM
// instance cannot, and the host decides when a plugin may spend CPU.
//
// A mount whose previous call has not returned is skipped; each call is
// bounded by the interval. Failures are logged and tried again next time.
func (c *Core) runPeriodic(ctx context.Context, u *unsealedState) {
	interval := c.cfg.PeriodicInterval
	t := time.NewTicker(interval)
	defer t.Stop()
	var running sync.Map // route prefix -> struct{}
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, m := range u.pluginMounts() {
			if _, busy := running.LoadOrStore(m.prefix, struct{}{}); busy {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer running.Delete(m.prefix)
				cctx, cancel := context.WithTimeout(ctx, interval)
				defer cancel()
				_, err := m.backend.HandleRequest(cctx, &logical.Request{
					ID: uuid.NewString(), Operation: logical.RollbackOperation,
					MountPoint: m.prefix, MountType: m.typ, MountAccessor: m.accessor,
				})
				if err != nil && ctx.Err() == nil {
					c.logger.Warn("periodic function failed", "path", m.prefix, "error", err)
				}
			}()
		}
	}
}

// pluginMount is a running plugin mount, for background work.
type pluginMount struct {
	prefix, typ, accessor string
	backend               interface {
		HandleRequest(context.Context, *logical.Request) (*logical.Response, error)
	}
}

// pluginMounts lists the plugin mounts that are running.
func (u *unsealedState) pluginMounts() []pluginMount {
	var out []pluginMount
	for _, k := range []*mountKind{u.secrets, u.auths} {
		for _, e := range k.table.Entries() {
			if e.Builtin {
				continue
			}
			prefix := k.route(e)
			if b := u.handle(prefix); b != nil {
				out = append(out, pluginMount{prefix: prefix, typ: e.Type, accessor: e.Accessor, backend: b})
			}
		}
	}
	return out
}
