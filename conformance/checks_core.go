package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

func checkHandshake(ctx context.Context, t *T) {
	s := t.s
	if s.infoErr != nil {
		t.Fail(Failure{Message: "the plugin did not complete the handshake and answer Info",
			Expected: "a Ward plugin speaking protocol v1 (go-plugin) or ABI v1 (WASM)", Actual: s.infoErr.Error()})
		return
	}
	info := s.info
	if strings.TrimSpace(info.Name) == "" {
		t.Failf("Info: the plugin gives no name")
	}
	switch info.Type {
	case logical.TypeSecret, logical.TypeAuth:
		if s.opts.Type != "" && info.Type != s.opts.Type {
			t.Fail(Failure{Message: "Info: the plugin is not of the expected type", Expected: string(s.opts.Type), Actual: string(info.Type)})
		}
	default:
		t.Fail(Failure{Message: "Info: unknown plugin type", Expected: `"secret" or "auth"`, Actual: strconv.Quote(string(info.Type))})
	}
	if major, err := semverMajor(info.SDKVersion); err != nil {
		t.Fail(Failure{Message: "Info: sdk_version is not a semantic version", Expected: "1.x.y", Actual: strconv.Quote(info.SDKVersion)})
	} else if major != SDKMajor {
		t.Fail(Failure{Message: fmt.Sprintf("Info: the plugin was built with SDK %s; conformance %s tests SDK v%d plugins", info.SDKVersion, Version, SDKMajor),
			Expected: fmt.Sprintf("%d.x.y", SDKMajor), Actual: info.SDKVersion})
	}
	if info.Protocol != 0 && info.Protocol != 1 {
		t.Fail(Failure{Message: "the handshake negotiated another protocol version", Expected: "1", Actual: strconv.Itoa(info.Protocol)})
	}
	if info.Version == "" {
		t.Notef("Info gives no plugin version")
	}
	seen := map[string]bool{}
	for _, c := range info.Capabilities {
		if seen[c] {
			t.Notef("capability %q is declared twice", c)
		}
		seen[c] = true
		switch Profile(c) {
		case ProfileKV, ProfileLeasing:
			if info.Type == logical.TypeAuth {
				t.Failf("capability %q is a secret-engine profile, but the plugin is an auth method", c)
			}
		case ProfileAuthLogin:
			if info.Type == logical.TypeSecret {
				t.Failf("capability %q is an auth-method profile, but the plugin is a secret engine", c)
			}
		case ProfileCore:
			t.Notef("capability %q is implied; it need not be declared", c)
		default:
			t.Notef("capability %q is not a profile of conformance %s; ignored", c, Version)
		}
	}
	// Setup, seen on the control plane, must agree with Info.
	_, cm, err := s.newControlMount(ctx, "handshake", newView())
	if err != nil {
		t.Fail(Failure{Message: "Setup of a mount failed", Expected: "the backend set up", Actual: err.Error()})
	} else {
		if cm.Type() != info.Type {
			t.Fail(Failure{Message: "Setup answered another backend type than Info", Expected: string(info.Type), Actual: strconv.Quote(string(cm.Type()))})
		}
		cm.Close(ctx)
	}
	if _, err := s.setupPrimary(ctx); err != nil {
		t.Fail(Failure{Message: "the kernel's plugin runner could not mount the plugin", Expected: "a mount set up", Actual: err.Error()})
	}
}

// semverMajor returns the major version of "1.2.3" (a leading v allowed).
func semverMajor(v string) (int, error) {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(parts) != 3 {
		return 0, fmt.Errorf("not MAJOR.MINOR.PATCH")
	}
	var major int
	for i, p := range parts {
		if i == 2 {
			p, _, _ = strings.Cut(p, "-")
			p, _, _ = strings.Cut(p, "+")
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("not MAJOR.MINOR.PATCH")
		}
		if i == 0 {
			major = n
		}
	}
	return major, nil
}

