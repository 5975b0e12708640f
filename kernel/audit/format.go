package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash"
	"math"
	"net"
	"strconv"
	"sync"
	"time"
)

// hmacPrefix identifies a redacted value, as in Vault ("hmac-sha256:<hex>").
const hmacPrefix = "hmac-sha256:"

// The wire types below are Vault's audit entry (OpenBao audit/format.go)
// with Ward's additions (policy_conditions, response.status_code, and seq
// and prev, which the chain appends).

type wireAuth struct {
	ClientToken      string            `json:"client_token,omitempty"`
	Accessor         string            `json:"accessor,omitempty"`
	DisplayName      string            `json:"display_name,omitempty"`
	Policies         []string          `json:"policies,omitempty"`
	TokenPolicies    []string          `json:"token_policies,omitempty"`
	IdentityPolicies []string          `json:"identity_policies,omitempty"`
	Metadata         map[string]string `json:"metadata,omitempty"`
	NumUses          int               `json:"num_uses,omitempty"`
	EntityID         string            `json:"entity_id,omitempty"`
	TokenType        string            `json:"token_type,omitempty"`
	TokenTTL         int64             `json:"token_ttl,omitempty"`
	TokenIssueTime   string            `json:"token_issue_time,omitempty"`
}

type wireNamespace struct {
	ID string `json:"id"`
}

type wireRequest struct {
	ID                  string              `json:"id,omitempty"`
	Operation           string              `json:"operation,omitempty"`
	MountPoint          string              `json:"mount_point,omitempty"`
	MountType           string              `json:"mount_type,omitempty"`
	MountAccessor       string              `json:"mount_accessor,omitempty"`
	ClientToken         string              `json:"client_token,omitempty"`
	ClientTokenAccessor string              `json:"client_token_accessor,omitempty"`
	Namespace           *wireNamespace      `json:"namespace,omitempty"`
	Path                string              `json:"path,omitempty"`
	Data                map[string]any      `json:"data,omitempty"`
	RemoteAddr          string              `json:"remote_address,omitempty"`
	RemotePort          int                 `json:"remote_port,omitempty"`
	WrapTTL             int                 `json:"wrap_ttl,omitempty"`
	Headers             map[string][]string `json:"headers,omitempty"`
}

type wireSecret struct {
	LeaseID string `json:"lease_id,omitempty"`
}

type wireResponse struct {
	Auth          *wireAuth      `json:"auth,omitempty"`
	MountPoint    string         `json:"mount_point,omitempty"`
	MountType     string         `json:"mount_type,omitempty"`
	MountAccessor string         `json:"mount_accessor,omitempty"`
	Secret        *wireSecret    `json:"secret,omitempty"`
	Data          map[string]any `json:"data,omitempty"`
	Warnings      []string       `json:"warnings,omitempty"`
	Redirect      string         `json:"redirect,omitempty"`
	StatusCode    int            `json:"status_code,omitempty"`
}

type wireCondition struct {
	Policy     string `json:"policy"`
	Path       string `json:"path"`
	Expression string `json:"expression"`
	Result     bool   `json:"result"`
	Error      string `json:"error,omitempty"`
}

type wireEntry struct {
	Time             string          `json:"time"`
	Type             string          `json:"type"`
	Auth             *wireAuth       `json:"auth"`
	Request          *wireRequest    `json:"request"`
	Response         *wireResponse   `json:"response,omitempty"`
	Error            string          `json:"error,omitempty"`
	PolicyConditions []wireCondition `json:"policy_conditions,omitempty"`
}

// formatter turns Events into entry bodies (JSON objects without seq and
// prev) with one device's redaction settings. It is safe for concurrent use.
type formatter struct {
	key          []byte
	raw          bool
	rawAccessors bool
	pool         sync.Pool // of hash.Hash (HMAC-SHA256 under key)
}

func newFormatter(key []byte, raw, rawAccessors bool) *formatter {
	f := &formatter{key: bytes.Clone(key), raw: raw, rawAccessors: rawAccessors}
	f.pool.New = func() any { return hmac.New(sha256.New, f.key) }
	return f
}

// hmac returns "hmac-sha256:<hex>" of s under the device key.
func (f *formatter) hmac(s string) string {
	h := f.pool.Get().(hash.Hash)
	h.Reset()
	h.Write([]byte(s))
	var sum [sha256.Size]byte
	out := make([]byte, len(hmacPrefix)+2*sha256.Size)
	copy(out, hmacPrefix)
	hex.Encode(out[len(hmacPrefix):], h.Sum(sum[:0]))
	f.pool.Put(h)
	return string(out)
}

// secret redacts a value that is always secret (tokens).
func (f *formatter) secret(s string) string {
	if f.raw || s == "" {
		return s
	}
	return f.hmac(s)
}

func (f *formatter) accessor(s string) string {
	if f.rawAccessors {
		return s
	}
	return f.secret(s)
}

// format returns the entry body for ev: a JSON object, without seq and prev.
func (f *formatter) format(ev *Event) ([]byte, error) {
	e := wireEntry{Time: ev.Time.UTC().Format(time.RFC3339Nano)}
	req := ev.Request
	if ev.Response != nil {
		e.Type = "response"
		req = ev.Response.Request
		e.Response = f.response(ev.Response, req)
		e.Error = ev.Response.Error
	} else {
		e.Type = "request"
		if req != nil {
			e.Error = req.Error
			e.PolicyConditions = conditions(req.PolicyConditions)
		}
	}
	if req == nil {
		return nil, errors.New("audit: event without a request")
	}
	e.Auth = f.auth(req.Auth)
	if e.Auth == nil {
		e.Auth = &wireAuth{}
	}
	e.Request = f.request(req)
	return json.Marshal(&e)
}

