package kernel

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/wardproject/ward/kernel/plugin"
	"github.com/wardproject/ward/kernel/router"
	"github.com/wardproject/ward/kernel/token"
	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// login mints the token an auth method's answer asks for. Only auth mounts
// may ask: a secret engine (or anything else) answering with an Auth is a
// misbehaving plugin, and its answer is dropped with an error.
func (c *Core) login(ctx context.Context, u *unsealedState, r *Request, route *router.Route, resp *logical.Response) (*Response, error) {
	if !route.Auth {
		return nil, fmt.Errorf("%w: the %s mount answered with auth data; only auth methods issue tokens",
			plugin.ErrUnavailable, route.Prefix)
	}
	_, me := u.findMount(route.Prefix)
	if me == nil || me.Accessor != route.Accessor {
		return nil, errDisabledDuringLogin(route.Prefix)
	}
	a := resp.Auth
	if a.TTL < 0 || a.MaxTTL < 0 || a.Period < 0 || a.ExplicitMaxTTL < 0 || a.NumUses < 0 {
		return nil, fmt.Errorf("%w: auth method answered with a negative TTL or use count", plugin.ErrUnavailable)
	}
	policies := framework.NormalizePolicies(a.Policies)
	if slices.Contains(policies, "root") {
		// A plugin must never be able to hand out the kernel's master key.
		return nil, logical.InvalidRequest("auth methods cannot issue tokens with the root policy")
	}
	if !a.NoDefaultPolicy {
		policies = framework.NormalizePolicies(append(policies, "default"))
	}
	cidrs, err := framework.ParseCIDRs(a.BoundCIDRs)
	if err != nil {
		return nil, fmt.Errorf("%w: auth method answered with bad bound CIDRs: %v", plugin.ErrUnavailable, err)
	}

	// TTLs as Vault computes them for a login: the method's TTL or the
	// mount's default, capped by the method's max TTL and the mount's.
	ttl := a.TTL
	if ttl == 0 {
		ttl = c.mountDefaultTTL(me)
	}
	maxTTL := minPositive(c.mountMaxTTL(me), a.MaxTTL)

	e, err := u.tokens.Create(ctx, &token.Entry{
		Policies:       policies,
		Meta:           maps.Clone(a.Metadata),
		DisplayName:    loginDisplayName(route.Prefix, a.DisplayName),
		NumUses:        a.NumUses,
		Path:           r.Path,
		TTL:            ttl,
		MaxTTL:         maxTTL,
		ExplicitMaxTTL: a.ExplicitMaxTTL,
		Period:         a.Period,
		Renewable:      a.Renewable,
		BoundCIDRs:     cidrs,
		MountAccessor:  route.Accessor,
		Auth:           a,
	})
	if err != nil {
		return nil, err
	}
	// A disable that ran while we minted listed the mount's tokens before
	// ours was indexed: it removes the mount from the table first, so
	// checking again now catches it.
	if u.authMount(route.Accessor) == nil {
		if rerr := u.tokens.Revoke(ctx, e); rerr != nil {
			c.logger.Error("revoking a token minted by a disabled auth method failed", "mount", route.Prefix, "error", rerr)
		}
		return nil, errDisabledDuringLogin(route.Prefix)
	}
	out := *resp
	out.Auth = nil // never echoed: it holds the method's internal data
	return &Response{Response: &out, TokenAuth: u.tokens.AuthBlock(e)}, nil
}

func errDisabledDuringLogin(prefix string) error {
	return fmt.Errorf("%w: the auth method at %s was disabled during the login", plugin.ErrUnavailable, prefix)
}

// loginDisplayName is Vault's "<mount path>-<name>", e.g. "userpass-alice".
func loginDisplayName(prefix, name string) string {
	source := strings.ReplaceAll(strings.TrimPrefix(prefix, "auth/"), "/", "-")
	return strings.TrimSuffix(source+name, "-")
}

func minPositive(a, b time.Duration) time.Duration {
	if a == 0 || (b > 0 && b < a) {
		return b
	}
	return a
}

// renewAuth is the token store's hook for renewing a login token: the
// auth method that issued it must agree, and may change its TTLs.
func (c *Core) renewAuth(u *unsealedState) func(ctx context.Context, e *token.Entry) (*logical.Auth, error) {
	return func(ctx context.Context, e *token.Entry) (*logical.Auth, error) {
		me := u.authMount(e.MountAccessor)
		route, rel := u.router.Match(e.Path)
		if me == nil || route == nil || route.Accessor != e.MountAccessor {
			return nil, logical.InvalidRequest("the auth method that issued this token is no longer enabled")
		}
		var a logical.Auth
		if e.Auth != nil {
			a = *e.Auth
		}
		a.IssueTime = e.CreationTime
		a.TTL, a.MaxTTL, a.Period = e.TTL, e.MaxTTL, e.Period
		resp, err := route.Handler.HandleRequest(ctx, &logical.Request{
			ID: uuid.NewString(), Operation: logical.RenewOperation, Path: rel,
			MountPoint: route.Prefix, MountType: route.Type, MountAccessor: route.Accessor, Auth: &a,
		})
		if err != nil {
			return nil, err
		}
		if resp == nil || resp.Auth == nil {
			return nil, logical.InvalidRequest("the auth method refused to renew the token")
		}
		if resp.Auth.TTL < 0 || resp.Auth.MaxTTL < 0 || resp.Auth.Period < 0 {
			return nil, fmt.Errorf("%w: auth method answered a renewal with a negative TTL", plugin.ErrUnavailable)
		}
		out := *resp.Auth
		out.MaxTTL = minPositive(c.mountMaxTTL(me), out.MaxTTL)
		return &out, nil
	}
}