func checkUnknownMajor(ctx context.Context, t *T) {
	accepted, detail, err := t.s.target.OfferUnknownMajor(ctx)
	switch {
	case err != nil:
		t.Failf("could not offer protocol version %d: %v", unknownMajor, err)
	case accepted:
		t.Fail(Failure{Message: fmt.Sprintf("offered only protocol version %d, which SDK v%d does not define, the plugin accepted it", unknownMajor, SDKMajor),
			Expected: "the handshake refused (the plugin answers version 1, which the host does not offer)", Actual: detail})
	default:
		t.Notef("refused: %s", detail)
	}
}

var knownFieldTypes = map[string]bool{"string": true, "int": true, "bool": true, "duration": true, "map": true,
	"slice": true, "string-slice": true, "key-value-pairs": true}

func checkSchema(ctx context.Context, t *T) {
	if t.needPrimary(ctx) == nil {
		return
	}
	s := t.s
	if s.schema == nil || len(s.schema.Paths) == 0 {
		t.Failf("the schema declares no path")
		return
	}
	if strings.TrimSpace(s.schema.Help) == "" {
		t.Failf("the schema has no help text for the backend")
	}
	patterns := map[string]int{}
	for _, p := range s.paths {
		where := fmt.Sprintf("path %d (pattern %q)", p.idx+1, p.ps.Pattern)
		switch {
		case strings.TrimSpace(p.ps.Pattern) == "":
			t.Failf("%s: empty pattern", where)
		case p.re == nil:
			_, err := regexp.Compile(anchored(p.ps.Pattern))
			t.Failf("%s: the pattern does not compile as a Go regular expression: %v", where, err)
		}
		if prev, dup := patterns[p.ps.Pattern]; dup {
			t.Failf("%s: the same pattern as path %d", where, prev+1)
		}
		patterns[p.ps.Pattern] = p.idx
		if len(p.ps.Operations) == 0 {
			t.Failf("%s: declares no operation", where)
		}
		ops := map[logical.Operation]bool{}
		for _, op := range p.ps.Operations {
			if !knownOps[op] {
				t.Failf("%s: unknown operation %q (declarable: create, update, patch, read, list, delete)", where, op)
			}
			if ops[op] {
				t.Failf("%s: operation %q declared twice", where, op)
			}
			ops[op] = true
		}
		if strings.TrimSpace(p.ps.Synopsis) == "" {
			t.Failf("%s: no synopsis (help text)", where)
		}
		names := map[string]bool{}
		for _, f := range p.fields {
			switch {
			case strings.TrimSpace(f.Name) == "":
				t.Failf("%s: a field has no name", where)
			case names[f.Name]:
				t.Failf("%s: field %q declared twice", where, f.Name)
			}
			names[f.Name] = true
			if !knownFieldTypes[f.Type] {
				t.Failf("%s: field %q has type %q, which is not a field type of SDK v1", where, f.Name, f.Type)
			}
		}
		if p.re != nil && p.sample == "" {
			t.Notef("%s: the suite found no path that reaches it (an earlier pattern takes the paths it tried)", where)
		}
	}
	if sp := s.special; sp != nil {
		for _, list := range [][]string{sp.Root, sp.Unauthenticated} {
			for _, g := range list {
				switch {
				case strings.TrimSpace(g) == "":
					t.Failf("special paths: an empty entry")
				case strings.HasPrefix(g, "/"):
					t.Failf("special path %q begins with / (special paths are relative to the mount)", g)
				case strings.Contains(strings.TrimSuffix(g, "*"), "*"):
					t.Failf("special path %q: * may only end a special path", g)
				}
			}
		}
	}
}

func checkHelp(ctx context.Context, t *T) {
	m := t.needPrimary(ctx)
	if m == nil {
		return
	}
	for _, p := range t.s.paths {
		if p.sample == "" {
			continue
		}
		x := t.s.do(ctx, m, t.s.request(m, logical.HelpOperation, p.sample, nil), 0)
		const want = `a response whose data holds "help", a non-empty string`
		switch {
		case !x.ok():
			t.failX(x, want, "the help operation failed for %s", p)
		case x.resp == nil:
			t.failX(x, want, "the help operation answered nothing for %s", p)
		default:
			if h, _ := x.resp.Data["help"].(string); strings.TrimSpace(h) == "" {
				t.failX(x, want, "the help operation gave no help text for %s", p)
			}
		}
	}
}

