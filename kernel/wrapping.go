package kernel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"strconv"
	"time"

	"github.com/wardproject/ward/kernel/router"
	"github.com/wardproject/ward/kernel/token"
	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// Response wrapping, as in Vault: a request with a wrap TTL gets, instead
// of its response, a single-use token whose cubbyhole holds that response
// (the JSON the client would have received) until the token is used at
// sys/wrapping/unwrap or expires. The kernel does it after the handler, so
// leases and minted tokens exist as for any response; the wrapping token
// is an orphan with the fixed "response-wrapping" policy, one use, no
// renewal, and the wrap TTL as its TTL and explicit max TTL.

// ErrInvalidWrappingToken is returned (HTTP 400) by sys/wrapping/unwrap,
// lookup and rewrap for a token that is not a live wrapping token:
// unknown, used, expired or revoked, or not a wrapping token. Vault's
// message.
var ErrInvalidWrappingToken = &logical.Error{Code: logical.CodeInvalidRequest,
	Message: "wrapping token is not valid or does not exist"}

// MinWrapTTL is the shortest wrap TTL accepted (Vault's CLI minimum).
const MinWrapTTL = time.Second

// The sys/ paths of the wrapping endpoints, relative to the sys/ mount.
const (
	wrapPathWrap   = "wrapping/wrap"
	wrapPathUnwrap = "wrapping/unwrap"
	wrapPathLookup = "wrapping/lookup"
	wrapPathRewrap = "wrapping/rewrap"
)

// WrapInfo is the envelope's wrap_info: the wrapping token that holds a
// response. It never prints its token or accessors.
type WrapInfo struct {
	Token        string
	Accessor     string
	TTL          time.Duration
	CreationTime time.Time
	CreationPath string
	// WrappedAccessor is the accessor of the token the wrapped response
	// carries (a login, auth/token/create), or of an AppRole secret ID.
	WrappedAccessor string
}

// String returns a redacted description: no token, no accessor.
func (w WrapInfo) String() string {
	return fmt.Sprintf("kernel.WrapInfo{ttl=%s creation_path=%q}", w.TTL, w.CreationPath)
}

// Format implements fmt.Formatter so that every verb prints String.
func (w WrapInfo) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, w.String()) }

// LogValue implements slog.LogValuer with the redacted fields.
func (w WrapInfo) LogValue() slog.Value {
	return slog.GroupValue(slog.Duration("ttl", w.TTL), slog.String("creation_path", w.CreationPath))
}

// Envelope is Vault's success envelope: what the HTTP layer sends for a
// response, and what a wrapping token's cubbyhole stores.
type Envelope struct {
	RequestID     string         `json:"request_id"`
	LeaseID       string         `json:"lease_id"`
	Renewable     bool           `json:"renewable"`
	LeaseDuration int            `json:"lease_duration"`
	Data          map[string]any `json:"data"`
	WrapInfo      *EnvelopeWrap  `json:"wrap_info"`
	Warnings      []string       `json:"warnings"`
	Auth          map[string]any `json:"auth"`
}

// EnvelopeWrap is wrap_info as Vault encodes it.
type EnvelopeWrap struct {
	Token           string `json:"token"`
	Accessor        string `json:"accessor"`
	TTL             int    `json:"ttl"`
	CreationTime    string `json:"creation_time"`
	CreationPath    string `json:"creation_path"`
	WrappedAccessor string `json:"wrapped_accessor,omitempty"`
}

// Envelope renders a response for the client (RequestID set).
func (r *Response) Envelope(requestID string) Envelope {
	env := Envelope{RequestID: requestID, Auth: r.TokenAuth}
	if r.Response != nil {
		env.Data, env.Warnings = r.Data, r.Warnings
		if s := r.Secret; s != nil {
			env.LeaseID, env.Renewable, env.LeaseDuration = s.LeaseID, s.Renewable, int(s.TTL/time.Second)
		}
	}
	if w := r.WrapInfo; w != nil {
		env.Data, env.Auth = nil, nil
		env.WrapInfo = &EnvelopeWrap{Token: w.Token, Accessor: w.Accessor, TTL: int(w.TTL / time.Second),
			CreationTime: w.CreationTime.Format(time.RFC3339Nano), CreationPath: w.CreationPath,
			WrappedAccessor: w.WrappedAccessor}
	}
	return env
}

