package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

// Options configure a run. The zero value runs every check with defaults.
type Options struct {
	// Type is the plugin type the caller expects ("" accepts either).
	Type logical.BackendType
	// Fixture gives the profile checks what the schema cannot (nil: none).
	Fixture *Fixture
	// RequestTimeout bounds every request (10s).
	RequestTimeout time.Duration
	// Concurrency is the number of requests core.concurrency keeps in
	// flight (32).
	Concurrency int
	// Source names what was tested, for the report (a file, a builtin).
	Source string
}

func (o *Options) withDefaults() {
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 10 * time.Second
	}
	if o.Concurrency == 0 {
		o.Concurrency = 32
	}
}

// Run runs every check against the target and reports. It closes nothing
// it did not start: the caller closes the target.
func Run(ctx context.Context, target Target, opts Options) *Report {
	opts.withDefaults()
	s := &session{target: target, opts: opts}
	defer s.closeMounts(ctx)
	start := time.Now()
	rep := &Report{Suite: SuiteName, Version: Version, Transport: target.Transport(), Source: opts.Source, Started: start}

	info, infoErr := s.describe(ctx)
	declared := map[Profile]bool{ProfileCore: true}
	if infoErr == nil {
		rep.Plugin = &info
		for _, c := range info.Capabilities {
			declared[Profile(c)] = true
		}
	}
	for _, c := range registry {
		res := Result{ID: c.ID, Profile: c.Profile, Since: c.Since, Description: c.Description}
		t0 := time.Now()
		switch {
		case infoErr != nil && c.Profile != ProfileCore:
			res.Status, res.Reason = StatusBlocked, "the plugin did not start, so its capabilities are unknown (see core.handshake)"
		case !declared[c.Profile]:
			res.Status, res.Reason = StatusSkip, "capability not declared"
		case infoErr != nil && !startIndependent[c.ID]:
			res.Status, res.Reason = StatusBlocked, "the plugin did not start (see core.handshake)"
		default:
			s.runCheck(ctx, c, &res)
		}
		res.Duration = time.Since(t0)
		res.trim()
		rep.Results = append(rep.Results, res)
	}
	for _, p := range Profiles() {
		if declared[p] {
			rep.Profiles = append(rep.Profiles, p)
		}
	}
	rep.Duration = time.Since(start)
	return rep
}

// startIndependent lists the checks that run even when the plugin does
// not start (they report why).
var startIndependent = map[string]bool{"core.handshake": true, "core.version.unknown-major": true}

func (s *session) runCheck(ctx context.Context, c Check, res *Result) {
	t := &T{s: s, res: res}
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Failf("the conformance suite itself failed during this check (please report it): %v\n%s", r, debug.Stack())
			}
		}()
		c.Run(ctx, t)
	}()
	if res.Status == "" {
		res.Status = StatusPass
		if len(res.Failures) > 0 {
			res.Status = StatusFail
		}
	}
}

// session is the state one run shares between checks: the target, its
// mounts and what earlier steps learnt. Steps run once, on first use,
// whichever check needs them first.
type session struct {
	target Target
	opts   Options

	info    Info
	infoErr error
	nextID  atomic.Int64

	mu     sync.Mutex // protects mounts
	mounts []*mountRef

	primaryOnce sync.Once
	primary     *mountRef
	primaryErr  error
	paths       []*pathInfo
	special     *logical.Paths
	schema      *logical.Schema

	sweepOnce sync.Once
	sweepRes  *sweepResult

	persistOnce sync.Once
	persistRes  *persistState
	persistErr  error

	fixtureOnce sync.Once
	fixtureM    *mountRef
	fixtureErr  *fixtureError

	issueOnce sync.Once
	issue     *exchange

	loginOnce sync.Once
	login     *exchange
}

func (s *session) describe(ctx context.Context) (Info, error) {
	s.info, s.infoErr = s.target.Describe(ctx)
	return s.info, s.infoErr
}

// mountRef is a mount the session set up, with its storage view.
type mountRef struct {
	role   string
	id     string
	path   string
	m      Mount
	v      *view
	marker string // written into every write's data through this mount
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *session) mountConfig() map[string]string {
	if s.opts.Fixture != nil {
		return s.opts.Fixture.Config
	}
	return nil
}

