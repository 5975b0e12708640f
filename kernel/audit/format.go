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
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/wardproject/ward/sdk/jsonvalue"
)

// hmacPrefix identifies a redacted value, as in Vault ("hmac-sha256:<hex>").
const hmacPrefix = "hmac-sha256:"

// unloggable replaces a value JSON cannot encode (a channel, a function, a
// cycle deeper than maxDepth).
const unloggable = "[value not loggable]"

// maxDepth bounds the nesting the encoder follows, so a map that contains
// itself cannot recurse forever.
const maxDepth = 64

// formatter turns Events into entry bodies (JSON objects without seq and
// prev) with one device's redaction settings. It writes JSON directly,
// redacting as it goes, instead of copying the data and handing it to
// encoding/json: this halves the cost of an entry. It is safe for
// concurrent use.
type formatter struct {
	key          []byte
	raw          bool
	rawAccessors bool
	pool         sync.Pool // of *hmacState
}

// hmacState is a keyed HMAC-SHA256 with the scratch space it needs, so a
// redacted string costs no allocation: hash.Hash.Write takes a []byte, and
// converting each string (and taking the sum) would allocate.
type hmacState struct {
	h   hash.Hash
	in  [256]byte
	sum [sha256.Size]byte
}

func newFormatter(key []byte, raw, rawAccessors bool) *formatter {
	f := &formatter{key: bytes.Clone(key), raw: raw, rawAccessors: rawAccessors}
	f.pool.New = func() any { return &hmacState{h: hmac.New(sha256.New, f.key)} }
	return f
}

// appendHMAC appends "hmac-sha256:<hex>" of s under the device key.
func (f *formatter) appendHMAC(dst []byte, s string) []byte {
	st := f.pool.Get().(*hmacState)
	for rest := s; len(rest) > 0; {
		n := copy(st.in[:], rest)
		st.h.Write(st.in[:n])
		rest = rest[n:]
	}
	dst = append(dst, hmacPrefix...)
	dst = hex.AppendEncode(dst, st.h.Sum(st.sum[:0]))
	// Leave nothing of s in the pool: the scratch space, and the HMAC's
	// buffered input (Reset restores the keyed state).
	clear(st.in[:min(len(s), len(st.in))])
	st.h.Reset()
	f.pool.Put(st)
	return dst
}

func (f *formatter) hmac(s string) string { return string(f.appendHMAC(nil, s)) }

// maxPooledBuf bounds the entry and batch buffers kept for reuse, so one
// huge entry does not pin its memory.
const maxPooledBuf = 256 << 10

// bufPool holds entry and batch buffers for reuse.
var bufPool = sync.Pool{New: func() any { return &pooledBuf{b: make([]byte, 0, 4096)} }}

type pooledBuf struct{ b []byte }

func getBuf() *pooledBuf { return bufPool.Get().(*pooledBuf) }

// putBuf returns p for reuse; the caller must not use p.b afterwards.
func putBuf(p *pooledBuf) {
	if cap(p.b) > maxPooledBuf {
		return
	}
	p.b = p.b[:0]
	bufPool.Put(p)
}

// encoder appends one entry. Object keys written with key are constants
// that need no escaping.
type encoder struct {
	f     *formatter
	buf   []byte
	first bool // no field written yet in the current object
	// memo remembers where the redacted tokens and accessors of this
	// entry were written: each appears twice in an entry (in auth and in
	// request), and copying the earlier HMAC saves computing it again.
	memo  [4]memoEntry
	nmemo int
}

type memoEntry struct {
	in         string
	start, end int // the quoted HMAC in buf
}

func (e *encoder) open() { e.buf = append(e.buf, '{'); e.first = true }
func (e *encoder) close() {
	e.buf = append(e.buf, '}')
	e.first = false
}

func (e *encoder) key(k string) {
	if !e.first {
		e.buf = append(e.buf, ',')
	}
	e.first = false
	e.buf = append(e.buf, '"')
	e.buf = append(e.buf, k...)
	e.buf = append(e.buf, '"', ':')
}