// isWrappingToken reports whether a token is a response-wrapping token:
// exactly the response-wrapping policy (Vault's test).
func isWrappingToken(te *token.Entry) bool {
	return te != nil && len(te.Policies) == 1 && te.Policies[0] == responseWrappingPolicyName
}

// wrapCall is what the kernel knows about wrapping during one request. The
// kernel's own handlers (sys/wrapping/*) read and adjust it through the
// context.
type wrapCall struct {
	// ttl is the wrap TTL: the request's, or what a handler asked for
	// (rewrap: the original creation TTL); 0 means no wrapping.
	ttl time.Duration
	// creationPath overrides the request path as creation_path (rewrap).
	creationPath string
	// raw, when set, is the stored response to wrap as it is (rewrap, or
	// an unwrap asked to be wrapped again) instead of the handler's.
	raw string
	// unwrapped is set by sys/wrapping/unwrap: the stored response, which
	// the client receives byte for byte.
	unwrapped string

	// token is the wrapping token a sys/wrapping/{unwrap,lookup,rewrap}
	// request names (body field "token", else X-Vault-Token), validated
	// before anything else runs; thirdParty when it came from the body
	// and is not the request's own token.
	token      *token.Entry
	thirdParty bool
	// spent is set when the kernel spent token as the request's own
	// token (first-party unwrap).
	spent bool
}

type wrapCallKey struct{}

func withWrapCall(ctx context.Context, w *wrapCall) context.Context {
	return context.WithValue(ctx, wrapCallKey{}, w)
}

func wrapCallFrom(ctx context.Context) *wrapCall {
	w, _ := ctx.Value(wrapCallKey{}).(*wrapCall)
	return w
}

// wrappingEndpoint reports whether a sys/ path names a wrapping token to
// validate first (Vault does it before the ACL and the token's use).
func wrappingEndpoint(route *router.Route, rel string) bool {
	if route == nil || route.Prefix != "sys/" {
		return false
	}
	switch rel {
	case wrapPathUnwrap, wrapPathLookup, wrapPathRewrap:
		return true
	}
	return false
}

// validateWrappingToken finds the wrapping token a request names: the
// body's "token", else the request's own token. It must be a live
// wrapping token.
func validateWrappingToken(ctx context.Context, u *unsealedState, r *Request, wc *wrapCall) error {
	tok := r.ClientToken
	if v, ok := r.Data["token"]; ok && v != nil {
		s, ok := v.(string)
		if !ok {
			return logical.InvalidRequest("could not decode token in request body")
		}
		if s == "" {
			return logical.InvalidRequest("empty token in request body")
		}
		tok = s
		wc.thirdParty = s != r.ClientToken
	}
	if tok == "" {
		return ErrInvalidWrappingToken
	}
	te, err := u.tokens.Lookup(ctx, tok)
	if err != nil {
		return err
	}
	if !isWrappingToken(te) {
		return ErrInvalidWrappingToken
	}
	wc.token = te
	return nil
}

// parseWrappedEnvelope decodes a stored response, numbers kept exact.
func parseWrappedEnvelope(raw string) (*Envelope, error) {
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.UseNumber()
	var env Envelope
	if err := dec.Decode(&env); err != nil {
		return nil, fmt.Errorf("decode the wrapped response: %w", err)
	}
	return &env, nil
}

// unwrappedResponse is the kernel result of an unwrap: the stored bytes
// for the client (Raw), decoded for the audit entry.
func unwrappedResponse(raw string) (*Response, error) {
	env, err := parseWrappedEnvelope(raw)
	if err != nil {
		return nil, err
	}
	resp := &logical.Response{Data: env.Data, Warnings: env.Warnings, StatusCode: 200}
	if env.LeaseID != "" {
		resp.Secret = &logical.Secret{LeaseID: env.LeaseID, Renewable: env.Renewable,
			TTL: time.Duration(env.LeaseDuration) * time.Second}
	}
	return &Response{Response: resp, TokenAuth: env.Auth, Raw: []byte(raw)}, nil
}

