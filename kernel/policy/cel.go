package policy

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"
)

const (
	// DefaultMaxConditionCost is the largest estimated cost Parse accepts
	// for a condition (see ParseOptions.MaxConditionCost).
	DefaultMaxConditionCost = 10_000
	// ConditionCostLimit is the actual cost at which an evaluation is
	// stopped; it then counts as an evaluation error (see doc.go: a grant
	// does not apply, a restriction does).
	ConditionCostLimit = 100_000
	// maxConditionLength bounds the source of a condition, in code points.
	maxConditionLength = 8192
	// conditionCacheSize bounds the compiled-program cache.
	conditionCacheSize = 4096

	// Size bounds the cost estimator assumes for the inputs: strings
	// (paths, header and metadata values, data strings) and collections
	// (data, headers, metadata, policies). They only shape the static
	// estimate; the runtime limit is ConditionCostLimit.
	estStringSize     = 1024
	estCollectionSize = 128
)

// The CEL variables. They are Go structs exposed with cel-go's native types
// so the checker knows every field and its type: request.path is a string
// (request.pth is a compile error, request.path + 1 a type error),
// token.ttl a duration, request.time a timestamp. Field names come from the
// cel tags; the CEL type names are ward.Request, ward.Token and ward.Mount.
type celRequest struct {
	Path       string              `cel:"path"`
	Operation  string              `cel:"operation"`
	Data       map[string]any      `cel:"data"`
	Headers    map[string][]string `cel:"headers"`
	RemoteAddr string              `cel:"remote_addr"`
	Time       time.Time           `cel:"time"`
}

type celToken struct {
	Policies     []string          `cel:"policies"`
	Meta         map[string]string `cel:"meta"`
	DisplayName  string            `cel:"display_name"`
	EntityID     string            `cel:"entity_id"`
	TTL          time.Duration     `cel:"ttl"`
	CreationTime time.Time         `cel:"creation_time"`
}

type celMount struct {
	Path     string `cel:"path"`
	Type     string `cel:"type"`
	Accessor string `cel:"accessor"`
}

var conditionEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		ext.NativeTypes(
			cel.NativeTypeFor[celRequest](cel.NativeTypeAlias("ward.Request"), ext.ParseStructTags(true)),
			cel.NativeTypeFor[celToken](cel.NativeTypeAlias("ward.Token"), ext.ParseStructTags(true)),
			cel.NativeTypeFor[celMount](cel.NativeTypeAlias("ward.Mount"), ext.ParseStructTags(true)),
		),
		cel.Variable("request", cel.ObjectType("ward.Request")),
		cel.Variable("token", cel.ObjectType("ward.Token")),
		cel.Variable("mount", cel.ObjectType("ward.Mount")),
		cel.Variable("now", cel.TimestampType),
		cel.Function("cidrContains",
			cel.Overload("cidrContains_string_string",
				[]*cel.Type{cel.StringType, cel.StringType}, cel.BoolType,
				cel.BinaryBinding(cidrContainsBinding))),
		ext.Strings(),
		cel.OptionalTypes(),
		cel.DefaultUTCTimeZone(true),
		cel.ParserExpressionSizeLimit(maxConditionLength),
	)
})

// cidrContains reports whether ip lies in cidr. Malformed input yields
// false, never an error. An IPv4-mapped IPv6 address matches IPv4 prefixes.
func cidrContains(cidr, ip string) bool {
	prefix, err := netip.ParsePrefix(strings.TrimSpace(cidr))
	if err != nil {
		return false
	}
	addr, err := netip.ParseAddr(strings.TrimSpace(ip))
	if err != nil {
		return false
	}
	if prefix.Addr().Is4() {
		addr = addr.Unmap()
	}
	return prefix.Contains(addr.WithZone(""))
}

func cidrContainsBinding(lhs, rhs ref.Val) ref.Val {
	c, ok1 := lhs.(types.String)
	i, ok2 := rhs.(types.String)
	if !ok1 || !ok2 {
		return types.False
	}
	return types.Bool(cidrContains(string(c), string(i)))
}

// condition is a compiled, checked condition. It is shared by every rule
// with the same expression.
type condition struct {
	expr string
	prog cel.Program
	cost uint64 // the estimated maximum cost
}

// conditionCache maps sha256(expression) to its compiled condition, so an
// expression used by many policies compiles once. It is bounded: when full,
// an arbitrary entry is dropped (the rules holding it keep their pointer).
var conditionCache struct {
	mu sync.Mutex // protects m
	m  map[[32]byte]*condition
}