func checkOpenAPI(ctx context.Context, t *T) {
	m := t.needPrimary(ctx)
	if m == nil {
		return
	}
	doc, problems := buildOpenAPI(t.s.info, t.s.schema, m.path)
	for _, p := range problems {
		t.Failf("%s", p)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Failf("the OpenAPI document is not JSON: %v", err)
		return
	}
	for _, v := range ValidateOpenAPI(b) {
		t.Failf("invalid OpenAPI document: %s", v)
	}
	paths, _ := doc["paths"].(map[string]any)
	t.Notef("%d OpenAPI paths", len(paths))
}

func checkOperations(ctx context.Context, t *T) {
	if t.needPrimary(ctx) == nil {
		return
	}
	sw := t.s.sweep(ctx)
	n := 0
	for _, x := range sw.xs {
		probs := t.s.problems(x)
		if x.internal() {
			probs = append(probs, "an internal error (500) in answer to a request that conforms to the path's schema")
		}
		if len(probs) > 0 {
			t.failX(x, "a well-formed response, or an error with a 400-class code", "%s", strings.Join(probs, "; "))
		}
		if !x.existence {
			n++
		}
	}
	for _, p := range t.s.paths {
		if p.sample == "" && p.re != nil {
			t.Notef("%s was not exercised: no path reaches it", p)
		}
	}
	t.Notef("%d requests, %d writes succeeded", n, countWrites(sw.plan))
}

func countWrites(plan []planStep) int {
	n := 0
	for _, st := range plan {
		if isWriteOp(st.op) {
			n++
		}
	}
	return n
}

// unknownPathCandidates are tried in order; the first no pattern matches is probed.
var unknownPathCandidates = []string{"conformance-no-such-path/x1", "zz-conformance-unknown", "_conformance_/unknown/x", "conformance/unknown/deeply/nested/x"}

func checkUnknownPath(ctx context.Context, t *T) {
	m := t.needPrimary(ctx)
	if m == nil {
		return
	}
	path := ""
	for _, c := range unknownPathCandidates {
		if route(t.s.paths, c) == nil {
			path = c
			break
		}
	}
	if path == "" {
		t.Notef("every probe path matches a declared pattern (a catch-all pattern): there is no unknown path to send")
		return
	}
	for _, op := range []logical.Operation{logical.ReadOperation, logical.UpdateOperation, logical.ListOperation, logical.DeleteOperation} {
		var data map[string]any
		if op == logical.UpdateOperation {
			data = map[string]any{markerField: m.marker}
		}
		x := t.s.do(ctx, m, t.s.request(m, op, path, data), 0)
		if c, ok := x.code(); !ok || c != logical.CodeNotFound {
			t.failX(x, "error "+codeName(logical.CodeNotFound), "%s on a path no pattern matches did not answer not found", op)
		}
	}
}

// unsupportedOp picks an operation a path does not serve, allowing for
// sdk/framework's fallbacks (create is served by update and the reverse).
func unsupportedOp(p *pathInfo) (logical.Operation, bool) {
	for _, op := range []logical.Operation{logical.ReadOperation, logical.ListOperation, logical.DeleteOperation,
		logical.PatchOperation, logical.UpdateOperation, logical.CreateOperation} {
		switch {
		case p.ops[op]:
		case op == logical.CreateOperation && p.ops[logical.UpdateOperation]:
		case op == logical.UpdateOperation && p.ops[logical.CreateOperation]:
		default:
			return op, true
		}
	}
	return "", false
}