// wrappable reports whether a result has something to wrap: Vault wraps
// any non-error response; an empty one (204) stays as it is.
func wrappable(out *Response) bool {
	if out == nil || out.Response == nil || out.StatusCode >= 400 {
		return false
	}
	return out.Data != nil || out.TokenAuth != nil || out.Secret != nil || len(out.Warnings) > 0
}

// wrapResponse puts a result in a new wrapping token's cubbyhole and
// returns the response that replaces it: wrap_info and the warnings.
func (c *Core) wrapResponse(ctx context.Context, u *unsealedState, r *Request, caller *token.Entry, route *router.Route, out *Response, wc *wrapCall) (*Response, error) {
	raw := wc.raw
	if raw == "" {
		// A list with no keys is a 404, not a wrapped nothing (Vault).
		if r.Operation == logical.ListOperation {
			if keys, ok := out.Data["keys"]; ok && isEmptyList(keys) {
				return nil, nil
			}
		}
		env := out.Envelope(r.ID)
		b, err := json.Marshal(env)
		if err != nil {
			c.logger.Error("a response to wrap could not be encoded", "path", mountOnlyPath(r.Path), "error", err)
			c.abandonMinted(ctx, u, out)
			return nil, errWrapFailed
		}
		raw = string(b)
	}
	creationPath := r.Path
	if wc.creationPath != "" {
		creationPath = wc.creationPath
	}
	var display string
	if caller != nil {
		display = caller.DisplayName
	}
	te, err := u.tokens.Create(ctx, &token.Entry{
		Policies: []string{responseWrappingPolicyName}, DisplayName: display, Path: r.Path,
		TTL: wc.ttl, ExplicitMaxTTL: wc.ttl, NumUses: 1, Renewable: false,
	})
	if err != nil {
		c.logger.Error("creating a wrapping token failed", "path", mountOnlyPath(r.Path), "error", err)
		c.abandonMinted(ctx, u, out)
		return nil, errWrapFailed
	}
	if err := c.storeWrapped(ctx, te, raw, creationPath); err != nil {
		if rerr := u.tokens.Revoke(context.WithoutCancel(ctx), te); rerr != nil {
			c.logger.Error("revoking a wrapping token whose response could not be stored failed", "error", rerr)
		}
		c.logger.Error("storing a wrapped response failed", "path", mountOnlyPath(r.Path), "error", err)
		c.abandonMinted(ctx, u, out)
		return nil, errWrapFailed
	}
	wi := &WrapInfo{Token: te.ID, Accessor: te.Accessor, TTL: te.TTL, CreationTime: te.CreationTime,
		CreationPath: creationPath, WrappedAccessor: wrappedAccessor(route, out)}
	var warnings []string
	if out != nil && out.Response != nil {
		warnings = out.Warnings
	}
	return &Response{Response: &logical.Response{Warnings: warnings, StatusCode: 200}, WrapInfo: wi}, nil
}

// errWrapFailed is the client's answer (500) when a response could not
// be wrapped; the cause goes to the server log.
var errWrapFailed = errors.New("internal error: the response could not be wrapped")

// abandonMinted revokes the token a response minted when that response
// could not be wrapped: nobody will ever see it.
func (c *Core) abandonMinted(ctx context.Context, u *unsealedState, out *Response) {
	if out == nil {
		return
	}
	tok, _ := out.TokenAuth["client_token"].(string)
	if tok == "" {
		return
	}
	bg := context.WithoutCancel(ctx)
	te, err := u.tokens.Lookup(bg, tok)
	if err == nil && te != nil {
		err = u.tokens.Revoke(bg, te)
	}
	if err != nil {
		c.logger.Error("revoking a token whose wrapped response was lost failed", "error", err)
	}
}