// str writes a field with a string written as is ("" omitted).
func (e *encoder) str(k, v string) {
	if v != "" {
		e.key(k)
		e.buf = appendString(e.buf, v)
	}
}

// secret writes a field whose value is always secret (tokens): its HMAC,
// or the value with LogRaw ("" omitted).
func (e *encoder) secret(k, v string) {
	if v == "" {
		return
	}
	e.key(k)
	if e.f.raw {
		e.buf = appendString(e.buf, v)
		return
	}
	for _, m := range e.memo[:e.nmemo] {
		if m.in == v {
			e.buf = append(e.buf, e.buf[m.start:m.end]...)
			return
		}
	}
	start := len(e.buf)
	e.secretValue(v)
	if e.nmemo < len(e.memo) {
		e.memo[e.nmemo] = memoEntry{v, start, len(e.buf)}
		e.nmemo++
	}
}

func (e *encoder) secretValue(v string) {
	if e.f.raw {
		e.buf = appendString(e.buf, v)
		return
	}
	e.buf = append(e.buf, '"')
	e.buf = e.f.appendHMAC(e.buf, v)
	e.buf = append(e.buf, '"')
}

func (e *encoder) accessor(k, v string) {
	if e.f.rawAccessors {
		e.str(k, v)
	} else {
		e.secret(k, v)
	}
}

func (e *encoder) int(k string, v int64) {
	if v != 0 {
		e.key(k)
		e.buf = strconv.AppendInt(e.buf, v, 10)
	}
}

func (e *encoder) strs(k string, v []string) {
	if len(v) == 0 {
		return
	}
	e.key(k)
	e.buf = append(e.buf, '[')
	for i, s := range v {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		e.buf = appendString(e.buf, s)
	}
	e.buf = append(e.buf, ']')
}

// data writes a field with a redacted copy of m (nil or empty omitted).
func (e *encoder) data(k string, m map[string]any) {
	if len(m) > 0 {
		e.key(k)
		e.value(m, 0)
	}
}

// format returns the entry body for ev written at t (UTC): a JSON object,
// without seq and prev. The fields and their order are Vault's (OpenBao
// audit/format.go), with Ward's additions.
func (f *formatter) format(ev *Event, t time.Time) ([]byte, error) {
	return f.appendEntry(make([]byte, 0, 2048), ev, t)
}

// appendEntry appends the body of ev to dst (the devices pass a pooled
// buffer).
func (f *formatter) appendEntry(dst []byte, ev *Event, t time.Time) ([]byte, error) {
	req := ev.Request
	typ := "request"
	if ev.Response != nil {
		typ, req = "response", ev.Response.Request
	}
	if req == nil {
		return nil, errors.New("audit: event without a request")
	}
	e := encoder{f: f, buf: dst}
	e.open()
	e.key("time")
	e.buf = append(e.buf, '"')
	e.buf = t.AppendFormat(e.buf, time.RFC3339Nano)
	e.buf = append(e.buf, '"')
	e.str("type", typ)
	e.key("auth")
	e.auth(req.Auth)
	e.key("request")
	e.request(req)
	if r := ev.Response; r != nil {
		e.key("response")
		e.response(r, req)
		e.str("error", r.Error)
	} else {
		e.str("error", req.Error)
		e.conditions(req.PolicyConditions)
	}
	e.close()
	return e.buf, nil
}

// auth writes an auth object ({} for nil, as Vault always writes one).
func (e *encoder) auth(a *Auth) {
	e.open()
	if a != nil {
		e.secret("client_token", a.ClientToken)
		e.accessor("accessor", a.Accessor)
		e.str("display_name", a.DisplayName)
		e.strs("policies", a.Policies)
		e.strs("token_policies", a.TokenPolicies)
		e.strs("identity_policies", a.IdentityPolicies)
		if len(a.Metadata) > 0 {
			e.key("metadata")
			e.value(a.Metadata, 0)
		}
		e.int("num_uses", int64(a.NumUses))
		e.str("entity_id", a.EntityID)
		e.str("token_type", a.TokenType)
		e.int("token_ttl", int64(a.TTL/time.Second))
		if !a.IssueTime.IsZero() {
			e.key("token_issue_time")
			e.buf = append(e.buf, '"')
			e.buf = a.IssueTime.UTC().AppendFormat(e.buf, time.RFC3339)
			e.buf = append(e.buf, '"')
		}
	}
	e.close()
}