func checkUnsupportedOperation(ctx context.Context, t *T) {
	m := t.needPrimary(ctx)
	if m == nil {
		return
	}
	for _, p := range t.s.paths {
		if p.sample == "" {
			continue
		}
		op, ok := unsupportedOp(p)
		if !ok {
			continue
		}
		var data map[string]any
		if isWriteOp(op) {
			data = p.writeData(variantBare, m.marker)
		}
		x := t.s.do(ctx, m, t.s.request(m, op, p.sample, data), 0)
		if c, ok := x.code(); !ok || c != logical.CodeUnsupportedOperation {
			t.failX(x, "error "+codeName(logical.CodeUnsupportedOperation), "%s does not declare %s, and the plugin did not answer unsupported operation", p, op)
		}
	}
}

// badSegments replace a named group's value in the path probes.
var badSegments = []string{"..", "a/../b", "a//b", "%2e%2e", " ", "\x00", strings.Repeat("x", 5000)}

func checkMalformedInput(ctx context.Context, t *T) {
	m := t.needPrimary(ctx)
	if m == nil {
		return
	}
	s := t.s
	g0 := s.target.Generation()
	n := 0
	for _, p := range s.paths {
		if p.sample == "" {
			continue
		}
		ops := slices.Sorted(maps.Keys(p.ops))
		for _, op := range ops {
			base := map[string]any{}
			if isWriteOp(op) {
				base = p.writeData(variantBare, m.marker)
			}
			for _, f := range p.fields {
				wrong, ok := wrongValue(f.Type)
				if !ok || p.captures[f.Name] {
					continue
				}
				data := maps.Clone(base)
				data[f.Name] = wrong
				x := s.do(ctx, m, s.request(m, op, p.sample, data), 0)
				n++
				if !x.clientError() {
					t.failX(x, "an error with a 400-class code (invalid request)", "%s: field %q (%s) given %s was not refused as invalid input",
						p, f.Name, f.Type, compactJSON(wrong))
				}
			}
		}
		// Odd values in the path's named groups: any answer but a crash or an internal error.
		if len(p.captures) == 0 || !strings.Contains(p.sample, captureValue) || len(ops) == 0 {
			continue
		}
		op := ops[0]
		if p.ops[logical.ReadOperation] {
			op = logical.ReadOperation
		}
		for _, seg := range badSegments {
			var data map[string]any
			if isWriteOp(op) {
				data = p.writeData(variantBare, m.marker)
			}
			x := s.do(ctx, m, s.request(m, op, strings.ReplaceAll(p.sample, captureValue, seg), data), 0)
			n++
			probs := s.problems(x)
			if x.internal() {
				probs = append(probs, "an internal error (500)")
			}
			if len(probs) > 0 {
				t.failX(x, "a response, or an error with a 400-class code", "%s with an odd path segment: %s", p, strings.Join(probs, "; "))
			}
		}
	}
	if g1 := s.target.Generation(); g1 != g0 {
		t.Failf("the plugin restarted during this check (%s, then %s): a malformed request crashed it", g0, g1)
	}
	t.Notef("%d malformed requests", n)
}

func checkRestart(ctx context.Context, t *T) {
	ps := t.needPersisted(ctx)
	if ps == nil {
		return
	}
	s := t.s
	g0 := s.target.Generation()
	if err := s.target.Restart(ctx); err != nil {
		t.Fail(Failure{Message: "the plugin did not start again with its mounts", Expected: "a restart", Actual: err.Error()})
		return
	}
	if g1 := s.target.Generation(); g1 == g0 && g0 != "" {
		t.Notef("the transport reports the same generation after the restart (%s)", g0)
	}
	stateful := 0
	for _, pr := range ps.probes {
		if pr.hasState {
			stateful++
		}
		x := s.do(ctx, ps.m, s.request(ps.m, pr.op, pr.path, nil), 0)
		if got := x.rendered(); got != pr.want {
			t.failX(x, "the answer before the restart: "+truncate(pr.want, 2000),
				"after a restart the plugin answers differently: state it kept outside host storage was lost")
		}
	}
	if stateful == 0 {
		t.Notef("no read answered data: there was no state to compare")
	}
	t.Notef("%d reads compared, %d answering data", len(ps.probes), stateful)
}