// storeWrapped writes a wrapping token's cubbyhole in one atomic batch:
// the response and what sys/wrapping/lookup reports (Vault's keys and
// encodings: creation_ttl in nanoseconds).
func (c *Core) storeWrapped(ctx context.Context, te *token.Entry, raw, creationPath string) error {
	resp, err := json.Marshal(map[string]any{"response": raw})
	if err != nil {
		return err
	}
	info, err := json.Marshal(map[string]any{"creation_ttl": int64(te.TTL),
		"creation_time": te.CreationTime.Format(time.RFC3339Nano), "creation_path": creationPath})
	if err != nil {
		return err
	}
	return c.cubbyhole().of(te.HashedID).Batch(ctx, []logical.StorageOp{
		{Key: cubbyholeResponse, Value: resp}, {Key: cubbyholeWrapInfo, Value: info}})
}

// wrappedAccessor is the accessor Vault reports as wrapped_accessor: the
// minted token's, or an AppRole secret ID's.
func wrappedAccessor(route *router.Route, out *Response) string {
	if out == nil {
		return ""
	}
	if a, ok := out.TokenAuth["accessor"].(string); ok {
		return a
	}
	if route != nil && route.Type == "approle" && out.Response != nil {
		if a, ok := out.Data["secret_id_accessor"].(string); ok {
			return a
		}
	}
	return ""
}

func isEmptyList(v any) bool {
	switch k := v.(type) {
	case nil:
		return true
	case []string:
		return len(k) == 0
	case []any:
		return len(k) == 0
	}
	return false
}

// mountOnlyPath keeps the first segment of a path for logs: paths below a
// mount may name secrets.
func mountOnlyPath(p string) string {
	for i := 0; i < len(p); i++ {
		if p[i] == '/' {
			return p[:i+1]
		}
	}
	return p
}

// readWrapped reads a wrapping token's stored response and lookup data.
func (c *Core) readWrapped(ctx context.Context, te *token.Entry, key string) (map[string]any, error) {
	data, err := c.cubbyhole().get(ctx, te.HashedID, key)
	if err != nil {
		return nil, err
	}
	if data == nil {
		// Spent or revoked between the validation and now.
		return nil, ErrInvalidWrappingToken
	}
	return data, nil
}

// spendWrapping spends the use of a wrapping token named in the body
// (the caller's own token was spent by the request path). Exactly one of
// concurrent callers succeeds; the token is revoked when the request is
// done, whether or not the client is still there.
func (s *system) spendWrapping(ctx context.Context, wc *wrapCall) (done func(), err error) {
	if wc.spent {
		return func() {}, nil
	}
	// A wrapping token has exactly one use; whatever is left after this
	// one, it has been unwrapped and is revoked.
	te, _, err := s.u.tokens.SpendUse(ctx, wc.token)
	if err != nil {
		return nil, err
	}
	if te == nil {
		return nil, ErrInvalidWrappingToken
	}
	wc.spent = true
	return func() {
		if err := s.u.tokens.Revoke(context.WithoutCancel(ctx), te); err != nil {
			s.core.logger.Error("revoking a used wrapping token failed; it can no longer be used", "error", err)
		}
	}, nil
}

// wrappingPaths are sys/wrapping/*.
func (s *system) wrappingPaths() []*framework.Path {
	tokenField := map[string]*framework.FieldSchema{
		"token": {Type: framework.TypeString, Description: "The wrapping token; default: the request's token."},
	}
	return []*framework.Path{
		{
			Pattern:             wrapPathWrap,
			Operations:          map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: s.wrap},
			TakesArbitraryInput: true,
			HelpSynopsis:        "Wrap the request's data in a response-wrapping token (needs X-Vault-Wrap-TTL).",
		},
		{
			Pattern:      wrapPathUnwrap,
			Fields:       tokenField,
			Operations:   map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: s.unwrap},
			HelpSynopsis: "Return the response a wrapping token holds; the token is used up.",
		},
		{
			Pattern: wrapPathLookup,
			Fields:  tokenField,
			Operations: map[logical.Operation]framework.OperationFunc{
				logical.UpdateOperation: s.wrapLookup, logical.ReadOperation: s.wrapLookup,
			},
			HelpSynopsis: "Describe a wrapping token (creation TTL, time and path) without using it.",
		},
		{
			Pattern:      wrapPathRewrap,
			Fields:       tokenField,
			Operations:   map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: s.rewrap},
			HelpSynopsis: "Move a wrapped response to a new wrapping token; the old one is revoked.",
		},
	}
}