// newMount sets up a fresh mount through the target (as the server does).
func (s *session) newMount(ctx context.Context, role string) (*mountRef, error) {
	return s.newMountOn(ctx, role, newView())
}

// newMountOn sets up a mount through the target on view v.
func (s *session) newMountOn(ctx context.Context, role string, v *view) (*mountRef, error) {
	ref := &mountRef{role: role, id: "conformance-" + role + "-" + randomHex(4), path: "conformance-" + role + "/",
		v: v, marker: "cfmark-" + role + "-" + randomHex(6)}
	m, err := s.target.Mount(ctx, MountSpec{ID: ref.id, Path: ref.path, Config: s.mountConfig(), Storage: ref.v})
	if err != nil {
		return nil, err
	}
	ref.m = m
	s.mu.Lock()
	s.mounts = append(s.mounts, ref)
	s.mu.Unlock()
	return ref, nil
}

// newControlMount sets up a mount on the control plane, on view v.
func (s *session) newControlMount(ctx context.Context, role string, v *view) (*mountRef, ControlMount, error) {
	ref := &mountRef{role: role, id: "conformance-" + role + "-" + randomHex(4), path: "conformance-" + role + "/",
		v: v, marker: "cfmark-" + role + "-" + randomHex(6)}
	m, err := s.target.ControlMount(ctx, MountSpec{ID: ref.id, Path: ref.path, Config: s.mountConfig(), Storage: v})
	if err != nil {
		return nil, nil, err
	}
	ref.m = m
	return ref, m, nil
}

func (s *session) closeMounts(ctx context.Context) {
	s.mu.Lock()
	ms := s.mounts
	s.mounts = nil
	s.mu.Unlock()
	for _, m := range ms {
		m.m.Close(ctx)
	}
}

// request builds a request the way the kernel does for path on mount m.
func (s *session) request(m *mountRef, op logical.Operation, path string, data map[string]any) *logical.Request {
	special := s.special
	if special == nil {
		special = m.m.SpecialPaths()
	}
	return &logical.Request{
		ID: "conformance-" + strconv.FormatInt(s.nextID.Add(1), 10), Operation: op, Path: path, Data: data,
		MountPoint: m.path, MountType: s.info.Name, MountAccessor: "conformance_" + m.role + "_accessor",
		RemoteAddr: "127.0.0.1", Unauthenticated: isUnauthenticated(special, path),
	}
}

// setupPrimary sets up the mount the core checks use and reads its schema.
func (s *session) setupPrimary(ctx context.Context) (*mountRef, error) {
	s.primaryOnce.Do(func() {
		s.primary, s.primaryErr = s.newMount(ctx, "core")
		if s.primaryErr != nil {
			return
		}
		s.schema = s.primary.m.Schema()
		s.special = s.primary.m.SpecialPaths()
		s.paths = analyzePaths(s.schema)
	})
	return s.primary, s.primaryErr
}

// needPrimary returns the primary mount or blocks the check.
func (t *T) needPrimary(ctx context.Context) *mountRef {
	m, err := t.s.setupPrimary(ctx)
	if err != nil {
		t.block("the kernel's runner could not set a mount up: %v (see core.handshake)", err)
		return nil
	}
	return m
}

// sweepResult is the exercise of every declared operation on the primary
// mount, in schema order: writes, patches, reads and lists of every path,
// then its deletes.
type sweepResult struct {
	xs []*exchange
	// plan holds the writes that succeeded: replayed to give other mounts state.
	plan []planStep
	// serialInternal records requests (pattern, operation) that answered
	// an internal error when sent alone; serialBad those whose answer was
	// malformed when sent alone (core.operations reports those).
	serialInternal map[string]bool
	serialBad      map[string]bool
}

type planStep struct {
	p       *pathInfo
	op      logical.Operation
	variant int
	calls   int
}

func stepKey(p *pathInfo, op logical.Operation) string { return strconv.Itoa(p.idx) + "|" + string(op) }