func checkIsolation(ctx context.Context, t *T) {
	ps := t.needPersisted(ctx)
	if ps == nil {
		return
	}
	s := t.s
	a := ps.m
	before := a.v.snapshot()
	b, err := s.newMount(ctx, "isolated")
	if err != nil {
		t.block("a further mount could not be set up: %v", err)
		return
	}
	// b was set up after a holds state: it must see none of it.
	for _, pr := range ps.probes {
		x := s.do(ctx, b, s.request(b, pr.op, pr.path, nil), 0)
		if strings.Contains(x.rendered(), a.marker) {
			t.failX(x, "an answer without data written through mount "+a.path,
				"mount %s answers with data written through mount %s", b.path, a.path)
		}
	}
	s.populate(ctx, b)
	if after := a.v.snapshot(); !sameSnapshot(before, after) {
		t.Failf("requests to mount %s changed the storage of mount %s (keys %s)", b.path, a.path, strings.Join(changedKeys(before, after), ", "))
	}
	for k, v := range b.v.snapshot() {
		if strings.Contains(v, a.marker) {
			t.Failf("mount %s's storage holds data written through mount %s (key %q)", b.path, a.path, k)
		}
	}
	for _, pr := range ps.probes {
		x := s.do(ctx, a, s.request(a, pr.op, pr.path, nil), 0)
		if strings.Contains(x.rendered(), b.marker) {
			t.failX(x, "an answer without data written through mount "+b.path,
				"mount %s answers with data written through mount %s", a.path, b.path)
		}
	}
}

func changedKeys(a, b map[string]string) []string {
	var out []string
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			out = append(out, strconv.Quote(k))
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, strconv.Quote(k))
		}
	}
	slices.Sort(out)
	if len(out) > 10 {
		out = append(out[:10], fmt.Sprintf("and %d more", len(out)-10))
	}
	return out
}

// oddKeys are invalidated besides the keys a mount holds.
var oddKeys = []string{"", "conformance/no-such-key", "a/b/c/", "../outside", strings.Repeat("k", 4096)}

func checkInvalidate(ctx context.Context, t *T) {
	ps := t.needPersisted(ctx)
	if ps == nil {
		return
	}
	s := t.s
	ref, cm, err := s.newControlMount(ctx, "replica", ps.m.v.clone())
	if err != nil {
		t.Fail(Failure{Message: "a replica of the mount could not be set up on the control plane", Expected: "a mount set up", Actual: err.Error()})
		return
	}
	defer cm.Close(ctx)
	probes := s.readProbes(ctx, ref)
	keys := append(ps.m.v.keys(), oddKeys...)
	for round := 1; round <= 2; round++ {
		for _, k := range keys {
			if err := cm.InvalidateKey(ctx, k); err != nil {
				t.Fail(Failure{Message: fmt.Sprintf("InvalidateKey(%q), round %d, failed", truncate(k, 64), round), Expected: "success", Actual: err.Error()})
			}
		}
	}
	for _, pr := range probes {
		x := s.do(ctx, ref, s.request(ref, pr.op, pr.path, nil), 0)
		if got := x.rendered(); got != pr.want {
			t.failX(x, "the answer before the invalidations: "+truncate(pr.want, 2000), "after invalidating every key twice the mount answers differently")
		}
	}
	t.Notef("%d keys invalidated twice, %d reads compared", len(keys), len(probes))
}