func conditions(in []Condition) []wireCondition {
	if len(in) == 0 {
		return nil
	}
	out := make([]wireCondition, len(in))
	for i, c := range in {
		out[i] = wireCondition{Policy: c.Policy, Path: c.Pattern, Expression: c.Expression, Result: c.Result, Error: c.Err}
	}
	return out
}

func (f *formatter) auth(a *Auth) *wireAuth {
	if a == nil {
		return nil
	}
	w := &wireAuth{
		ClientToken:      f.secret(a.ClientToken),
		Accessor:         f.accessor(a.Accessor),
		DisplayName:      a.DisplayName,
		Policies:         a.Policies,
		TokenPolicies:    a.TokenPolicies,
		IdentityPolicies: a.IdentityPolicies,
		NumUses:          a.NumUses,
		EntityID:         a.EntityID,
		TokenType:        a.TokenType,
		TokenTTL:         int64(a.TTL / time.Second),
	}
	if len(a.Metadata) > 0 {
		w.Metadata = make(map[string]string, len(a.Metadata))
		for k, v := range a.Metadata {
			w.Metadata[k] = f.secret(v)
		}
	}
	if !a.IssueTime.IsZero() {
		w.TokenIssueTime = a.IssueTime.UTC().Format(time.RFC3339)
	}
	return w
}

func (f *formatter) request(r *Request) *wireRequest {
	w := &wireRequest{
		ID:                  r.ID,
		Operation:           r.Operation,
		MountPoint:          r.MountPoint,
		MountType:           r.MountType,
		MountAccessor:       r.MountAccessor,
		ClientToken:         f.secret(r.ClientToken),
		ClientTokenAccessor: f.accessor(r.ClientTokenAccessor),
		Namespace:           &wireNamespace{ID: "root"},
		Path:                r.Path,
		Data:                f.redactMap(r.Data),
		WrapTTL:             int(r.WrapTTL / time.Second),
	}
	w.RemoteAddr, w.RemotePort = splitAddr(r.RemoteAddr)
	if len(r.Headers) > 0 {
		w.Headers = make(map[string][]string, len(r.Headers))
		for k, vs := range r.Headers {
			out := make([]string, len(vs))
			for i, v := range vs {
				out[i] = f.secret(v)
			}
			w.Headers[k] = out
		}
	}
	return w
}

func (f *formatter) response(r *Response, req *Request) *wireResponse {
	w := &wireResponse{
		Auth:       f.auth(r.Auth),
		Data:       f.redactMap(r.Data),
		Warnings:   r.Warnings,
		Redirect:   r.Redirect,
		StatusCode: r.StatusCode,
	}
	if req != nil {
		w.MountPoint, w.MountType, w.MountAccessor = req.MountPoint, req.MountType, req.MountAccessor
	}
	if r.LeaseID != "" {
		w.Secret = &wireSecret{LeaseID: r.LeaseID}
	}
	return w
}

// splitAddr splits "host:port" into Vault's remote_address and remote_port.
func splitAddr(addr string) (string, int) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 0
	}
	p, _ := strconv.Atoi(port)
	return host, p
}

// redactMap returns a deep copy of m in which every string value, at any
// depth, is replaced by its HMAC (or kept, with LogRaw). Map keys are kept,
// as in Vault. Numbers, booleans and nil are kept. Values of other types
// are converted through JSON first (as Vault does), so a struct's string
// fields are redacted too; a value JSON cannot encode becomes a marker
// string. The input is never modified.
func (f *formatter) redactMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = f.redact(v)
	}
	return out
}

const unloggable = "[value not loggable]"

func (f *formatter) redact(v any) any {
	switch x := v.(type) {
	case nil, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return x
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return f.secret(strconv.FormatFloat(x, 'g', -1, 64))
		}
		return x
	case float32:
		return f.redact(float64(x))
	case string:
		return f.secret(x)
	case json.Number:
		if isJSONNumber(string(x)) {
			return x
		}
		return f.secret(string(x))
	case map[string]any:
		return f.redactMap(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = f.redact(e)
		}
		return out
	case []string:
		out := make([]string, len(x))
		for i, e := range x {
			out[i] = f.secret(e)
		}
		return out
	case map[string]string:
		out := make(map[string]string, len(x))
		for k, e := range x {
			out[k] = f.secret(e)
		}
		return out
	case []map[string]any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = f.redactMap(e)
		}
		return out
	case time.Time:
		return f.secret(x.Format(time.RFC3339Nano))
	case []byte:
		return f.secret(base64.StdEncoding.EncodeToString(x))
	case json.RawMessage:
		return f.redactJSON(x)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return unloggable
	}
	return f.redactJSON(b)
}

// redactJSON decodes b (numbers kept exact) and redacts the result.
func (f *formatter) redactJSON(b []byte) any {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return unloggable
	}
	return f.redact(v)
}

// isJSONNumber reports whether s is a JSON number literal.
func isJSONNumber(s string) bool {
	if s == "" || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
		return false
	}
	if c := s[len(s)-1]; c < '0' || c > '9' {
		return false
	}
	return json.Valid([]byte(s))
}