func (s *session) sweep(ctx context.Context) *sweepResult {
	s.sweepOnce.Do(func() {
		m := s.primary
		res := &sweepResult{serialInternal: map[string]bool{}, serialBad: map[string]bool{}}
		record := func(p *pathInfo, x *exchange) *exchange {
			res.xs = append(res.xs, x)
			if !x.existence && x.internal() {
				res.serialInternal[stepKey(p, x.req.Operation)] = true
			}
			if !x.existence && len(s.problems(x)) > 0 {
				res.serialBad[stepKey(p, x.req.Operation)] = true
			}
			return x
		}
		write := func(p *pathInfo, op logical.Operation) {
			sent := map[string]bool{}
			for v := range numVariants {
				data := p.writeData(v, m.marker)
				if key := compactJSON(data); sent[key] {
					continue
				} else {
					sent[key] = true
				}
				x := record(p, s.do(ctx, m, s.request(m, op, p.sample, data), 0))
				if x.ok() {
					res.plan = append(res.plan, planStep{p: p, op: op, variant: v, calls: x.calls})
					return
				}
				if !x.clientError() {
					return
				}
			}
		}
		for _, p := range s.paths {
			if p.sample == "" {
				continue
			}
			if p.ops[logical.CreateOperation] || p.ops[logical.UpdateOperation] {
				ec := record(p, s.send(ctx, m, s.request(m, logical.UpdateOperation, p.sample, p.writeData(variantFull, m.marker)), 0, true))
				op := logical.UpdateOperation
				if p.ops[logical.CreateOperation] && (!ec.exists || !p.ops[logical.UpdateOperation]) {
					op = logical.CreateOperation
				}
				write(p, op)
				if op == logical.CreateOperation && p.ops[logical.UpdateOperation] {
					write(p, logical.UpdateOperation)
				}
			}
			if p.ops[logical.PatchOperation] {
				write(p, logical.PatchOperation)
			}
			for _, op := range []logical.Operation{logical.ReadOperation, logical.ListOperation} {
				if p.ops[op] {
					x := record(p, s.do(ctx, m, s.request(m, op, p.sample, nil), 0))
					if x.ok() {
						res.plan = append(res.plan, planStep{p: p, op: op, calls: x.calls})
					}
				}
			}
		}
		for _, p := range s.paths {
			if p.sample != "" && p.ops[logical.DeleteOperation] {
				record(p, s.do(ctx, m, s.request(m, logical.DeleteOperation, p.sample, nil), 0))
			}
		}
		s.sweepRes = res
	})
	return s.sweepRes
}

// stepRequest builds a plan step's request for mount m.
func (s *session) stepRequest(m *mountRef, st planStep) *logical.Request {
	var data map[string]any
	if isWriteOp(st.op) {
		data = st.p.writeData(st.variant, m.marker)
	}
	return s.request(m, st.op, st.p.sample, data)
}

func isWriteOp(op logical.Operation) bool {
	return op == logical.CreateOperation || op == logical.UpdateOperation || op == logical.PatchOperation
}

// probe is a read whose answer the suite compares over time.
type probe struct {
	op       logical.Operation
	path     string
	want     string // the rendered answer
	hasState bool   // the answer holds data
}

// persistState is a mount holding state written by the suite, and the
// reads that answer deterministically on it.
type persistState struct {
	m      *mountRef
	probes []*probe
}

// populate replays the sweep's successful writes on m.
func (s *session) populate(ctx context.Context, m *mountRef) []*exchange {
	var xs []*exchange
	for _, st := range s.sweep(ctx).plan {
		if isWriteOp(st.op) {
			xs = append(xs, s.do(ctx, m, s.stepRequest(m, st), 0))
		}
	}
	return xs
}

// readTarget is a read or list the state checks repeat.
type readTarget struct {
	op   logical.Operation
	path string
}

// readTargets are the reads and lists of every declared path (at its
// sample path), of every path the fixture's setup writes, and of the kv
// profile's key when the plugin declares it.
func (s *session) readTargets() []readTarget {
	var out []readTarget
	seen := map[readTarget]bool{}
	add := func(op logical.Operation, path string) {
		rt := readTarget{op, path}
		if p := route(s.paths, path); p != nil && p.ops[op] && !seen[rt] {
			seen[rt] = true
			out = append(out, rt)
		}
	}
	for _, p := range s.paths {
		if p.sample != "" {
			add(logical.ReadOperation, p.sample)
			add(logical.ListOperation, p.sample)
		}
	}
	if f := s.opts.Fixture; f != nil {
		for _, st := range f.Setup {
			add(logical.ReadOperation, st.Path)
		}
	}
	if s.declares(ProfileKV) {
		add(logical.ReadOperation, kvPath(s.kvLayout().Read, kvStateKey))
		add(logical.ListOperation, kvPath(s.kvLayout().List, ""))
	}
	return out
}

