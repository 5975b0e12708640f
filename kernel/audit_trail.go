package kernel

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/wardproject/ward/kernel/audit"
	"github.com/wardproject/ward/kernel/policy"
	"github.com/wardproject/ward/kernel/router"
	"github.com/wardproject/ward/kernel/token"
)

// errAuditFailed refuses a request no audit device recorded. The cause
// (which device, why) goes to the server log, not to the client.
var errAuditFailed = errors.New("internal error: the request could not be audited")

// auditTrail collects what the request path learns for the audit entries.
// With no audit device enabled, broker is nil and every method is a no-op,
// so an unaudited server pays nothing.
type auditTrail struct {
	broker *audit.Broker
	req    *audit.Request
	logged bool // the request entry was written (before the handler ran)
}

func (t *auditTrail) start(u *unsealedState, r *Request) {
	if !u.audit.broker.Active() {
		return
	}
	t.broker = u.audit.broker
	t.req = &audit.Request{ID: r.ID, Operation: string(r.Operation), Path: r.Path, Data: r.Data,
		RemoteAddr: r.RemoteAddr, Headers: r.Headers, ClientToken: r.ClientToken, WrapTTL: r.WrapTTL}
}

func (t *auditTrail) route(rt *router.Route) {
	if t.broker == nil || rt == nil {
		return
	}
	t.req.MountPoint, t.req.MountType, t.req.MountAccessor = rt.Prefix, rt.Type, rt.Accessor
}

func (t *auditTrail) token(te *token.Entry) {
	if t.broker == nil || te == nil {
		return
	}
	t.req.ClientTokenAccessor = te.Accessor
	t.req.Auth = &audit.Auth{ClientToken: te.ID, Accessor: te.Accessor, DisplayName: te.DisplayName,
		Policies: te.Policies, TokenPolicies: te.Policies, Metadata: te.Meta, TokenType: te.Type,
		TTL: te.TTL, IssueTime: te.CreationTime, NumUses: te.NumUses}
}

func (t *auditTrail) conditions(cs []policy.ConditionResult) {
	if t.broker == nil || len(cs) == 0 {
		return
	}
	t.req.PolicyConditions = make([]audit.Condition, len(cs))
	for i, c := range cs {
		t.req.PolicyConditions[i] = audit.Condition{Policy: c.Policy, Pattern: c.Pattern,
			Expression: c.Expression, Result: c.Result, Err: c.Err}
	}
}

// logRequest writes the request entry before the handler runs.
func (t *auditTrail) logRequest(ctx context.Context) error {
	if t.broker == nil {
		return nil
	}
	if err := t.broker.LogRequest(ctx, t.req); err != nil {
		return errAuditFailed
	}
	t.logged = true
	return nil
}

// auditResponse writes the response entry (and, for a request refused
// before it ran, its request entry first, carrying the error). A response
// no device records is not sent: the client gets a 500, as in Vault.
func (c *Core) auditResponse(ctx context.Context, t *auditTrail, r *Request, out *Response, err error) (*Response, error) {
	if errors.Is(err, errAuditFailed) {
		return nil, err // the request entry failed; the request did not run
	}
	errText := ""
	if err != nil {
		errText = err.Error()
	}
	if !t.logged {
		t.req.Error = errText
		if lerr := t.broker.LogRequest(ctx, t.req); lerr != nil {
			// A refused request stays refused; only its record is missing.
			c.logger.Error("audit: a refused request could not be recorded", "request_id", r.ID)
			return nil, err
		}
	}
	ar := &audit.Response{Request: t.req, Error: errText}
	switch {
	case err != nil:
		ar.StatusCode = errorStatus(err)
	case out == nil:
		ar.StatusCode = StatusCode(r.Operation, nil, nil)
	default:
		ar.StatusCode = StatusCode(r.Operation, out.Response, nil)
		if out.TokenAuth != nil && out.StatusCode == 0 {
			ar.StatusCode = 200 // a minted or renewed token is a body
		}
		ar.Data, ar.Warnings = out.Data, out.Warnings
		if out.Secret != nil {
			ar.LeaseID = out.Secret.LeaseID
		}
		ar.Auth = auditAuthBlock(out.TokenAuth)
		if w := out.WrapInfo; w != nil {
			// A wrapped response is audited as the client saw it: the
			// wrapping token (HMAC'd by the device), not what it holds.
			ar.WrapInfo = &audit.WrapInfo{Token: w.Token, Accessor: w.Accessor, TTL: w.TTL,
				CreationTime: w.CreationTime, CreationPath: w.CreationPath, WrappedAccessor: w.WrappedAccessor}
		}
	}
	if lerr := t.broker.LogResponse(ctx, ar); lerr != nil {
		return nil, errAuditFailed
	}
	if out == nil {
		return nil, err
	}
	return out, err
}

// auditAuthBlock reads the envelope auth block the kernel built for a
// minted or renewed token, or decoded from an unwrapped response (JSON
// types then: []any, json.Number, map[string]any).
func auditAuthBlock(a map[string]any) *audit.Auth {
	if a == nil {
		return nil
	}
	str := func(k string) string { s, _ := a[k].(string); return s }
	strs := func(k string) []string {
		switch v := a[k].(type) {
		case []string:
			return v
		case []any:
			out := make([]string, 0, len(v))
			for _, x := range v {
				if s, ok := x.(string); ok {
					out = append(out, s)
				}
			}
			return out
		}
		return nil
	}
	num := func(k string) int64 {
		switch v := a[k].(type) {
		case int64:
			return v
		case int:
			return int64(v)
		case json.Number:
			n, _ := v.Int64()
			return n
		}
		return 0
	}
	out := &audit.Auth{ClientToken: str("client_token"), Accessor: str("accessor"), TokenType: str("token_type"),
		Policies: strs("policies"), TokenPolicies: strs("token_policies")}
	switch m := a["metadata"].(type) {
	case map[string]string:
		out.Metadata = m // read while the entry is formatted, never kept
	case map[string]any:
		out.Metadata = make(map[string]string, len(m))
		for k, v := range m {
			if s, ok := v.(string); ok {
				out.Metadata[k] = s
			}
		}
	}
	out.TTL = time.Duration(num("lease_duration")) * time.Second
	out.NumUses = int(num("num_uses"))
	return out
}