func checkCleanup(ctx context.Context, t *T) {
	ps := t.needPersisted(ctx)
	if ps == nil {
		return
	}
	s := t.s
	v := ps.m.v.clone() // the replicas' own copy of the state: a cleanup must not reach other checks
	r1, c1, err := s.newControlMount(ctx, "replica-a", v)
	if err != nil {
		t.Fail(Failure{Message: "a replica of the mount could not be set up on the control plane", Expected: "a mount set up", Actual: err.Error()})
		return
	}
	defer c1.Close(ctx)
	r2, c2, err := s.newControlMount(ctx, "replica-b", v)
	if err != nil {
		t.Fail(Failure{Message: "a second replica could not be set up on the control plane", Expected: "a mount set up", Actual: err.Error()})
		return
	}
	defer c2.Close(ctx)
	p1, p2 := s.readProbes(ctx, r1), s.readProbes(ctx, r2)
	for i := 1; i <= 2; i++ {
		if err := c2.Cleanup(ctx); err != nil {
			t.Fail(Failure{Message: fmt.Sprintf("Cleanup of mount %s, call %d, failed", r2.path, i), Expected: "success", Actual: err.Error()})
		}
	}
	for _, pr := range p1 {
		x := s.do(ctx, r1, s.request(r1, pr.op, pr.path, nil), 0)
		if got := x.rendered(); got != pr.want {
			t.failX(x, "the answer before: "+truncate(pr.want, 2000), "after mount %s was cleaned up, mount %s answers differently", r2.path, r1.path)
		}
	}
	if err := c2.Setup(ctx); err != nil {
		t.Fail(Failure{Message: fmt.Sprintf("after its cleanup, mount %s could not be set up again", r2.path), Expected: "a mount set up", Actual: err.Error()})
		return
	}
	for _, pr := range p2 {
		x := s.do(ctx, r2, s.request(r2, pr.op, pr.path, nil), 0)
		if got := x.rendered(); got != pr.want {
			t.failX(x, "the answer before the cleanup: "+truncate(pr.want, 2000), "set up again after a cleanup, the mount answers differently")
		}
	}
}

func checkConcurrency(ctx context.Context, t *T) {
	ps := t.needPersisted(ctx)
	if ps == nil {
		return
	}
	s := t.s
	sw := s.sweep(ctx)
	m := ps.m
	type job struct {
		req *logical.Request
		key string
	}
	var base []job
	for _, st := range sw.plan {
		base = append(base, job{s.stepRequest(m, st), stepKey(st.p, st.op)})
	}
	if len(base) == 0 {
		t.Notef("no request succeeded in core.operations: nothing to send concurrently")
		return
	}
	n := s.opts.Concurrency
	var jobs []job
	for len(jobs) < n && len(jobs) < 256 {
		for _, j := range base {
			r := *j.req
			r.ID = fmt.Sprintf("%s-c%d", j.req.ID, len(jobs))
			jobs = append(jobs, job{&r, j.key})
		}
	}
	g0 := s.target.Generation()
	xs := make([]*exchange, len(jobs))
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			xs[i] = s.do(ctx, m, j.req, 0)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	reported := map[string]bool{}
	for i, x := range xs {
		if sw.serialBad[jobs[i].key] {
			continue // malformed alone too: core.operations reports it
		}
		probs := s.problems(x)
		if x.internal() && !sw.serialInternal[jobs[i].key] {
			probs = append(probs, "an internal error (500), which the same request sent alone does not answer")
		}
		if len(probs) == 0 {
			continue
		}
		msg := strings.Join(probs, "; ")
		if reported[jobs[i].key+msg] {
			continue
		}
		reported[jobs[i].key+msg] = true
		t.failX(x, "a well-formed answer, as when the request is sent alone", "under %d concurrent requests: %s", n, msg)
	}
	if g1 := s.target.Generation(); g1 != g0 {
		t.Failf("the plugin restarted during the concurrent requests (%s, then %s): it crashed", g0, g1)
	}
	t.Notef("%d requests, %d in flight, in %s", len(jobs), n, elapsed.Round(time.Millisecond))
}