func (e *encoder) request(r *Request) {
	e.open()
	e.str("id", r.ID)
	e.str("operation", r.Operation)
	e.str("mount_point", r.MountPoint)
	e.str("mount_type", r.MountType)
	e.str("mount_accessor", r.MountAccessor)
	e.secret("client_token", r.ClientToken)
	e.accessor("client_token_accessor", r.ClientTokenAccessor)
	e.key("namespace")
	e.buf = append(e.buf, `{"id":"root"}`...)
	e.str("path", r.Path)
	e.data("data", r.Data)
	host, port := splitAddr(r.RemoteAddr)
	e.str("remote_address", host)
	e.int("remote_port", int64(port))
	e.int("wrap_ttl", int64(r.WrapTTL/time.Second))
	if len(r.Headers) > 0 {
		e.key("headers")
		e.value(r.Headers, 0)
	}
	e.close()
}

func (e *encoder) response(r *Response, req *Request) {
	e.open()
	if r.Auth != nil {
		e.key("auth")
		e.auth(r.Auth)
	}
	e.str("mount_point", req.MountPoint)
	e.str("mount_type", req.MountType)
	e.str("mount_accessor", req.MountAccessor)
	if r.LeaseID != "" {
		e.key("secret")
		e.open()
		e.str("lease_id", r.LeaseID)
		e.close()
	}
	e.data("data", r.Data)
	e.strs("warnings", r.Warnings)
	e.str("redirect", r.Redirect)
	if w := r.WrapInfo; w != nil {
		e.key("wrap_info")
		e.open()
		e.int("ttl", int64(w.TTL/time.Second))
		e.secret("token", w.Token)
		e.accessor("accessor", w.Accessor)
		if !w.CreationTime.IsZero() {
			e.key("creation_time")
			e.buf = append(e.buf, '"')
			e.buf = w.CreationTime.UTC().AppendFormat(e.buf, time.RFC3339Nano)
			e.buf = append(e.buf, '"')
		}
		e.str("creation_path", w.CreationPath)
		e.accessor("wrapped_accessor", w.WrappedAccessor)
		e.close()
	}
	e.int("status_code", int64(r.StatusCode))
	e.close()
}