func (s *system) wrap(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	wc := wrapCallFrom(ctx)
	if wc == nil || wc.ttl == 0 {
		return nil, logical.InvalidRequest("endpoint requires response wrapping to be used")
	}
	data := maps.Clone(req.Data)
	if data == nil {
		data = map[string]any{}
	}
	return &logical.Response{Data: data}, nil
}

func (s *system) unwrap(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	wc := wrapCallFrom(ctx)
	if wc == nil || wc.token == nil {
		return nil, ErrInvalidWrappingToken
	}
	done, err := s.spendWrapping(ctx, wc)
	if err != nil {
		return nil, err
	}
	defer done()
	// Read after spending: of two unwraps racing, only the one that spent
	// the use gets here, and the cubbyhole is deleted only when the token
	// is revoked (done, or the request path for a first-party unwrap).
	data, err := s.core.readWrapped(context.WithoutCancel(ctx), wc.token, cubbyholeResponse)
	if err != nil {
		return nil, err
	}
	raw, ok := data["response"].(string)
	if !ok {
		return nil, fmt.Errorf("internal error: no response found inside the cubbyhole")
	}
	if wc.ttl > 0 {
		// Asked to wrap the unwrapped response: it moves to a new token.
		wc.raw = raw
		return &logical.Response{Data: map[string]any{}}, nil
	}
	wc.unwrapped = raw
	return &logical.Response{Data: map[string]any{}}, nil
}

func (s *system) wrapLookup(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	wc := wrapCallFrom(ctx)
	if wc == nil || wc.token == nil {
		return nil, ErrInvalidWrappingToken
	}
	info, err := s.core.readWrapped(ctx, wc.token, cubbyholeWrapInfo)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	if n, ok := info["creation_ttl"].(json.Number); ok {
		ns, err := n.Int64()
		if err != nil {
			return nil, fmt.Errorf("internal error: bad creation_ttl in the wrapping information")
		}
		out["creation_ttl"] = int64(time.Duration(ns) / time.Second)
	}
	for _, k := range []string{"creation_time", "creation_path"} {
		if v, ok := info[k]; ok {
			out[k] = v
		}
	}
	return &logical.Response{Data: out}, nil
}

func (s *system) rewrap(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	wc := wrapCallFrom(ctx)
	if wc == nil || wc.token == nil {
		return nil, ErrInvalidWrappingToken
	}
	done, err := s.spendWrapping(ctx, wc)
	if err != nil {
		return nil, err
	}
	defer done()
	bg := context.WithoutCancel(ctx)
	info, err := s.core.readWrapped(bg, wc.token, cubbyholeWrapInfo)
	if err != nil {
		return nil, err
	}
	data, err := s.core.readWrapped(bg, wc.token, cubbyholeResponse)
	if err != nil {
		return nil, err
	}
	raw, ok := data["response"].(string)
	n, nok := info["creation_ttl"].(json.Number)
	path, pok := info["creation_path"].(string)
	if !ok || !nok || !pok {
		return nil, fmt.Errorf("internal error: incomplete wrapping information")
	}
	ns, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil || ns <= 0 {
		return nil, fmt.Errorf("internal error: bad creation_ttl in the wrapping information")
	}
	// The new token gets the original TTL (or the request's, if shorter)
	// and creation path, and holds the same response.
	if ttl := time.Duration(ns); wc.ttl == 0 || ttl < wc.ttl {
		wc.ttl = ttl
	}
	wc.raw, wc.creationPath = raw, path
	return &logical.Response{Data: map[string]any{}}, nil
}
