package kernel

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/wardproject/ward/kernel/plugin"
	"github.com/wardproject/ward/kernel/policy"
	"github.com/wardproject/ward/kernel/router"
	"github.com/wardproject/ward/kernel/token"
	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// Request is one API call as the kernel sees it: the SDK request (with the
// full path) plus what never reaches a plugin.
type Request struct {
	*logical.Request
	// ClientToken is the caller's token, "" when none was sent.
	ClientToken string
	// WrapTTL asks for the response to be wrapped in a single-use token
	// living that long (X-Vault-Wrap-TTL); 0 for no wrapping. It must be
	// at least MinWrapTTL.
	WrapTTL time.Duration
}

// errNoRoute is a 404 for a path no mount serves.
func errNoRoute(path string) error {
	return &logical.Error{Code: logical.CodeNotFound,
		Message: "no handler for route \"" + path + "\". route entry not found."}
}

// Response is a kernel result: the backend's response plus, when the kernel
// minted or renewed a token, the envelope's auth block.
type Response struct {
	*logical.Response
	TokenAuth map[string]any
	// WrapInfo is set when the response was wrapped: the client gets only
	// it (and the warnings).
	WrapInfo *WrapInfo
	// Raw, when set, is the body to send as it is (status 200): an
	// unwrapped response, exactly as it was stored. The other fields then
	// describe it for the audit entry.
	Raw []byte
}

