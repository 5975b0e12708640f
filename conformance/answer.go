package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

// exchange is one request sent to a mount and what came back.
type exchange struct {
	mount     *mountRef
	req       *logical.Request
	existence bool
	deadline  time.Duration // 0: the suite's request timeout

	resp          *logical.Response
	found, exists bool
	err           error
	transport     bool // err: the plugin could not be reached or failed as a whole
	timedOut      bool // no answer before the request timeout
	dur           time.Duration
	calls         int // storage calls made meanwhile (meaningful when nothing else runs)
}

// do sends req to m and waits for the answer, within the request timeout
// (or deadline, when shorter).
func (s *session) do(ctx context.Context, m *mountRef, req *logical.Request, deadline time.Duration) *exchange {
	return s.send(ctx, m, req, deadline, false)
}

func (s *session) send(ctx context.Context, m *mountRef, req *logical.Request, deadline time.Duration, existence bool) *exchange {
	x := &exchange{mount: m, req: req, existence: existence, deadline: deadline}
	timeout := s.opts.RequestTimeout
	if deadline > 0 && deadline < timeout {
		timeout = deadline
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	before := m.v.callCount()
	start := time.Now()
	// Requests go out on a copy: a plugin answer must not change what the
	// suite reports it sent.
	r := *req
	r.Data = cloneData(req.Data)
	if existence {
		x.found, x.exists, x.err = m.m.HandleExistenceCheck(ctx, &r)
	} else {
		x.resp, x.err = m.m.HandleRequest(ctx, &r)
	}
	x.dur = time.Since(start)
	x.calls = m.v.callCount() - before
	if x.err != nil {
		switch {
		case s.target.IsTransportError(x.err):
			x.transport = true
		case deadline == 0 && (errors.Is(x.err, context.DeadlineExceeded) || ctx.Err() != nil):
			x.timedOut = true
		}
	}
	return x
}

func cloneData(d map[string]any) map[string]any {
	if d == nil {
		return nil
	}
	b, err := json.Marshal(d)
	if err != nil {
		return d
	}
	var out map[string]any
	if json.Unmarshal(b, &out) != nil {
		return d
	}
	return out
}

// code returns the error's code and whether the error is a plugin's
// coded error.
func (x *exchange) code() (logical.Code, bool) {
	var le *logical.Error
	if x.err == nil || x.transport || x.timedOut || !errors.As(x.err, &le) {
		return 0, false
	}
	return le.Code, true
}

// ok reports whether the request succeeded.
func (x *exchange) ok() bool { return x.err == nil }

// clientError reports whether the plugin refused the request with a
// 4xx-class code.
func (x *exchange) clientError() bool {
	c, ok := x.code()
	return ok && c >= logical.CodeInvalidRequest && c <= logical.CodeUnsupportedOperation
}

// internal reports whether the plugin answered an internal error (500).
func (x *exchange) internal() bool {
	c, ok := x.code()
	return ok && c == logical.CodeInternal
}

var codeNames = map[logical.Code]string{
	logical.CodeInternal:             "internal, 500",
	logical.CodeInvalidRequest:       "invalid request, 400",
	logical.CodeNotFound:             "not found, 404",
	logical.CodePermissionDenied:     "permission denied, 403",
	logical.CodeUnsupportedOperation: "unsupported operation, 405",
	logical.CodeUnavailable:          "unavailable, 502/503",
}

func codeName(c logical.Code) string {
	if n, ok := codeNames[c]; ok {
		return fmt.Sprintf("code %d (%s)", c, n)
	}
	return fmt.Sprintf("code %d (unknown)", c)
}

// info describes the request for a report.
func (x *exchange) info() *RequestInfo {
	ri := &RequestInfo{Mount: x.mount.path, Operation: string(x.req.Operation), Path: x.req.Path,
		Data: x.req.Data, Unauthenticated: x.req.Unauthenticated, ExistenceCheck: x.existence}
	if x.deadline > 0 {
		ri.Deadline = x.deadline.String()
	}
	if x.req.Secret != nil {
		ri.Secret = renderSecret(x.req.Secret)
	}
	if x.req.Auth != nil {
		ri.Auth = renderAuth(x.req.Auth)
	}
	return ri
}

// actual describes the answer for a report.
func (x *exchange) actual() string {
	switch {
	case x.timedOut:
		return fmt.Sprintf("no answer within %s", x.dur.Round(time.Millisecond))
	case x.transport:
		return "transport failure (the plugin crashed or broke the protocol): " + x.err.Error()
	case x.err != nil:
		if c, ok := x.code(); ok {
			return fmt.Sprintf("error %s: %s", codeName(c), x.err.Error())
		}
		if errors.Is(x.err, context.DeadlineExceeded) {
			return fmt.Sprintf("no answer by the deadline; the host gave up after %s (%v)", x.dur.Round(time.Millisecond), x.err)
		}
		return "error without a code (from the host): " + x.err.Error()
	case x.existence:
		return fmt.Sprintf("existence check: found=%v exists=%v", x.found, x.exists)
	case x.resp == nil:
		return "no response (nil: nothing here)"
	}
	return "response " + truncate(compactJSON(renderResponse(x.resp)), 4000)
}

// rendered is the answer in a canonical form, for comparisons.
func (x *exchange) rendered() string {
	if x.err != nil {
		if c, ok := x.code(); ok {
			return fmt.Sprintf("error %d: %s", c, x.err.Error())
		}
		return "failure: " + x.err.Error()
	}
	if x.resp == nil {
		return "nil"
	}
	return compactJSON(renderResponse(x.resp))
}

func renderResponse(r *logical.Response) map[string]any {
	out := map[string]any{"data": r.Data}
	if r.Secret != nil {
		out["secret"] = renderSecret(r.Secret)
	}
	if r.Auth != nil {
		out["auth"] = renderAuth(r.Auth)
	}
	if len(r.Warnings) > 0 {
		out["warnings"] = r.Warnings
	}
	if r.StatusCode != 0 {
		out["status_code"] = r.StatusCode
	}
	return out
}

func renderSecret(s *logical.Secret) map[string]any {
	return map[string]any{"ttl": s.TTL.String(), "max_ttl": s.MaxTTL.String(), "renewable": s.Renewable,
		"internal_data": s.InternalData, "lease_id": s.LeaseID}
}

func renderAuth(a *logical.Auth) map[string]any {
	out := map[string]any{"display_name": a.DisplayName, "policies": a.Policies, "metadata": a.Metadata,
		"ttl": a.TTL.String(), "max_ttl": a.MaxTTL.String(), "period": a.Period.String(),
		"explicit_max_ttl": a.ExplicitMaxTTL.String(), "renewable": a.Renewable, "num_uses": a.NumUses,
		"bound_cidrs": a.BoundCIDRs, "internal_data": a.InternalData, "no_default_policy": a.NoDefaultPolicy}
	if a.Alias != nil {
		out["alias"] = map[string]any{"name": a.Alias.Name, "metadata": a.Alias.Metadata}
	}
	return out
}

func compactJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v (not JSON: %v)", v, err)
	}
	return string(b)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("… (%d bytes more)", len(s)-n)
}

