package kernel

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/wardproject/ward/kernel/lease"
	"github.com/wardproject/ward/kernel/mount"
	"github.com/wardproject/ward/kernel/plugin"
	"github.com/wardproject/ward/kernel/router"
	"github.com/wardproject/ward/kernel/token"
	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// leaseBackend routes the lease manager's renewals and revocations to the
// secret engine that issued each lease.
type leaseBackend struct {
	c *Core
	u *unsealedState
}

// engine finds the mount of a lease's engine and its plugin. It goes by
// the plugin handle, not the router: a mount being disabled is no longer
// routed, yet its leases must still be revoked by its plugin.
func (b leaseBackend) engine(e *lease.Entry) (*mount.Entry, plugin.Backend, error) {
	me := b.u.secrets.table.ByAccessor(e.MountAccessor)
	if me == nil {
		return nil, nil, fmt.Errorf("%w: the secret engine that issued the lease is no longer mounted", plugin.ErrUnavailable)
	}
	h := b.u.handle(b.u.secrets.route(me))
	if h == nil {
		return nil, nil, fmt.Errorf("%w: the secret engine that issued the lease is not running", plugin.ErrUnavailable)
	}
	return me, h, nil
}

func (b leaseBackend) call(ctx context.Context, op logical.Operation, e *lease.Entry, s *logical.Secret) (*logical.Response, error) {
	me, h, err := b.engine(e)
	if err != nil {
		return nil, err
	}
	return h.HandleRequest(ctx, &logical.Request{
		ID: uuid.NewString(), Operation: op, Path: e.Path, Data: e.Data,
		MountPoint: b.u.secrets.route(me), MountType: me.Type, MountAccessor: me.Accessor, Secret: s,
	})
}

// RenewSecret sends the engine the lease's secret with TTL set to the
// requested increment (or the current TTL). The manager caps the answer at
// the lease's max TTL, which already includes the mount's.
func (b leaseBackend) RenewSecret(ctx context.Context, e *lease.Entry, increment time.Duration) (*logical.Secret, error) {
	s := e.Secret()
	if increment > 0 {
		s.TTL = increment
	}
	resp, err := b.call(ctx, logical.RenewOperation, e, s)
	if err != nil {
		return nil, err
	}
	if resp == nil || resp.Secret == nil {
		return nil, logical.InvalidRequest("the secret engine refused to renew the lease")
	}
	if resp.Secret.TTL < 0 {
		return nil, fmt.Errorf("%w: the secret engine answered a renewal with a negative TTL", plugin.ErrUnavailable)
	}
	out := *resp.Secret
	return &out, nil
}

func (b leaseBackend) RevokeSecret(ctx context.Context, e *lease.Entry) error {
	_, err := b.call(ctx, logical.RevokeOperation, e, e.Secret())
	return err
}

// mountMaxTTL is a mount's max lease TTL, or the server's.
func (c *Core) mountMaxTTL(me *mount.Entry) time.Duration {
	if me != nil && me.Config.MaxLeaseTTL > 0 {
		return time.Duration(me.Config.MaxLeaseTTL) * time.Second
	}
	return c.cfg.MaxLeaseTTL
}

// mountDefaultTTL is a mount's default lease TTL, or the server's.
func (c *Core) mountDefaultTTL(me *mount.Entry) time.Duration {
	if me != nil && me.Config.DefaultLeaseTTL > 0 {
		return time.Duration(me.Config.DefaultLeaseTTL) * time.Second
	}
	return c.cfg.DefaultLeaseTTL
}