// The deadline check. Each probe runs alone on a mount of its own, a copy
// of the state mount, whose storage holds every call for deadlineStall;
// the request's deadline is deadlineBudget. A plugin that honours the
// deadline gives up when it passes: it starts no storage call once its
// held call is released (it stopped waiting for it at the deadline), and
// does not start its first call long after the deadline.
const (
	deadlineBudget = 100 * time.Millisecond
	deadlineStall  = 300 * time.Millisecond
	// deadlineFirstCall bounds when a request's first storage call may
	// start, counted from when the request was sent: a plugin that works
	// that long before touching storage ignored the deadline. It is
	// generous because sdk/plugin sends a storage call even when its
	// context has ended, so a request delivered late on a loaded machine
	// still makes its first call.
	deadlineFirstCall = time.Second
	// deadlineWindow is how long the check watches storage after sending.
	deadlineWindow = 1300 * time.Millisecond
	// deadlineSlack: a call starting this close to the release of the held
	// call, or later, waited for it (a plugin that gave up at the deadline
	// is done some 200ms before).
	deadlineSlack  = 20 * time.Millisecond
	maxDeadlineRun = 4
)

func checkDeadline(ctx context.Context, t *T) {
	ps := t.needPersisted(ctx)
	if ps == nil {
		return
	}
	s := t.s
	sw := s.sweep(ctx)
	// Requests that did storage work when sent alone, writes first.
	var steps []planStep
	seen := map[string]bool{}
	for _, writes := range []bool{true, false} {
		for _, st := range sw.plan {
			if st.calls == 0 || isWriteOp(st.op) != writes || seen[stepKey(st.p, st.op)] || len(steps) == maxDeadlineRun {
				continue
			}
			seen[stepKey(st.p, st.op)] = true
			steps = append(steps, st)
		}
	}
	if len(steps) == 0 {
		t.Notef("no request made a storage call: there was no work to interrupt")
		return
	}
	mounts := make([]*mountRef, len(steps))
	errs := make([]error, len(steps))
	var setup sync.WaitGroup
	for i := range steps {
		setup.Add(1)
		go func() {
			defer setup.Done()
			mounts[i], errs[i] = s.newMountOn(ctx, "deadline", ps.m.v.clone())
		}()
	}
	setup.Wait()
	for i, err := range errs {
		if err != nil {
			t.block("a mount for the deadline probes could not be set up: %v", err)
			return
		}
		mounts[i].v.setStall(deadlineStall)
	}
	start := time.Now()
	xs := make([]*exchange, len(steps))
	var wg sync.WaitGroup
	for i, st := range steps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			xs[i] = s.do(ctx, mounts[i], s.stepRequest(mounts[i], st), deadlineBudget)
		}()
	}
	wg.Wait()
	time.Sleep(time.Until(start.Add(deadlineWindow)))
	for i, x := range xs {
		m := mounts[i]
		m.v.setStall(0)
		if x.dur > deadlineBudget+2*time.Second {
			t.failX(x, "an answer by the deadline", "the request was answered %s after it was sent, past its deadline of %s", x.dur.Round(time.Millisecond), deadlineBudget)
		}
		calls := m.v.callsAfter(start)
		if len(calls) == 0 {
			continue
		}
		var late []string
		at := func(c storageCall) string {
			return fmt.Sprintf("%s %q began at +%s", c.op, truncate(c.key, 64), c.at.Sub(start).Round(time.Millisecond))
		}
		if first := calls[0]; first.at.Sub(start) > deadlineFirstCall {
			late = append(late, at(first)+fmt.Sprintf(", its first storage call, more than %s after the request was sent", deadlineFirstCall))
		}
		release := calls[0].at.Add(deadlineStall - deadlineSlack)
		for _, c := range calls[1:] {
			if c.at.After(release) {
				late = append(late, at(c)+fmt.Sprintf(", after the plugin waited out a storage call held past the deadline (released at +%s)",
					calls[0].at.Add(deadlineStall).Sub(start).Round(time.Millisecond)))
			}
		}
		if len(late) > 0 {
			t.failX(x, fmt.Sprintf("the plugin gives the request up at its deadline (%s): no storage call after it", deadlineBudget),
				"the plugin kept working on a request past its deadline (storage held each call %s):\n%s", deadlineStall, strings.Join(late, "\n"))
		}
	}
	t.Notef("%d requests sent with a deadline of %s", len(steps), deadlineBudget)
}