// problems lists what makes an answer malformed as the kernel sees it:
// a transport failure, no answer, an error without a proper code, or a
// response the kernel could not use. Internal errors are not in it; each
// check decides about those.
func (s *session) problems(x *exchange) []string {
	switch {
	case x.timedOut:
		return []string{"no answer within the request timeout"}
	case x.transport:
		return []string{"the plugin failed as a whole (crashed, trapped or broke the protocol)"}
	case x.err != nil:
		var le *logical.Error
		if !errors.As(x.err, &le) {
			return []string{"the answer is an error without a code"}
		}
		var out []string
		if le.Code < logical.CodeInternal || le.Code > logical.CodeUnavailable {
			out = append(out, fmt.Sprintf("unknown error code %d", le.Code))
		}
		if strings.TrimSpace(le.Message) == "" {
			out = append(out, "the error has no message")
		}
		if strings.Contains(le.Message, "plugin panicked") {
			out = append(out, "the plugin panicked")
		}
		return out
	case x.existence || x.resp == nil:
		return nil
	}
	return s.responseProblems(x.req, x.resp)
}

func (s *session) responseProblems(req *logical.Request, r *logical.Response) []string {
	var out []string
	if r.StatusCode != 0 && (r.StatusCode < 200 || r.StatusCode > 599) {
		out = append(out, fmt.Sprintf("status code %d is not an HTTP status the kernel can send", r.StatusCode))
	}
	if _, err := json.Marshal(r.Data); err != nil {
		out = append(out, "the data is not JSON: "+err.Error())
	}
	if req.Operation == logical.ListOperation && len(r.Data) > 0 {
		keys, ok := r.Data["keys"]
		if !ok {
			out = append(out, `a list answer without "keys"`)
		} else if !isStringList(keys) {
			out = append(out, fmt.Sprintf(`"keys" of a list answer is %T, not a list of strings`, keys))
		}
	}
	for _, w := range r.Warnings {
		if strings.TrimSpace(w) == "" {
			out = append(out, "an empty warning")
		}
	}
	if r.Secret != nil {
		if s.info.Type == logical.TypeAuth {
			out = append(out, "an auth method answered a Secret (only secret engines issue leases)")
		}
		out = append(out, secretProblems(r.Secret)...)
	}
	if r.Auth != nil {
		if s.info.Type != logical.TypeAuth {
			out = append(out, "a secret engine answered an Auth (the kernel refuses it with 502)")
		}
		out = append(out, authProblems(r.Auth, true)...)
	}
	return out
}