// registerLease puts a lease on a secret engine's answer: TTL the engine's
// (else the mount's default), capped by the engine's max, the mount's and
// the server's; the lease belongs to the calling token.
func (c *Core) registerLease(ctx context.Context, u *unsealedState, route *router.Route, rel string, te *token.Entry, resp *logical.Response) error {
	if u.leases == nil {
		return nil
	}
	s := resp.Secret
	switch {
	case route.Prefix == "sys/":
		return nil // the kernel's own answer (sys/leases/renew) describes a lease
	case route.Auth || strings.HasPrefix(route.Prefix, "auth/"):
		// Only secret engines issue leases: an auth method answering a
		// Secret is ignored rather than trusted.
		resp.Secret = nil
		return nil
	}
	if s.TTL < 0 || s.MaxTTL < 0 {
		return fmt.Errorf("%w: secret engine answered with a negative TTL", plugin.ErrUnavailable)
	}
	me := u.secrets.table.ByAccessor(route.Accessor)
	max := c.mountMaxTTL(me)
	if s.MaxTTL > 0 && s.MaxTTL < max {
		max = s.MaxTTL
	}
	ttl := s.TTL
	if ttl == 0 {
		ttl = c.mountDefaultTTL(me)
	}
	ttl = min(ttl, max)
	var tokenHash string
	if te != nil {
		tokenHash = te.HashedID
	}
	e, err := u.leases.Register(ctx, lease.Registration{
		MountPoint: route.Prefix, MountAccessor: route.Accessor, Path: rel,
		Secret:    &logical.Secret{TTL: ttl, MaxTTL: max, Renewable: s.Renewable, InternalData: s.InternalData},
		TokenHash: tokenHash,
	})
	if err != nil {
		// The engine created a credential nobody will revoke: undo it now.
		if _, rerr := route.Handler.HandleRequest(ctx, &logical.Request{ID: uuid.NewString(), Operation: logical.RevokeOperation,
			Path: rel, MountPoint: route.Prefix, MountType: route.Type, MountAccessor: route.Accessor, Secret: s}); rerr != nil {
			c.logger.Error("a secret whose lease could not be registered could not be revoked either", "mount", route.Prefix, "error", rerr)
		}
		return err
	}
	resp.Secret = &logical.Secret{TTL: e.TTL, MaxTTL: e.MaxTTL, Renewable: e.Renewable, LeaseID: e.ID}
	return nil
}

// newLeaseManager opens the lease manager over its barrier view. Nothing
// is loaded: Run reads the expiry index one due window at a time.
func (c *Core) newLeaseManager(u *unsealedState) (*lease.Manager, error) {
	return lease.New(c.barrier.View("sys/expire/"), lease.Options{
		Backend: leaseBackend{c: c, u: u}, Now: c.cfg.Now, Logger: c.logger,
		TokenExists: func(ctx context.Context, tokenHash string) (bool, error) {
			return u.tokens.ExistsHashed(ctx, tokenHash)
		},
	})
}

// tokenRevoked is the token store's hook: a revoked token's leases go
// with it (the manager retries failures in the background).
func (c *Core) tokenRevoked(u *unsealedState) func(ctx context.Context, hashedID string) {
	return func(ctx context.Context, hashedID string) {
		if u.leases == nil {
			return
		}
		if err := u.leases.RevokeByToken(ctx, hashedID); err != nil {
			c.logger.Warn("revoking a revoked token's leases failed; they are retried", "error", err)
		}
	}
}

