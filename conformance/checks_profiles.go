package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

// ---- kv ----

// kvParent is the folder the kv checks write in.
const kvParent = "conformance/"

func (s *session) kvLayout() KVFixture {
	var k KVFixture
	if f := s.opts.Fixture; f != nil && f.KV != nil {
		k = *f.KV
	}
	if k.Write == "" {
		k.Write = "{key}"
	}
	if k.Read == "" {
		k.Read = k.Write
	}
	if k.List == "" {
		k.List = "{parent}"
	}
	if k.Delete == "" {
		k.Delete = k.Write
	}
	return k
}

func kvPath(tmpl, key string) string {
	return strings.NewReplacer("{key}", kvParent+key, "{parent}", kvParent).Replace(tmpl)
}

// kvWrite writes obj at key, deciding create or update as the kernel does.
func (s *session) kvWrite(ctx context.Context, m *mountRef, key string, obj map[string]any) *exchange {
	lay := s.kvLayout()
	data := obj
	if lay.Wrap != "" {
		data = map[string]any{lay.Wrap: obj}
	}
	path := kvPath(lay.Write, key)
	op := logical.UpdateOperation
	if ec := s.send(ctx, m, s.request(m, op, path, data), 0, true); ec.ok() && ec.found && !ec.exists {
		op = logical.CreateOperation
	}
	return s.do(ctx, m, s.request(m, op, path, data), 0)
}

// kvRead reads key; present is false when the answer says it is absent.
func (s *session) kvRead(ctx context.Context, m *mountRef, key string) (x *exchange, obj map[string]any, present bool) {
	lay := s.kvLayout()
	x = s.do(ctx, m, s.request(m, logical.ReadOperation, kvPath(lay.Read, key), nil), 0)
	if x.err != nil || x.resp == nil || x.resp.Data == nil {
		return x, nil, false
	}
	obj = x.resp.Data
	if lay.Unwrap != "" {
		inner, _ := obj[lay.Unwrap].(map[string]any)
		if inner == nil {
			return x, nil, false
		}
		obj = inner
	}
	return x, obj, true
}

// jsonEqual compares two JSON values by their encoding (numbers by value).
func jsonEqual(a, b any) bool {
	norm := func(v any) string {
		raw, err := json.Marshal(v)
		if err != nil {
			return fmt.Sprint(v)
		}
		var out any
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		if dec.Decode(&out) != nil {
			return string(raw)
		}
		b, _ := json.Marshal(out)
		return string(b)
	}
	return norm(a) == norm(b)
}

func checkKVRoundtrip(ctx context.Context, t *T) {
	m := t.needFixture(ctx)
	if m == nil {
		return
	}
	s := t.s
	first := map[string]any{"text": m.marker, "number": 42, "fraction": 1.5, "flag": true,
		"nested": map[string]any{"list": []any{"a", "b"}, "empty": map[string]any{}}}
	second := map[string]any{"text": "replaced"}
	for i, obj := range []map[string]any{first, second} {
		w := s.kvWrite(ctx, m, "kv-roundtrip", obj)
		if !w.ok() {
			t.failX(w, "success", "writing an object failed")
			return
		}
		x, got, present := s.kvRead(ctx, m, "kv-roundtrip")
		want := compactJSON(obj)
		switch {
		case !present:
			t.failX(x, "the object written: "+want, "the object written does not read back")
		case !jsonEqual(got, obj) && i == 0:
			t.failX(x, "the object written: "+want, "the object read back differs from the object written (got %s)", compactJSON(got))
		case !jsonEqual(got, obj):
			t.failX(x, "the object written last: "+want, "after an overwrite the object read back is not the new one (a write replaces the object; got %s)", compactJSON(got))
		}
	}
}

