package framework

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/wardproject/ward/sdk/logical"
)

// OperationFunc handles one operation on a path.
type OperationFunc func(ctx context.Context, req *logical.Request, d *FieldData) (*logical.Response, error)

// ExistenceFunc reports whether the object a write targets exists, which
// decides between the create and update operations (and capabilities).
type ExistenceFunc func(ctx context.Context, req *logical.Request, d *FieldData) (bool, error)

// Path is one route of a backend.
type Path struct {
	// Pattern is a regular expression matched against the whole request
	// path (it is anchored for you). Named groups become fields.
	Pattern    string
	Fields     map[string]*FieldSchema
	Operations map[logical.Operation]OperationFunc
	// ExistenceCheck, when set, turns an update of a missing object into a
	// create (served by the create handler if there is one, else update).
	ExistenceCheck ExistenceFunc
	// TakesArbitraryInput says the handler reads fields outside the schema
	// from FieldData.Raw (KV data, for example). Otherwise unknown fields
	// are reported back to the client in a warning, as Vault does.
	TakesArbitraryInput bool

	HelpSynopsis    string
	HelpDescription string
}

// Backend is a logical.Backend built from paths.
type Backend struct {
	Help         string
	Paths        []*Path
	PathsSpecial *logical.Paths
	BackendType  logical.BackendType

	// AuthRenew serves the kernel's renewal of a token this auth method
	// issued (a RenewOperation carrying req.Auth, whatever the path). It
	// answers with the Auth to apply or refuses with an error. Without it,
	// tokens from this method cannot be renewed.
	AuthRenew func(ctx context.Context, req *logical.Request) (*logical.Response, error)

	// SecretRenew and SecretRevoke serve the lease manager's renewal and
	// revocation of a lease this engine created (a RenewOperation or
	// RevokeOperation carrying req.Secret, whatever the path; tell secret
	// kinds apart with Secret.InternalData). SecretRenew answers the Secret
	// to apply or refuses; without it leases cannot be renewed. SecretRevoke
	// must be idempotent: the kernel retries it until it succeeds; without
	// it revocation only forgets the lease.
	SecretRenew  func(ctx context.Context, req *logical.Request) (*logical.Response, error)
	SecretRevoke func(ctx context.Context, req *logical.Request) (*logical.Response, error)

	// PeriodicFunc runs on the host's periodic call (RollbackOperation,
	// about once a minute per mount): scheduled work such as rotations
	// and tidying, since a plugin keeps no timers of its own. It must
	// tolerate being skipped and repeated. req.Storage is the mount's.
	PeriodicFunc func(ctx context.Context, req *logical.Request) error

	InitializeFunc func(ctx context.Context) error
	Invalidate     func(ctx context.Context, key string)
	// InvalidateAllFunc drops everything the backend caches from storage
	// (logical.AllInvalidator). Optional: without it a WASM instance that
	// fell too far behind is replaced instead.
	InvalidateAllFunc func(ctx context.Context)
	Clean             func(ctx context.Context)

	once     sync.Once
	compiled []*regexp.Regexp
	initErr  error
}

var (
	_ logical.Backend          = (*Backend)(nil)
	_ logical.ExistenceChecker = (*Backend)(nil)
)

func (b *Backend) compile() error {
	b.once.Do(func() {
		b.compiled = make([]*regexp.Regexp, len(b.Paths))
		for i, p := range b.Paths {
			re, err := regexp.Compile("^" + strings.TrimSuffix(strings.TrimPrefix(p.Pattern, "^"), "$") + "$")
			if err != nil {
				b.initErr = fmt.Errorf("framework: path %q: %w", p.Pattern, err)
				return
			}
			b.compiled[i] = re
		}
	})
	return b.initErr
}

// route finds the path serving reqPath and the values of its named groups.
func (b *Backend) route(reqPath string) (*Path, map[string]string, error) {
	if err := b.compile(); err != nil {
		return nil, nil, err
	}
	for i, re := range b.compiled {
		m := re.FindStringSubmatch(reqPath)
		if m == nil {
			continue
		}
		// Every named group is recorded, empty ones too: captures come from
		// the routed path (what the ACL checked) and must override any
		// request field of the same name.
		captures := map[string]string{}
		for j, name := range re.SubexpNames() {
			if name != "" {
				captures[name] = m[j]
			}
		}
		return b.Paths[i], captures, nil
	}
	return nil, nil, nil
}

