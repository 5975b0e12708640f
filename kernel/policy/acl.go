package policy

import (
	"context"
	"strings"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

// Input is what a decision is made on.
type Input struct {
	// Path is the full API path, without "/v1/" ("secret/data/app").
	Path      string
	Operation logical.Operation
	// Data is the request data; parameter constraints apply to it for
	// read, create, update and patch (reads carry query parameters).
	Data map[string]any
	// WrapTTL is the response-wrapping TTL the request asks for; 0 when the
	// response is not wrapped. Paths with min/max_wrapping_ttl require it.
	WrapTTL time.Duration

	// The rest only feeds conditions.

	// RemoteAddr is the client IP. A "host:port" form is accepted and the
	// port stripped: request.remote_addr is always a bare IP.
	RemoteAddr string
	// Headers are the request headers the kernel chooses to expose to
	// conditions; names are lower-cased for request.headers.
	Headers map[string][]string
	Token   TokenInfo
	Mount   MountInfo
	// Now is the decision time; zero means time.Now(). Tests inject it.
	Now time.Time
}

// TokenInfo describes the requesting token to conditions. It deliberately
// has no accessor or token ID.
type TokenInfo struct {
	Policies     []string
	Meta         map[string]string
	DisplayName  string
	EntityID     string
	TTL          time.Duration
	CreationTime time.Time
}

// MountInfo describes the mount the path routes to ("" fields when none).
type MountInfo struct {
	Path     string // with its trailing slash, "secret/"
	Type     string
	Accessor string
}

// Decision is the outcome of Authorize.
type Decision struct {
	Allowed bool
	// RootPrivs reports that sudo is granted on the path (whether or not
	// it was needed); IsRoot that the token holds the root policy.
	RootPrivs bool
	IsRoot    bool
	// Pattern is the pattern of the rules that decided ("" when none
	// matched, and for root).
	Pattern string
	// Capabilities are the capabilities in effect on the path after
	// conditions, sorted: ["root"] for root, ["deny"] for an explicit deny,
	// nil when no rule matched.
	Capabilities []string
	// DeniedReason says why the request was denied, for logs and audit. It
	// may name a parameter, never a value.
	DeniedReason string
	// Conditions lists the conditions evaluated, for audit.
	Conditions []ConditionResult
	// MinWrappingTTL and MaxWrappingTTL are the merged bounds on the path
	// (0 = unset).
	MinWrappingTTL time.Duration
	MaxWrappingTTL time.Duration
}

// ConditionResult records one evaluated condition.
type ConditionResult struct {
	Policy     string
	Pattern    string
	Expression string
	// Result is whether the condition held. It is false when Err is set.
	Result bool
	// Err classifies an evaluation failure ("no such key", "division by
	// zero", "cost limit exceeded", ...); it never quotes request data.
	Err string
}

// ACL is the compiled set of a token's policies. It is immutable and safe
// for concurrent use; building one is the expensive part (the kernel should
// cache it per policy set), deciding is cheap.
type ACL struct {
	root bool
	// exact maps exact patterns to their rules; exactTree holds the same
	// entries for prefix walks (HasAccessUnder).
	exact     map[string]*entry
	exactTree radix[*entry]
	// prefix holds the "*" patterns by prefix.
	prefix radix[*entry]
	// wild holds the "+" patterns.
	wild segTrie
}

// entry gathers every rule (from every policy) written with one pattern.
type entry struct {
	pat pattern
	// pattern is the pattern as written.
	pattern string
	// base merges the unconditional rules; conds are the conditional ones.
	base  perms
	conds []condRule
}

type condRule struct {
	policy string
	rule   *PathRules
	// restrictive rules (deny, or no capability at all) apply when their
	// condition errors: errors always resolve to the less permissive side.
	restrictive bool
}

var rootACL = &ACL{root: true}

// NewACL compiles policies into an ACL. The policies come from Parse, Root
// or Default. If any policy is the root policy (named "root") the ACL
// allows everything (Vault refuses root alongside other policies; Ward's
// tokens and New treat "root among the names" as root). nil policies are
// skipped, and so are templated rules (see Policy.Templated). The error is
// reserved for future checks; today NewACL always succeeds.
func NewACL(policies []*Policy) (*ACL, error) {
	for _, p := range policies {
		if p != nil && p.Name == RootPolicyName {
			return rootACL, nil
		}
	}
	a := &ACL{exact: map[string]*entry{}}
	prefixes := map[string]*entry{}
	wild := map[string]*entry{}
	for _, p := range policies {
		if p == nil {
			continue
		}
		for _, r := range p.Paths {
			if r.Templated {
				continue
			}
			var m map[string]*entry
			switch r.pat.kind {
			case kindExact:
				m = a.exact
			case kindPrefix:
				m = prefixes
			default:
				m = wild
			}
			e := m[r.Pattern]
			if e == nil {
				e = &entry{pat: r.pat, pattern: r.Pattern}
				m[r.Pattern] = e
			}
			if r.cond == nil {
				e.base.merge(&r.perms)
				continue
			}
			e.conds = append(e.conds, condRule{
				policy:      p.Name,
				rule:        r,
				restrictive: r.perms.caps&^capDeny == 0,
			})
		}
	}
	for _, e := range prefixes {
		a.prefix.insert(e.pat.literal, e)
	}
	for _, e := range a.exact {
		a.exactTree.insert(e.pat.literal, e)
	}
	for _, e := range wild {
		a.wild.insert(e)
	}
	return a, nil
}

// IsRoot reports whether the ACL allows everything.
func (a *ACL) IsRoot() bool { return a != nil && a.root }

// lookup finds the pattern that decides for path, as Vault's
// ACL.AllowOperation does: an exact pattern first (for list, also the path
// without its trailing slash); then the most precise non-exact pattern (for
// list, first for the path without its trailing slash). Conditions play no
// part in the choice.
func (a *ACL) lookup(path string, list bool) *entry {
	if e := a.exact[path]; e != nil {
		return e
	}
	trimmed, hadSlash := strings.CutSuffix(path, "/")
	if list {
		if e := a.exact[trimmed]; e != nil {
			return e
		}
		if hadSlash {
			if e := a.nonExact(trimmed); e != nil {
				return e
			}
		}
	}
	return a.nonExact(path)
}

// nonExact returns the most precise "*" or "+" pattern matching path (see
// morePrecise): the longest matching "*" prefix (from the radix tree)
// against the best "+" pattern (from the segment trie). Neither looks at
// rules that cannot match, so a decision never scans the rule set.
func (a *ACL) nonExact(path string) *entry {
	_, pe, pok := a.prefix.longestPrefix(path)
	var we *entry
	if a.wild.size > 0 {
		we = a.wild.best(path)
	}
	switch {
	case we == nil:
		if pok {
			return pe
		}
		return nil
	case pok && morePrecise(&pe.pat, &we.pat):
		return pe
	}
	return we
}

// wantCap maps an operation to the capability it needs, as Vault does:
// help needs read (Vault always allows help; Ward does not reveal a path's
// help to a token that may not read it); renew and revoke need update.
func wantCap(op logical.Operation) (capSet, bool) {
	switch op {
	case logical.ReadOperation, logical.HelpOperation:
		return capRead, true
	case logical.ListOperation:
		return capList, true
	case logical.CreateOperation:
		return capCreate, true
	case logical.UpdateOperation, logical.RenewOperation, logical.RevokeOperation:
		return capUpdate, true
	case logical.PatchOperation:
		return capPatch, true
	case logical.DeleteOperation:
		return capDelete, true
	}
	return 0, false
}

// Authorize decides whether in may proceed. needSudo reports that the path
// is root-protected and needs the sudo capability. ctx bounds condition
// evaluation. A nil ACL or Input denies.
func (a *ACL) Authorize(ctx context.Context, in *Input, needSudo bool) *Decision {
	d := &Decision{}
	if a == nil || in == nil {
		d.DeniedReason = "no ACL"
		return d
	}
	if a.root {
		d.Allowed, d.RootPrivs, d.IsRoot = true, true, true
		d.Capabilities = []string{"root"}
		return d
	}
	want, ok := wantCap(in.Operation)
	if !ok {
		d.DeniedReason = "unsupported operation"
		return d
	}
	path := strings.TrimLeft(in.Path, "/")
	e := a.lookup(path, in.Operation == logical.ListOperation)
	if e == nil {
		d.DeniedReason = "no policy grants access to the path"
		return d
	}
	p := a.effective(ctx, e, in, d)
	d.Pattern = e.pattern
	d.Capabilities = p.caps.strings()
	d.RootPrivs = p.caps&capSudo != 0
	d.MinWrappingTTL, d.MaxWrappingTTL = p.minWrap, p.maxWrap
	switch {
	case p.caps&capDeny != 0:
		d.DeniedReason = "explicitly denied"
		return d
	case p.caps&want == 0:
		d.DeniedReason = "the " + capName(want) + " capability is not granted"
		return d
	case needSudo && !d.RootPrivs:
		d.DeniedReason = "the path needs the sudo capability"
		return d
	}
	if r := p.checkWrapping(in.WrapTTL); r != "" {
		d.DeniedReason = r
		return d
	}
	switch in.Operation {
	case logical.ReadOperation, logical.CreateOperation, logical.UpdateOperation, logical.PatchOperation:
		if r := p.checkParameters(in.Data); r != "" {
			d.DeniedReason = r
			return d
		}
	}
	d.Allowed = true
	return d
}

// checkWrapping applies the wrapping TTL bounds as Vault does: a bound on
// the path requires a wrapped response within it.
func (p *perms) checkWrapping(ttl time.Duration) string {
	if p.maxWrap > 0 && (ttl == 0 || ttl > p.maxWrap) {
		return "the path requires response wrapping with a TTL of at most max_wrapping_ttl"
	}
	if p.minWrap > 0 && (ttl == 0 || ttl < p.minWrap) {
		return "the path requires response wrapping with a TTL of at least min_wrapping_ttl"
	}
	if p.minWrap > 0 && p.maxWrap > 0 && p.maxWrap < p.minWrap {
		return "the merged wrapping TTL bounds are contradictory"
	}
	return ""
}

func capName(c capSet) string {
	if s := c.strings(); len(s) == 1 {
		return s[0]
	}
	return "required"
}

// effective returns the permissions the entry grants to in: its
// unconditional rules merged with the conditional rules that apply. It
// records the evaluated conditions in d.
func (a *ACL) effective(ctx context.Context, e *entry, in *Input, d *Decision) perms {
	p := e.base
	if len(e.conds) == 0 {
		return p
	}
	if ctx == nil {
		ctx = context.Background()
	}
	now := in.Now
	if now.IsZero() {
		now = time.Now()
	}
	act := newActivation(in, now.UTC())
	d.Conditions = make([]ConditionResult, 0, len(e.conds))
	for i := range e.conds {
		c := &e.conds[i]
		res := ConditionResult{Policy: c.policy, Pattern: e.pattern, Expression: c.rule.Condition}
		ok, err := c.rule.cond.eval(ctx, act)
		applies := ok
		if err != nil {
			res.Err = evalErrorClass(err)
			applies = c.restrictive
		}
		res.Result = ok && err == nil
		d.Conditions = append(d.Conditions, res)
		if applies {
			p.merge(&c.rule.perms)
		}
	}
	return p
}

// Capabilities returns the capabilities in effect on in.Path, sorted, for
// sys/capabilities and sys/capabilities-self: ["root"] for root, ["deny"]
// when denied or when nothing is granted. The pattern is chosen as for a
// list request, as Vault does (so "secret/foo/" also finds a rule for
// "secret/foo"); conditions are evaluated against in as given (its
// Operation is what request.operation sees).
func (a *ACL) Capabilities(ctx context.Context, in *Input) []string {
	if a.IsRoot() {
		return []string{"root"}
	}
	if a == nil || in == nil {
		return []string{"deny"}
	}
	e := a.lookup(strings.TrimLeft(in.Path, "/"), true)
	if e == nil {
		return []string{"deny"}
	}
	p := a.effective(ctx, e, in, &Decision{})
	if p.caps == 0 || p.caps&capDeny != 0 {
		return []string{"deny"}
	}
	return p.caps.strings()
}