func checkKVList(ctx context.Context, t *T) {
	m := t.needFixture(ctx)
	if m == nil {
		return
	}
	s := t.s
	for _, k := range []string{"kv-list-a", "kv-list-b"} {
		if w := s.kvWrite(ctx, m, k, map[string]any{"k": k}); !w.ok() {
			t.failX(w, "success", "writing an object failed")
			return
		}
	}
	x := s.do(ctx, m, s.request(m, logical.ListOperation, kvPath(s.kvLayout().List, ""), nil), 0)
	keys := listKeys(x)
	for _, k := range []string{"kv-list-a", "kv-list-b"} {
		if !slices.Contains(keys, k) {
			t.failX(x, fmt.Sprintf(`a list answer whose "keys" hold %q`, k), "the folder's listing lacks a key written in it")
		}
	}
}

func listKeys(x *exchange) []string {
	if x.err != nil || x.resp == nil {
		return nil
	}
	var out []string
	switch l := x.resp.Data["keys"].(type) {
	case []string:
		out = l
	case []any:
		for _, e := range l {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

func checkKVDelete(ctx context.Context, t *T) {
	m := t.needFixture(ctx)
	if m == nil {
		return
	}
	s := t.s
	lay := s.kvLayout()
	if w := s.kvWrite(ctx, m, "kv-delete", map[string]any{"k": "v"}); !w.ok() {
		t.failX(w, "success", "writing an object failed")
		return
	}
	if x, _, present := s.kvRead(ctx, m, "kv-delete"); !present {
		t.failX(x, "the object written", "the object written does not read back, so deleting it proves nothing")
		return
	}
	d := s.do(ctx, m, s.request(m, logical.DeleteOperation, kvPath(lay.Delete, "kv-delete"), nil), 0)
	if !d.ok() {
		t.failX(d, "success", "deleting the key failed")
		return
	}
	x, got, present := s.kvRead(ctx, m, "kv-delete")
	if c, ok := x.code(); present && !(ok && c == logical.CodeNotFound) {
		t.failX(x, "no response, or error "+codeName(logical.CodeNotFound), "a deleted key still reads (got %s)", compactJSON(got))
	}
	l := s.do(ctx, m, s.request(m, logical.ListOperation, kvPath(lay.List, ""), nil), 0)
	if slices.Contains(listKeys(l), "kv-delete") {
		t.failX(l, `a listing without "kv-delete"`, "a deleted key is still listed")
	}
}

// ---- leasing ----

// issueSecret sends the fixture's issuing request once per run.
func (s *session) issueSecret(ctx context.Context, m *mountRef) *exchange {
	s.issueOnce.Do(func() {
		st := s.opts.Fixture.Leasing.Issue
		s.issue = s.do(ctx, m, s.request(m, st.Operation, st.Path, st.Data), 0)
	})
	return s.issue
}

func (t *T) needLeasing(ctx context.Context) (*mountRef, *Step) {
	f := t.s.opts.Fixture
	if f == nil || f.Leasing == nil {
		t.Failf("the leasing profile needs a fixture giving leasing.issue, the request that issues a secret under a lease (see docs/conformance.md)")
		return nil, nil
	}
	m := t.needFixture(ctx)
	if m == nil {
		return nil, nil
	}
	return m, &f.Leasing.Issue
}

func checkLeaseIssue(ctx context.Context, t *T) {
	m, _ := t.needLeasing(ctx)
	if m == nil {
		return
	}
	x := t.s.issueSecret(ctx, m)
	const want = "a response carrying a Secret (a lease)"
	switch {
	case !x.ok():
		t.failX(x, want, "the issuing request failed")
	case x.resp == nil || x.resp.Secret == nil:
		t.failX(x, want, "the issuing request answered no secret")
	default:
		if probs := t.s.responseProblems(x.req, x.resp); len(probs) > 0 {
			t.failX(x, "a well-formed lease", "%s", strings.Join(probs, "; "))
		}
		if !x.resp.Secret.Renewable {
			t.Notef("the issued secret is not renewable")
		}
	}
}

// issuedSecret returns the secret the issuing request answered, or
// blocks the check.
func (t *T) issuedSecret(ctx context.Context) (*mountRef, *exchange) {
	m, _ := t.needLeasing(ctx)
	if m == nil {
		return nil, nil
	}
	x := t.s.issueSecret(ctx, m)
	if !x.ok() || x.resp == nil || x.resp.Secret == nil {
		t.block("no secret was issued (see leasing.issue)")
		return nil, nil
	}
	return m, x
}

// leaseRequest builds the lease manager's renewal or revocation of the
// secret x issued: the issuing path and data, the secret with its lease ID.
func (s *session) leaseRequest(m *mountRef, op logical.Operation, x *exchange) *logical.Request {
	sec := *x.resp.Secret
	if sec.TTL <= 0 { // the kernel leases for the mount's default then
		sec.TTL = time.Hour
	}
	sec.LeaseID = m.path + x.req.Path + "/conformance-lease"
	sec.IssueTime = time.Now().Add(-x.dur).UTC()
	req := s.request(m, op, x.req.Path, x.req.Data)
	req.Unauthenticated = false
	req.Secret = &sec
	return req
}

func checkLeaseRenew(ctx context.Context, t *T) {
	m, x := t.issuedSecret(ctx)
	if m == nil {
		return
	}
	s := t.s
	orig := x.resp.Secret
	y := s.do(ctx, m, s.leaseRequest(m, logical.RenewOperation, x), 0)
	if !orig.Renewable {
		if probs := s.problems(y); len(probs) > 0 || y.internal() {
			t.failX(y, "a refusal with a 400-class code, or a renewal", "renewing a non-renewable secret: %s", strings.Join(append(probs, "no internal error"), "; "))
		}
		t.Notef("the secret is not renewable: renewal was not required to succeed")
		return
	}
	const want = "a response carrying the renewed Secret"
	switch {
	case !y.ok():
		t.failX(y, want, "the renewal of a renewable secret failed")
	case y.resp == nil || y.resp.Secret == nil:
		t.failX(y, want, "the renewal answered no secret (the kernel takes that as a refusal)")
	default:
		probs := secretProblems(y.resp.Secret)
		if orig.MaxTTL > 0 && y.resp.Secret.MaxTTL > orig.MaxTTL {
			probs = append(probs, fmt.Sprintf("the renewal raised the max TTL from %s to %s", orig.MaxTTL, y.resp.Secret.MaxTTL))
		}
		if len(probs) > 0 {
			t.failX(y, "a well-formed renewed lease", "%s", strings.Join(probs, "; "))
		}
	}
}

func checkLeaseRevoke(ctx context.Context, t *T) {
	m, x := t.issuedSecret(ctx)
	if m == nil {
		return
	}
	s := t.s
	for i := 1; i <= 2; i++ {
		y := s.do(ctx, m, s.leaseRequest(m, logical.RevokeOperation, x), 0)
		if !y.ok() {
			want := "success"
			if i == 2 {
				want = "success: the lease manager retries a revocation until it succeeds, so revoking again must succeed"
			}
			t.failX(y, want, "revocation %d of the lease failed", i)
		}
	}
}

// ---- auth-login ----

func (t *T) needLogin(ctx context.Context) (*mountRef, *LoginFixture) {
	f := t.s.opts.Fixture
	if f == nil || f.Login == nil {
		t.Failf("the auth-login profile needs a fixture giving login.request, a login that succeeds (see docs/conformance.md)")
		return nil, nil
	}
	m := t.needFixture(ctx)
	if m == nil {
		return nil, nil
	}
	return m, f.Login
}

// loginOnce sends the fixture's login once per run.
func (s *session) loginX(ctx context.Context, m *mountRef, st Step) *exchange {
	s.loginOnce.Do(func() {
		s.login = s.do(ctx, m, s.request(m, st.Operation, st.Path, st.Data), 0)
	})
	return s.login
}

func checkLogin(ctx context.Context, t *T) {
	m, f := t.needLogin(ctx)
	if m == nil {
		return
	}
	s := t.s
	if sp := m.m.SpecialPaths(); !isUnauthenticated(sp, f.Request.Path) {
		var un []string
		if sp != nil {
			un = sp.Unauthenticated
		}
		t.Failf("the login path %q is not among the unauthenticated special paths %q: the kernel would demand a token to log in", f.Request.Path, un)
	}
	x := s.loginX(ctx, m, f.Request)
	const want = "a response carrying an Auth"
	switch {
	case !x.ok():
		t.failX(x, want, "the login failed")
	case x.resp == nil || x.resp.Auth == nil:
		t.failX(x, want, "the login answered no Auth")
	default:
		probs := authProblems(x.resp.Auth, true)
		if x.resp.Secret != nil {
			probs = append(probs, "the login also answered a Secret")
		}
		if len(probs) > 0 {
			t.failX(x, "a well-formed Auth", "%s", strings.Join(probs, "; "))
		}
	}
}

// wrongCredentials alters every string of a login's data.
func wrongCredentials(st Step) (Step, bool) {
	altered := false
	data := map[string]any{}
	for k, v := range st.Data {
		if s, ok := v.(string); ok && s != "" {
			data[k] = s + "-wrong"
			altered = true
		} else {
			data[k] = v
		}
	}
	st.Data = data
	return st, altered
}

func checkLoginRefused(ctx context.Context, t *T) {
	m, f := t.needLogin(ctx)
	if m == nil {
		return
	}
	s := t.s
	st, ok := Step{}, true
	if f.Refused != nil {
		st = *f.Refused
	} else if st, ok = wrongCredentials(f.Request); !ok {
		t.Failf("the login's data holds no string to alter into a wrong credential; give login.refused in the fixture")
		return
	}
	x := s.do(ctx, m, s.request(m, st.Operation, st.Path, st.Data), 0)
	const want = "an error with a 400-class code, and no Auth"
	switch {
	case x.ok() && x.resp != nil && x.resp.Auth != nil:
		t.failX(x, want, "a login with wrong credentials was accepted")
	case x.ok():
		t.failX(x, want, "a login with wrong credentials was answered without an error")
	case !x.clientError():
		t.failX(x, want, "a login with wrong credentials was not refused with a 400-class code")
	}
}

func checkAuthRenew(ctx context.Context, t *T) {
	m, f := t.needLogin(ctx)
	if m == nil {
		return
	}
	s := t.s
	x := s.loginX(ctx, m, f.Request)
	if !x.ok() || x.resp == nil || x.resp.Auth == nil {
		t.block("no login succeeded (see auth.login)")
		return
	}
	a := *x.resp.Auth
	a.IssueTime = time.Now().Add(-x.dur).UTC()
	if a.TTL == 0 {
		a.TTL = time.Hour
	}
	req := s.request(m, logical.RenewOperation, f.Request.Path, nil)
	req.Unauthenticated = false
	req.Auth = &a
	y := s.do(ctx, m, req, 0)
	if !x.resp.Auth.Renewable {
		if probs := s.problems(y); len(probs) > 0 || y.internal() {
			t.failX(y, "a refusal with a 400-class code, or a renewal", "renewing a non-renewable token: %s", strings.Join(append(probs, "no internal error"), "; "))
		}
		t.Notef("the login's Auth is not renewable: renewal was not required to succeed")
		return
	}
	const want = "a response carrying the renewed Auth"
	switch {
	case !y.ok():
		t.failX(y, want, "the renewal of a renewable login token failed")
	case y.resp == nil || y.resp.Auth == nil:
		t.failX(y, want, "the renewal answered no Auth (the kernel takes that as a refusal)")
	default:
		if probs := authProblems(y.resp.Auth, false); len(probs) > 0 {
			t.failX(y, "a well-formed Auth", "%s", strings.Join(probs, "; "))
		}
	}
}