// HandleExistenceCheck implements logical.ExistenceChecker.
func (b *Backend) HandleExistenceCheck(ctx context.Context, req *logical.Request) (found, exists bool, err error) {
	p, captures, err := b.route(req.Path)
	if err != nil || p == nil || p.ExistenceCheck == nil {
		return false, false, err
	}
	fd, err := fieldData(p, req, captures)
	if err != nil {
		return false, false, err
	}
	exists, err = p.ExistenceCheck(ctx, req, fd)
	return true, exists, err
}

// fieldData merges request data and path captures (captures win) and
// validates them against the path's schema.
func fieldData(p *Path, req *logical.Request, captures map[string]string) (*FieldData, error) {
	raw := make(map[string]any, len(req.Data)+len(captures))
	for k, v := range req.Data {
		raw[k] = v
	}
	for k, v := range captures {
		raw[k] = v
	}
	fd := &FieldData{Raw: raw, Schema: p.Fields}
	if fd.Schema == nil {
		fd.Schema = map[string]*FieldSchema{}
	}
	return fd, fd.Validate()
}

// HandleRequest implements logical.Backend.
func (b *Backend) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	if req.Operation == logical.RollbackOperation {
		if b.PeriodicFunc == nil {
			return nil, nil
		}
		return nil, b.PeriodicFunc(ctx, req)
	}
	if req.Operation == logical.RenewOperation && req.Auth != nil {
		if b.AuthRenew == nil {
			return nil, logical.InvalidRequest("this auth method does not support token renewal")
		}
		return b.AuthRenew(ctx, req)
	}
	if req.Secret != nil {
		switch {
		case req.Operation == logical.RenewOperation && b.SecretRenew != nil:
			return b.SecretRenew(ctx, req)
		case req.Operation == logical.RenewOperation:
			return nil, logical.InvalidRequest("this secret engine does not support lease renewal")
		case req.Operation == logical.RevokeOperation && b.SecretRevoke != nil:
			return b.SecretRevoke(ctx, req)
		case req.Operation == logical.RevokeOperation:
			return nil, nil // nothing to undo outside the kernel
		}
	}
	p, captures, err := b.route(req.Path)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, logical.ErrUnsupportedPath
	}
	if req.Operation == logical.HelpOperation {
		return &logical.Response{Data: map[string]any{"help": p.help()}}, nil
	}

	// An operation the path does not serve is 405, before its fields are
	// validated (a missing required field must not hide it), as in Vault.
	if !p.serves(req.Operation) {
		return nil, logical.ErrUnsupportedOperation
	}

	fd, err := fieldData(p, req, captures)
	if err != nil {
		return nil, err
	}

	// The kernel decides create vs update before authorizing (see
	// HandleExistenceCheck) and sends the decided operation; an update that
	// arrives without that decision still gets the check here.
	op := req.Operation
	if op == logical.UpdateOperation && p.ExistenceCheck != nil {
		exists, err := p.ExistenceCheck(ctx, req, fd)
		if err != nil {
			return nil, err
		}
		op = logical.UpdateOperation
		if !exists {
			op = logical.CreateOperation
		}
	}
	var unknown []string
	if !p.TakesArbitraryInput {
		for k := range req.Data {
			if _, ok := fd.Schema[k]; !ok {
				unknown = append(unknown, k)
			}
		}
		sort.Strings(unknown)
	}
	h := p.Operations[op]
	if h == nil && op == logical.CreateOperation {
		h = p.Operations[logical.UpdateOperation]
	}
	if h == nil && op == logical.UpdateOperation && p.ExistenceCheck == nil {
		h = p.Operations[logical.CreateOperation]
	}
	if h == nil {
		return nil, logical.ErrUnsupportedOperation
	}
	resp, err := h(ctx, req, fd)
	if err == nil && len(unknown) > 0 && op != logical.ReadOperation && op != logical.ListOperation {
		if resp == nil {
			resp = &logical.Response{}
		}
		resp.AddWarning(fmt.Sprintf("Endpoint ignored these unrecognized parameters: %v", unknown))
	}
	return resp, err
}

