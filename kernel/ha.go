package kernel

import (
	"context"
	"errors"
	"time"

	"github.com/wardproject/ward/kernel/barrier"
)

// High availability. On replicated storage (Config.Cluster) the node that
// leads raft is the active node: it loads the kernel's state (mounts and
// their plugins, tokens, leases, audit devices) and runs the background
// jobs (lease expiry, periodic calls, key rotation). Every other unsealed
// node is a standby: its barrier is open, so that it can take over at
// once, but it loads nothing and serves nothing itself; the HTTP layer
// forwards its requests to the active node. When leadership moves, the old
// leader stops its duties as a seal would, keeping its barrier open, and
// the new leader reads the keyring again (the old one may have rotated it)
// and loads the state: a lease due during the handover is revoked by the
// new active node, from storage, as after a restart.

// haInterval is how often a node checks whether it leads. Raft elects a
// new leader in about a second; this adds at most this much to a handover.
const haInterval = 50 * time.Millisecond

// ErrStandby is returned to requests that reach a standby's core; the HTTP
// layer forwards them to the active node instead.
var ErrStandby = errors.New("this node is a standby: the request must go to the active node")

// Standby reports whether this node is an unsealed standby.
func (c *Core) Standby() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.standby
}

// ActiveAPIAddress is the API address of the active node ("" when no
// leader is known or storage is not replicated).
func (c *Core) ActiveAPIAddress() string {
	cl := c.cfg.Cluster
	if cl == nil {
		return ""
	}
	st := cl.ClusterStatus()
	srv, _ := st.server(st.LeaderID)
	return srv.APIAddress
}

// activate makes a freshly opened barrier serve: the node loads the
// kernel's state, unless on replicated storage it does not lead, when it
// becomes a standby. The caller holds initMu.
func (c *Core) activate(ctx context.Context) error {
	if cl := c.cfg.Cluster; cl != nil && !cl.ClusterStatus().IsLeader() {
		c.mu.Lock()
		c.standby = true
		c.mu.Unlock()
		c.cfg.Metrics.SetSealed(false)
		c.logger.Info("server unsealed as a standby", "active_node", c.ActiveAPIAddress())
		return nil
	}
	return c.postUnseal(ctx)
}

func (c *Core) startHA() {
	if c.cfg.Cluster == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.haStop, c.haDone = cancel, make(chan struct{})
	go func() {
		defer close(c.haDone)
		t := time.NewTicker(haInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				c.checkHA(ctx)
			}
		}
	}()
}

func (c *Core) stopHA() {
	if c.haStop != nil {
		c.haStop()
		<-c.haDone
	}
}

// checkHA moves this node between active and standby to follow raft's
// leadership.
func (c *Core) checkHA(ctx context.Context) {
	c.initMu.Lock()
	defer c.initMu.Unlock()
	if c.barrier.Sealed() || ctx.Err() != nil {
		return
	}
	leads := c.cfg.Cluster.ClusterStatus().IsLeader()
	c.mu.RLock()
	u, standby := c.unsealed, c.standby
	c.mu.RUnlock()
	switch {
	case leads && standby:
		c.becomeActive(ctx)
	case !leads && u != nil:
		c.mu.Lock()
		c.unsealed, c.standby = nil, true
		c.mu.Unlock()
		c.teardown(u)
		c.logger.Info("lost leadership: now a standby", "active_node", c.ActiveAPIAddress())
	}
}

// becomeActive loads the state of a standby that now leads. If the root
// key changed meanwhile (a rekey on the old active node), this node's keys
// are stale: it seals and waits to be unsealed again.
func (c *Core) becomeActive(ctx context.Context) {
	err := c.barrier.Reload(ctx)
	if errors.Is(err, barrier.ErrBadKey) {
		c.mu.Lock()
		c.standby = false
		c.mu.Unlock()
		c.barrier.Seal()
		c.seal.ResetUnseal()
		c.cfg.Metrics.SetSealed(true)
		c.logger.Error("the root key changed while this node was a standby: sealed; unseal it again with the current keys")
		return
	}
	if err == nil {
		err = c.postUnseal(ctx)
	}
	if err != nil {
		// Still a standby; the next check tries again (storage may have
		// been briefly unavailable during the election).
		c.logger.Warn("could not become the active node", "error", err)
		return
	}
	c.logger.Info("became the active node")
}