func isStringList(v any) bool {
	switch l := v.(type) {
	case []string:
		return true
	case []any:
		for _, e := range l {
			if _, ok := e.(string); !ok {
				return false
			}
		}
		return true
	}
	return false
}

func secretProblems(sec *logical.Secret) []string {
	var out []string
	if sec.TTL < 0 || sec.MaxTTL < 0 {
		out = append(out, fmt.Sprintf("negative lease TTL (ttl %s, max_ttl %s)", sec.TTL, sec.MaxTTL))
	}
	if sec.TTL > 0 && sec.MaxTTL > 0 && sec.TTL > sec.MaxTTL {
		out = append(out, fmt.Sprintf("lease TTL %s above its max TTL %s", sec.TTL, sec.MaxTTL))
	}
	if _, err := json.Marshal(sec.InternalData); err != nil {
		out = append(out, "the secret's internal data is not JSON")
	}
	return out
}

// authProblems checks an Auth; a login's must name an alias.
func authProblems(a *logical.Auth, login bool) []string {
	var out []string
	for name, d := range map[string]time.Duration{"ttl": a.TTL, "max_ttl": a.MaxTTL, "period": a.Period, "explicit_max_ttl": a.ExplicitMaxTTL} {
		if d < 0 {
			out = append(out, fmt.Sprintf("negative %s %s", name, d))
		}
	}
	if a.TTL > 0 && a.MaxTTL > 0 && a.TTL > a.MaxTTL {
		out = append(out, fmt.Sprintf("ttl %s above max_ttl %s", a.TTL, a.MaxTTL))
	}
	if a.NumUses < 0 {
		out = append(out, fmt.Sprintf("negative num_uses %d", a.NumUses))
	}
	for _, p := range a.Policies {
		switch {
		case strings.TrimSpace(p) == "":
			out = append(out, "an empty policy name")
		case p == "root":
			out = append(out, `the "root" policy (the kernel never mints root tokens)`)
		}
	}
	for _, c := range a.BoundCIDRs {
		if _, err := netip.ParsePrefix(c); err != nil && net.ParseIP(c) == nil {
			out = append(out, fmt.Sprintf("bound CIDR %q is neither a CIDR block nor an address", c))
		}
	}
	if login && (a.Alias == nil || strings.TrimSpace(a.Alias.Name) == "") {
		out = append(out, "no alias name (the identity of the login)")
	}
	if _, err := json.Marshal(a.InternalData); err != nil {
		out = append(out, "the auth's internal data is not JSON")
	}
	return out
}