// serves reports whether some handler can answer op (create and update
// stand in for each other, as in the dispatch below).
func (p *Path) serves(op logical.Operation) bool {
	if p.Operations[op] != nil {
		return true
	}
	switch op {
	case logical.CreateOperation, logical.UpdateOperation:
		return p.Operations[logical.CreateOperation] != nil || p.Operations[logical.UpdateOperation] != nil
	}
	return false
}

func (p *Path) help() string {
	var sb strings.Builder
	sb.WriteString(p.HelpSynopsis)
	if p.HelpDescription != "" {
		sb.WriteString("\n\n")
		sb.WriteString(p.HelpDescription)
	}
	if len(p.Fields) > 0 {
		sb.WriteString("\n\nFields:\n")
		names := make([]string, 0, len(p.Fields))
		for n := range p.Fields {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			f := p.Fields[n]
			fmt.Fprintf(&sb, "  %s (%s): %s\n", n, f.Type, f.Description)
		}
	}
	return sb.String()
}

// SpecialPaths implements logical.Backend.
func (b *Backend) SpecialPaths() *logical.Paths {
	if b.PathsSpecial == nil {
		return &logical.Paths{}
	}
	return b.PathsSpecial
}

// Type implements logical.Backend.
func (b *Backend) Type() logical.BackendType {
	if b.BackendType == "" {
		return logical.TypeSecret
	}
	return b.BackendType
}

// Initialize implements logical.Backend.
func (b *Backend) Initialize(ctx context.Context) error {
	if err := b.compile(); err != nil {
		return err
	}
	if b.InitializeFunc != nil {
		return b.InitializeFunc(ctx)
	}
	return nil
}

// InvalidateKey implements logical.Backend.
func (b *Backend) InvalidateKey(ctx context.Context, key string) {
	if b.Invalidate != nil {
		b.Invalidate(ctx, key)
	}
}

// InvalidateAll implements logical.AllInvalidator: false without an
// InvalidateAllFunc.
func (b *Backend) InvalidateAll(ctx context.Context) bool {
	if b.InvalidateAllFunc == nil {
		return false
	}
	b.InvalidateAllFunc(ctx)
	return true
}

// Cleanup implements logical.Backend.
func (b *Backend) Cleanup(ctx context.Context) {
	if b.Clean != nil {
		b.Clean(ctx)
	}
}

// Schema implements logical.Backend.
func (b *Backend) Schema() *logical.Schema {
	s := &logical.Schema{Help: b.Help}
	for _, p := range b.Paths {
		ps := logical.PathSchema{Pattern: p.Pattern, Synopsis: p.HelpSynopsis, Description: p.HelpDescription}
		for op := range p.Operations {
			ps.Operations = append(ps.Operations, op)
		}
		sort.Slice(ps.Operations, func(i, j int) bool { return ps.Operations[i] < ps.Operations[j] })
		for name, f := range p.Fields {
			ps.Fields = append(ps.Fields, logical.FieldInfo{
				Name: name, Type: f.Type.String(), Description: f.Description,
				Required: f.Required, Default: f.Default, AllowedValues: f.AllowedValues,
			})
		}
		sort.Slice(ps.Fields, func(i, j int) bool { return ps.Fields[i].Name < ps.Fields[j].Name })
		s.Paths = append(s.Paths, ps)
	}
	return s
}

// GenericNameRegex matches one path segment name, captured as field name.
func GenericNameRegex(name string) string {
	return fmt.Sprintf("(?P<%s>\\w(([\\w-.@]+)?\\w)?)", name)
}

// MatchAllRegex captures the rest of the path (possibly empty) as name.
func MatchAllRegex(name string) string {
	return fmt.Sprintf("(?P<%s>.*)", name)
}