func (e *encoder) conditions(cs []Condition) {
	if len(cs) == 0 {
		return
	}
	e.key("policy_conditions")
	e.buf = append(e.buf, '[')
	for i, c := range cs {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		e.open()
		e.key("policy")
		e.buf = appendString(e.buf, c.Policy)
		e.key("path")
		e.buf = appendString(e.buf, c.Pattern)
		e.key("expression")
		e.buf = appendString(e.buf, c.Expression)
		e.key("result")
		e.buf = strconv.AppendBool(e.buf, c.Result)
		e.str("error", c.Err)
		e.close()
	}
	e.buf = append(e.buf, ']')
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

// value writes v with every string, at any depth, replaced by its HMAC (or
// kept, with LogRaw). Map keys are kept, as in Vault. Numbers, booleans
// and nil are kept. Values of other types are converted through JSON
// first (as Vault does), so a struct's string fields are redacted too; a
// value JSON cannot encode becomes the unloggable marker. Map keys are
// written sorted, as encoding/json does.
func (e *encoder) value(v any, depth int) {
	if depth > maxDepth {
		e.buf = appendString(e.buf, unloggable)
		return
	}
	switch x := v.(type) {
	case nil:
		e.buf = append(e.buf, "null"...)
	case bool:
		e.buf = strconv.AppendBool(e.buf, x)
	case string:
		e.secretValue(x)
	case int:
		e.buf = strconv.AppendInt(e.buf, int64(x), 10)
	case int8:
		e.buf = strconv.AppendInt(e.buf, int64(x), 10)
	case int16:
		e.buf = strconv.AppendInt(e.buf, int64(x), 10)
	case int32:
		e.buf = strconv.AppendInt(e.buf, int64(x), 10)
	case int64:
		e.buf = strconv.AppendInt(e.buf, x, 10)
	case uint:
		e.buf = strconv.AppendUint(e.buf, uint64(x), 10)
	case uint8:
		e.buf = strconv.AppendUint(e.buf, uint64(x), 10)
	case uint16:
		e.buf = strconv.AppendUint(e.buf, uint64(x), 10)
	case uint32:
		e.buf = strconv.AppendUint(e.buf, uint64(x), 10)
	case uint64:
		e.buf = strconv.AppendUint(e.buf, x, 10)
	case float64:
		e.float(x, 64)
	case float32:
		e.float(float64(x), 32)
	case json.Number:
		if isJSONNumber(string(x)) {
			e.buf = append(e.buf, x...)
		} else {
			e.secretValue(string(x))
		}
	case map[string]any:
		var arr [16]string
		keys := sortedKeys(x, arr[:0])
		e.buf = append(e.buf, '{')
		for i, k := range keys {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.buf = appendString(e.buf, k)
			e.buf = append(e.buf, ':')
			e.value(x[k], depth+1)
		}
		e.buf = append(e.buf, '}')
	case map[string]string:
		var arr [16]string
		keys := sortedKeys(x, arr[:0])
		e.buf = append(e.buf, '{')
		for i, k := range keys {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.buf = appendString(e.buf, k)
			e.buf = append(e.buf, ':')
			e.secretValue(x[k])
		}
		e.buf = append(e.buf, '}')
	case map[string][]string:
		var arr [16]string
		keys := sortedKeys(x, arr[:0])
		e.buf = append(e.buf, '{')
		for i, k := range keys {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.buf = appendString(e.buf, k)
			e.buf = append(e.buf, ':')
			e.value(x[k], depth+1)
		}
		e.buf = append(e.buf, '}')
	case []any:
		e.buf = append(e.buf, '[')
		for i, el := range x {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.value(el, depth+1)
		}
		e.buf = append(e.buf, ']')
	case []string:
		e.buf = append(e.buf, '[')
		for i, el := range x {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.secretValue(el)
		}
		e.buf = append(e.buf, ']')
	case []map[string]any:
		e.buf = append(e.buf, '[')
		for i, el := range x {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.value(el, depth+1)
		}
		e.buf = append(e.buf, ']')
	case time.Time:
		e.secretValue(x.Format(time.RFC3339Nano))
	case []byte:
		e.secretValue(base64.StdEncoding.EncodeToString(x))
	case json.RawMessage:
		e.valueJSON(x, depth)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			e.buf = appendString(e.buf, unloggable)
			return
		}
		e.valueJSON(b, depth)
	}
}

// valueJSON decodes b (numbers kept exact) and writes it redacted.
func (e *encoder) valueJSON(b []byte, depth int) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		e.buf = appendString(e.buf, unloggable)
		return
	}
	e.value(v, depth+1)
}

// float writes a number as encoding/json does; NaN and infinities, which
// JSON cannot hold, are written as (redacted) strings.
func (e *encoder) float(f float64, bits int) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		e.secretValue(strconv.FormatFloat(f, 'g', -1, bits))
		return
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21)) {
		format = 'e'
	}
	e.buf = strconv.AppendFloat(e.buf, f, format, -1, bits)
	if format == 'e' { // e-09 → e-9, as encoding/json
		n := len(e.buf)
		if n >= 4 && e.buf[n-4] == 'e' && e.buf[n-3] == '-' && e.buf[n-2] == '0' {
			e.buf[n-2] = e.buf[n-1]
			e.buf = e.buf[:n-1]
		}
	}
}

// sortedKeys returns m's keys sorted, in buf when they fit.
func sortedKeys[V any](m map[string]V, buf []string) []string {
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
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

// appendString appends s as a JSON string, escaped as encoding/json does
// without HTML escaping (sdk/jsonvalue: one implementation for the guest
// codec and the audit format).
func appendString(dst []byte, s string) []byte { return jsonvalue.AppendString(dst, s, false) }