// HandleRequest runs the request path: seal check, routing, token, ACL,
// then the mount's handler. It never holds a kernel-wide lock while the
// handler (possibly a plugin) runs.
func (c *Core) HandleRequest(ctx context.Context, r *Request) (*Response, error) {
	tr := &auditTrail{}
	out, err := c.handle(ctx, r, tr)
	if tr.broker != nil {
		return c.auditResponse(ctx, tr, r, out, err)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (c *Core) handle(ctx context.Context, r *Request, tr *auditTrail) (out *Response, err error) {
	start := time.Now()
	mountLabel := "none"
	defer func() {
		var resp *logical.Response
		if out != nil {
			resp = out.Response
		}
		c.cfg.Metrics.ObserveRequest(mountLabel, string(r.Operation), StatusCode(r.Operation, resp, err), time.Since(start))
	}()

	u, err := c.state()
	if err != nil {
		return nil, err
	}
	if r.ID == "" {
		r.ID = uuid.NewString()
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.MaxRequestDuration)
	defer cancel()
	tr.start(u, r)
	if r.WrapTTL < 0 || (r.WrapTTL > 0 && r.WrapTTL < MinWrapTTL) {
		return nil, logical.InvalidRequest("the wrap TTL must be at least %s", MinWrapTTL)
	}
	wc := &wrapCall{ttl: r.WrapTTL}
	ctx = withWrapCall(ctx, wc)

	route, rel := u.router.Match(r.Path)
	tr.route(route)
	if route != nil {
		mountLabel = route.Prefix
	}
	special := &logical.Paths{}
	if route != nil {
		special = route.Handler.SpecialPaths()
	}
	unauth := route != nil && router.PathMatches(special.Unauthenticated, rel)

	// The wrapping token of sys/wrapping/{unwrap,lookup,rewrap} is checked
	// first, as in Vault: an invalid one is a 400 whoever asks.
	if wrappingEndpoint(route, rel) && r.Operation != logical.HelpOperation {
		if err := validateWrappingToken(ctx, u, r, wc); err != nil {
			return nil, err
		}
	}

	var te *token.Entry
	if unauth && route.Auth {
		if err := c.checkLoginCondition(ctx, u, r, route); err != nil {
			return nil, err
		}
	}
	if !unauth {
		if r.ClientToken == "" {
			return nil, logical.ErrPermissionDenied
		}
		te, err = u.tokens.Lookup(ctx, r.ClientToken)
		if err != nil {
			return nil, err
		}
		if !usable(u, te, r.RemoteAddr) {
			if te == nil && wc.token != nil && !wc.thirdParty {
				// The wrapping token was used by a concurrent unwrap
				// since it was validated: same answer as after.
				return nil, ErrInvalidWrappingToken
			}
			return nil, logical.ErrPermissionDenied
		}
		tr.token(te)
		// A write needs "create" or "update" depending on whether its target
		// exists: ask the backend first, as Vault does.
		if r.Operation == logical.UpdateOperation && route != nil {
			if ec, ok := route.Handler.(logical.ExistenceChecker); ok {
				probe := *r.Request
				probe.Path, probe.MountPoint, probe.MountType, probe.MountAccessor = rel, route.Prefix, route.Type, route.Accessor
				found, exists, err := ec.HandleExistenceCheck(token.NewContext(ctx, te), &probe)
				if err != nil {
					return nil, err
				}
				if found && !exists {
					r.Operation = logical.CreateOperation
				}
			}
		}
		// The ACL runs before the route check so a token learns nothing
		// about mounts it may not use (Vault answers 403 there too).
		sudo := route != nil && router.PathMatches(special.Root, rel)
		acl, err := u.policies.acl(ctx, te.Policies)
		if err != nil {
			return nil, err
		}
		d := acl.Authorize(ctx, c.policyInput(r, te, route), sudo)
		tr.conditions(d.Conditions)
		if !d.Allowed {
			return nil, logical.ErrPermissionDenied
		}
		if route == nil {
			return nil, errNoRoute(r.Path)
		}
	}

	// The request is recorded before it runs; if no audit device records
	// it, it does not run (fail closed) and a use-limited token keeps its use.
	if err := tr.logRequest(ctx); err != nil {
		return nil, err
	}
	if te != nil {
		if te.NumUses > 0 {
			spent, last, err := u.tokens.SpendUse(ctx, te)
			if err != nil {
				return nil, err
			}
			if spent == nil {
				if wc.token != nil {
					return nil, ErrInvalidWrappingToken // another request used it first
				}
				return nil, logical.ErrPermissionDenied
			}
			if last {
				// As in Vault, a token's last use revokes it after the
				// request (it already fails every lookup), so the request
				// still sees what the token owns: its cubbyhole, which
				// is how a wrapping token is unwrapped. The revocation
				// does not depend on the client staying connected.
				defer func() {
					if rerr := u.tokens.Revoke(context.WithoutCancel(ctx), spent); rerr != nil {
						c.logger.Error("revoking a token after its last use failed; it can no longer be used", "error", rerr)
					}
				}()
			}
			if wc.token != nil && wc.token.HashedID == spent.HashedID {
				wc.spent = true
			}
			te = spent
		}
		ctx = token.NewContext(ctx, te)
	}

	req := *r.Request
	req.Path = rel
	req.MountPoint = route.Prefix
	req.MountType = route.Type
	req.MountAccessor = route.Accessor
	req.Unauthenticated = unauth
	req.Auth, req.Secret = nil, nil // only the kernel's renewals and revocations send them
	resp, err := route.Handler.HandleRequest(ctx, &req)
	if err != nil {
		return nil, err
	}
	if resp != nil {
		switch {
		case resp.Auth != nil:
			if out, err = c.login(ctx, u, r, route, resp); err != nil {
				return nil, err
			}
		case resp.Secret != nil:
			if err := c.registerLease(ctx, u, route, rel, te, resp); err != nil {
				return nil, err
			}
			out = &Response{Response: resp}
		default:
			out = &Response{Response: resp}
		}
	}
	if out, err = finish(r, out); err != nil {
		return nil, err
	}
	switch {
	case wc.unwrapped != "":
		return unwrappedResponse(wc.unwrapped)
	case wc.ttl > 0 && (wc.raw != "" || wrappable(out)):
		return c.wrapResponse(ctx, u, r, te, route, out, wc)
	}
	return out, nil
}

// finish checks a backend's answer and shapes it for the envelope.
func finish(r *Request, out *Response) (*Response, error) {
	if out == nil {
		return nil, nil
	}
	if sc := out.StatusCode; sc != 0 && (sc < 200 || sc > 599) {
		return nil, fmt.Errorf("%w: backend answered with invalid HTTP status %d", plugin.ErrUnavailable, sc)
	}
	if a, ok := out.Data["auth"].(map[string]any); ok && strings.HasPrefix(r.Path, "auth/token/") {
		// The token backend (in-kernel) returns the envelope auth
		// block under data.auth; lift it where clients expect it.
		out.TokenAuth = a
		out.Data = nil
	}
	return out, nil
}

// usable reports whether a looked-up token may be used from remoteAddr:
// it exists, the address is inside its bound CIDRs, and the auth method
// that issued it is still enabled (its tokens are revoked when it is
// disabled; this also covers a revocation that failed half-way).
func usable(u *unsealedState, te *token.Entry, remoteAddr string) bool {
	if te == nil || !framework.CIDRsContain(te.BoundCIDRs, remoteAddr) {
		return false
	}
	return te.MountAccessor == "" || u.authMount(te.MountAccessor) != nil
}

// checkLoginCondition applies an auth mount's login_condition to a request
// that reached it without a token. A false or failing condition denies.
func (c *Core) checkLoginCondition(ctx context.Context, u *unsealedState, r *Request, route *router.Route) error {
	_, me := u.findMount(route.Prefix)
	if me == nil || me.Config.LoginCondition == "" {
		return nil
	}
	g, err := policy.CompileGuard(me.Config.LoginCondition) // cached by content hash
	if err != nil {
		return err
	}
	in := &policy.Input{Path: r.Path, Operation: r.Operation, Data: r.Data, RemoteAddr: r.RemoteAddr,
		Headers: r.Headers, Now: c.cfg.Now(), Mount: policy.MountInfo{Path: route.Prefix, Type: route.Type, Accessor: route.Accessor}}
	ok, err := g.Allows(ctx, in)
	if err != nil {
		c.logger.Warn("login condition failed to evaluate; login denied", "mount", route.Prefix, "error", err)
	}
	if !ok {
		return logical.ErrPermissionDenied
	}
	return nil
}

// StatusCode is the HTTP status of a kernel result, following Vault:
// typed errors map by code; empty results are 404 for reads and lists and
// 204 for writes. It is here (not in httpapi) so metrics and the HTTP
// layer agree.
func StatusCode(op logical.Operation, resp *logical.Response, err error) int {
	if err != nil {
		return errorStatus(err)
	}
	if resp != nil && resp.StatusCode != 0 {
		return resp.StatusCode
	}
	if resp == nil || (resp.Data == nil && resp.Auth == nil && resp.Secret == nil && len(resp.Warnings) == 0) {
		if op == logical.ReadOperation || op == logical.ListOperation {
			return 404
		}
		return 204
	}
	return 200
}

// Authorize checks that clientToken may perform op on path (a full API
// path), for endpoints served outside the router such as sys/metrics.
func (c *Core) Authorize(ctx context.Context, clientToken, remoteAddr, path string, op logical.Operation) error {
	u, err := c.state()
	if err != nil {
		return err
	}
	if clientToken == "" {
		return logical.ErrPermissionDenied
	}
	te, err := u.tokens.Lookup(ctx, clientToken)
	if err != nil {
		return err
	}
	if !usable(u, te, remoteAddr) {
		return logical.ErrPermissionDenied
	}
	acl, err := u.policies.acl(ctx, te.Policies)
	if err != nil {
		return err
	}
	in := c.policyInput(&Request{Request: &logical.Request{Path: path, Operation: op, RemoteAddr: remoteAddr}}, te, nil)
	if !acl.Authorize(ctx, in, false).Allowed {
		return logical.ErrPermissionDenied
	}
	return nil
}

// policyInput describes a request to the ACL and its conditions.
func (c *Core) policyInput(r *Request, te *token.Entry, route *router.Route) *policy.Input {
	now := c.cfg.Now()
	in := &policy.Input{
		Path: r.Path, Operation: r.Operation, Data: r.Data, RemoteAddr: r.RemoteAddr, Now: now, WrapTTL: r.WrapTTL,
		Token: policy.TokenInfo{Policies: te.Policies, Meta: te.Meta, DisplayName: te.DisplayName,
			CreationTime: te.CreationTime},
	}
	if !te.ExpireTime.IsZero() {
		in.Token.TTL = max(te.ExpireTime.Sub(now), 0)
	}
	if route != nil {
		in.Mount = policy.MountInfo{Path: route.Prefix, Type: route.Type, Accessor: route.Accessor}
	}
	return in
}