// leasePaths are the sys/leases endpoints (and Vault's older sys/renew,
// sys/revoke aliases).
func (s *system) leasePaths() []*framework.Path {
	idFields := map[string]*framework.FieldSchema{
		"lease_id":     {Type: framework.TypeString, Description: "The lease ID."},
		"url_lease_id": {Type: framework.TypeString},
		"increment":    {Type: framework.TypeDurationSecond, Description: "Requested TTL from now."},
		"sync":         {Type: framework.TypeBool, Default: true},
	}
	prefixFields := map[string]*framework.FieldSchema{"prefix": {Type: framework.TypeString}, "sync": {Type: framework.TypeBool, Default: true}}
	return []*framework.Path{
		{
			Pattern:      "leases/lookup/?",
			Fields:       idFields,
			Operations:   map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: s.leaseLookup, logical.ListOperation: s.leaseList},
			HelpSynopsis: "Look up a lease (update with lease_id) or list the lease IDs under a prefix.",
		},
		{
			Pattern:      "leases/lookup/(?P<prefix>.+)",
			Fields:       prefixFields,
			Operations:   map[logical.Operation]framework.OperationFunc{logical.ListOperation: s.leaseList},
			HelpSynopsis: "List the lease IDs under a prefix.",
		},
		{
			Pattern:      "(leases/renew|renew)(/(?P<url_lease_id>.+))?",
			Fields:       idFields,
			Operations:   map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: s.leaseRenew},
			HelpSynopsis: "Renew a lease.",
		},
		{
			Pattern:      "(leases/revoke|revoke)(/(?P<url_lease_id>.+))?",
			Fields:       idFields,
			Operations:   map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: s.leaseRevoke},
			HelpSynopsis: "Revoke a lease.",
		},
		{
			Pattern:      "(leases/revoke-prefix|revoke-prefix)/(?P<prefix>.+)",
			Fields:       prefixFields,
			Operations:   map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: s.leaseRevokePrefix(false)},
			HelpSynopsis: "Revoke every lease under a prefix.",
		},
		{
			Pattern:      "(leases/revoke-force|revoke-force)/(?P<prefix>.+)",
			Fields:       prefixFields,
			Operations:   map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: s.leaseRevokePrefix(true)},
			HelpSynopsis: "Revoke every lease under a prefix, forgetting those the engine fails to revoke.",
		},
		{
			Pattern:      "leases/tidy",
			Operations:   map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: s.leaseTidy},
			HelpSynopsis: "Remove dangling lease index entries.",
		},
		{
			Pattern:      "leases/irrevocable",
			Operations:   map[logical.Operation]framework.OperationFunc{logical.ReadOperation: s.leaseIrrevocable},
			HelpSynopsis: "List the leases whose revocation keeps failing.",
		},
	}
}

func leaseID(d *framework.FieldData) (string, error) {
	id := strings.TrimSpace(d.Get("lease_id").(string))
	if id == "" {
		id = strings.TrimSpace(d.Get("url_lease_id").(string))
	}
	if id == "" {
		return "", logical.InvalidRequest("missing lease_id")
	}
	return id, nil
}

func leaseView(e *lease.Entry, now time.Time) map[string]any {
	var expire, last any
	if !e.ExpireTime.IsZero() {
		expire = e.ExpireTime.UTC().Format(time.RFC3339Nano)
	}
	if !e.LastRenewalTime.IsZero() {
		last = e.LastRenewalTime.UTC().Format(time.RFC3339Nano)
	}
	ttl := int64(max(e.ExpireTime.Sub(now), 0) / time.Second)
	return map[string]any{"id": e.ID, "issue_time": e.IssueTime.UTC().Format(time.RFC3339Nano), "expire_time": expire,
		"last_renewal": last, "renewable": e.Renewable, "ttl": ttl}
}

func (s *system) leaseLookup(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	id, err := leaseID(d)
	if err != nil {
		return nil, err
	}
	e, err := s.u.leases.Lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: leaseView(e, s.core.cfg.Now())}, nil
}

func (s *system) leaseList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	prefix := ""
	if v, ok := d.GetOk("prefix"); ok {
		prefix = v.(string)
	}
	keys, err := s.u.leases.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	return logical.ListResponse(keys), nil
}

func (s *system) leaseRenew(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	id, err := leaseID(d)
	if err != nil {
		return nil, err
	}
	e, err := s.u.leases.Renew(ctx, id, time.Duration(d.Get("increment").(int))*time.Second)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Secret: &logical.Secret{TTL: e.ExpireTime.Sub(s.core.cfg.Now()).Round(time.Second),
		Renewable: e.Renewable, LeaseID: e.ID}}, nil
}

func (s *system) leaseRevoke(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	id, err := leaseID(d)
	if err != nil {
		return nil, err
	}
	return nil, s.u.leases.Revoke(ctx, id)
}

func (s *system) leaseRevokePrefix(force bool) framework.OperationFunc {
	return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		return nil, s.u.leases.RevokePrefix(ctx, d.Get("prefix").(string), force)
	}
}

func (s *system) leaseTidy(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	rep, err := s.u.leases.Tidy(ctx)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{"report": fmt.Sprintf("%+v", rep)}}, nil
}

func (s *system) leaseIrrevocable(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	list, err := s.u.leases.Irrevocable(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, 0, len(list))
	for _, e := range list {
		out = append(out, map[string]any{"lease_id": e.ID, "attempts": e.RevokeAttempts, "error": e.LastError})
	}
	return &logical.Response{Data: map[string]any{"leases": out}}, nil
}