// compileCondition parses, type-checks and cost-checks a condition, or
// returns it from the cache. Errors carry cel-go's message, with the
// line:column inside the expression.
func compileCondition(expr string, maxCost uint64) (*condition, error) {
	key := sha256.Sum256([]byte(expr))
	conditionCache.mu.Lock()
	c := conditionCache.m[key]
	conditionCache.mu.Unlock()
	if c != nil {
		if c.cost > maxCost {
			return nil, costError(c.cost, maxCost)
		}
		return c, nil
	}

	env, err := conditionEnv()
	if err != nil {
		return nil, fmt.Errorf("condition environment: %w", err)
	}
	ast, iss := env.CompileSource(common.NewStringSource(expr, "condition"))
	if iss.Err() != nil {
		return nil, errors.New(strings.TrimSpace(iss.Err().Error()))
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		return nil, fmt.Errorf("must evaluate to bool, not %s", cel.FormatCELType(ast.OutputType()))
	}
	est, err := env.EstimateCost(ast, sizeEstimator{})
	if err != nil {
		return nil, fmt.Errorf("estimating cost: %w", err)
	}
	if est.Max > maxCost {
		return nil, costError(est.Max, maxCost)
	}
	prog, err := env.Program(ast,
		cel.CostLimit(ConditionCostLimit),
		cel.InterruptCheckFrequency(100),
		cel.EvalOptions(cel.OptOptimize),
	)
	if err != nil {
		return nil, err
	}
	c = &condition{expr: expr, prog: prog, cost: est.Max}

	conditionCache.mu.Lock()
	if conditionCache.m == nil {
		conditionCache.m = make(map[[32]byte]*condition)
	}
	if len(conditionCache.m) >= conditionCacheSize {
		for k := range conditionCache.m {
			delete(conditionCache.m, k)
			break
		}
	}
	if prev := conditionCache.m[key]; prev != nil {
		c = prev // another goroutine compiled it first; share one
	} else {
		conditionCache.m[key] = c
	}
	conditionCache.mu.Unlock()
	return c, nil
}

func costError(est, limit uint64) error {
	return fmt.Errorf("estimated cost %d exceeds the limit of %d (simplify it, or avoid nested comprehensions over request data)", est, limit)
}

// sizeEstimator bounds the sizes of the input variables for the cost
// estimate; without it every string and collection from the request would
// count as unbounded and any string function would exceed the limit.
type sizeEstimator struct{}

func (sizeEstimator) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	path := n.Path()
	if len(path) == 0 {
		return nil
	}
	switch path[0] {
	case "request", "token", "mount":
	default:
		return nil
	}
	t := n.Type()
	if t == nil {
		return nil
	}
	switch t.Kind() {
	case types.StringKind, types.BytesKind:
		return &cost.SizeEstimate{Min: 0, Max: estStringSize}
	case types.ListKind, types.MapKind:
		return &cost.SizeEstimate{Min: 0, Max: estCollectionSize}
	case types.DynKind, types.AnyKind:
		// A request data value: a string, list or map, bounded by the
		// larger bound.
		return &cost.SizeEstimate{Min: 0, Max: max(estStringSize, estCollectionSize)}
	}
	return nil
}

func (sizeEstimator) EstimateCallCost(function, overloadID string, target *cost.AstNode, args []cost.AstNode) *cost.CallEstimate {
	return nil
}

// activation binds the CEL variables for one decision. It is built once per
// Authorize call, and only when a condition has to be evaluated.
type activation struct {
	request celRequest
	token   celToken
	mount   celMount
	now     time.Time
}

func newActivation(in *Input, now time.Time) *activation {
	a := &activation{
		request: celRequest{
			Path:       strings.TrimLeft(in.Path, "/"),
			Operation:  string(in.Operation),
			Data:       in.Data,
			Headers:    lowerHeaders(in.Headers),
			RemoteAddr: remoteIP(in.RemoteAddr),
			Time:       now,
		},
		token: celToken{
			Policies:     in.Token.Policies,
			Meta:         in.Token.Meta,
			DisplayName:  in.Token.DisplayName,
			EntityID:     in.Token.EntityID,
			TTL:          in.Token.TTL,
			CreationTime: in.Token.CreationTime.UTC(),
		},
		mount: celMount(in.Mount),
		now:   now,
	}
	return a
}

// ResolveName implements interpreter.Activation.
func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "request":
		return &a.request, true
	case "token":
		return &a.token, true
	case "mount":
		return &a.mount, true
	case "now":
		return a.now, true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (a *activation) Parent() interpreter.Activation { return nil }

// lowerHeaders lower-cases header names so conditions need not know Go's
// canonical form.
func lowerHeaders(h map[string][]string) map[string][]string {
	if len(h) == 0 {
		return h
	}
	out := make(map[string][]string, len(h))
	for k, v := range h {
		lk := strings.ToLower(k)
		out[lk] = append(out[lk], v...)
	}
	return out
}

// remoteIP strips a port (and IPv6 brackets) from the client address, so
// request.remote_addr is always a bare IP when the kernel passes
// "host:port".
func remoteIP(addr string) string {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return ap.Addr().String()
	}
	return addr
}

// eval runs the condition. Any error, interruption or non-bool result is
// reported as an error; the caller decides what that means (see doc.go:
// grants do not apply, restrictions do).
func (c *condition) eval(ctx context.Context, act *activation) (bool, error) {
	out, _, err := c.prog.ContextEval(ctx, act)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, errNonBool
	}
	return bool(b), nil
}

var errNonBool = errors.New("non-bool result")

// evalErrorClass reduces an evaluation error to a fixed description for
// audit: cel-go's messages may quote values from the request (a failed
// conversion shows the string it could not convert), and audit records of
// a decision must not carry request data.
func evalErrorClass(err error) string {
	if errors.Is(err, errNonBool) {
		return "non-bool result"
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return "evaluation interrupted"
	}
	msg := err.Error()
	for _, k := range []string{
		"no such key", "no such attribute", "no such overload", "division by zero",
		"modulus by zero", "cost limit exceeded", "overflow", "operation interrupted",
		"type conversion error", "index out of range", "invalid timezone",
	} {
		if strings.Contains(msg, k) {
			return k
		}
	}
	return "evaluation error"
}