// kvStateKey is the kv profile's key the state checks write.
const kvStateKey = "kv-state"

func (s *session) declares(p Profile) bool { return slices.Contains(s.info.Capabilities, string(p)) }

// readProbes returns the read targets that answer the same twice in a
// row on m.
func (s *session) readProbes(ctx context.Context, m *mountRef) []*probe {
	var out []*probe
	for _, rt := range s.readTargets() {
		a := s.do(ctx, m, s.request(m, rt.op, rt.path, nil), 0)
		b := s.do(ctx, m, s.request(m, rt.op, rt.path, nil), 0)
		if a.transport || a.timedOut || a.rendered() != b.rendered() {
			continue
		}
		out = append(out, &probe{op: rt.op, path: rt.path, want: a.rendered(), hasState: a.ok() && a.resp != nil && len(a.resp.Data) > 0})
	}
	return out
}

// persisted sets up the mount the state checks use: the fixture's setup
// run, a kv object written (for kv plugins), the sweep's writes replayed,
// and its deterministic reads recorded.
func (s *session) persisted(ctx context.Context) (*persistState, error) {
	s.persistOnce.Do(func() {
		if _, err := s.setupPrimary(ctx); err != nil {
			s.persistErr = err
			return
		}
		s.sweep(ctx)
		m, err := s.newMount(ctx, "state")
		if err != nil {
			s.persistErr = err
			return
		}
		// The fixture and kv writes go first: the sweep's writes may
		// reconfigure the mount (KV v2's config can demand check-and-set).
		if f := s.opts.Fixture; f != nil {
			for _, st := range f.Setup {
				s.do(ctx, m, s.request(m, st.Operation, st.Path, st.Data), 0)
			}
		}
		if s.declares(ProfileKV) {
			s.kvWrite(ctx, m, kvStateKey, map[string]any{"marker": m.marker})
		}
		s.populate(ctx, m)
		s.persistRes = &persistState{m: m, probes: s.readProbes(ctx, m)}
	})
	return s.persistRes, s.persistErr
}

func (t *T) needPersisted(ctx context.Context) *persistState {
	if t.needPrimary(ctx) == nil {
		return nil
	}
	ps, err := t.s.persisted(ctx)
	if err != nil {
		t.block("a second mount could not be set up: %v", err)
		return nil
	}
	return ps
}

// fixtureError is a fixture the profile checks cannot use.
type fixtureError struct {
	msg string
	x   *exchange
}

// fixtureMount sets up the mount the profile checks use and runs the
// fixture's setup steps on it.
func (s *session) fixtureMount(ctx context.Context) (*mountRef, *fixtureError) {
	s.fixtureOnce.Do(func() {
		m, err := s.newMount(ctx, "profile")
		if err != nil {
			s.fixtureErr = &fixtureError{msg: fmt.Sprintf("the profile mount could not be set up: %v", err)}
			return
		}
		if s.special == nil {
			s.special = m.m.SpecialPaths()
		}
		if f := s.opts.Fixture; f != nil {
			for i, st := range f.Setup {
				x := s.do(ctx, m, s.request(m, st.Operation, st.Path, st.Data), 0)
				if !x.ok() {
					s.fixtureErr = &fixtureError{msg: fmt.Sprintf("fixture setup step %d failed", i+1), x: x}
					return
				}
			}
		}
		s.fixtureM = m
	})
	return s.fixtureM, s.fixtureErr
}

// needFixture returns the profile mount, or fails the check with why not.
func (t *T) needFixture(ctx context.Context) *mountRef {
	m, ferr := t.s.fixtureMount(ctx)
	if ferr != nil {
		if ferr.x != nil {
			t.failX(ferr.x, "success", "%s", ferr.msg)
		} else {
			t.Failf("%s", ferr.msg)
		}
		return nil
	}
	return m
}
