package abi

import (
	"encoding/json"
	"errors"
	"math"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/wardproject/ward/sdk/logical"
)

// The conversions below follow sdk/plugin's convert.go exactly (JSON
// without HTML escaping, numbers kept as json.Number, durations in whole
// seconds, times in UTC), so a backend sees the same values over either
// transport.

func seconds(d time.Duration) int64 { return int64(d / time.Second) }

func fromSeconds(s int64) time.Duration {
	const maxSec = int64(math.MaxInt64 / int64(time.Second))
	switch {
	case s > maxSec:
		return math.MaxInt64
	case s < -maxSec:
		return math.MinInt64
	}
	return time.Duration(s) * time.Second
}

// --- Error -------------------------------------------------------------------

func putError(b []byte, num protowire.Number, err error) []byte {
	if err == nil {
		return b
	}
	return putMessage(b, num, func(b []byte) []byte {
		b = putInt32(b, 1, int32(logical.CodeOf(err)))
		return putString(b, 2, err.Error())
	})
}

func (r *reader) error() error {
	e := &logical.Error{}
	if !r.message(func(m *reader) {
		for m.next() {
			switch m.num {
			case 1:
				var c int32
				m.int32(&c)
				e.Code = logical.Code(c)
			case 2:
				m.str(&e.Message)
			default:
				m.skip()
			}
		}
	}) {
		return nil
	}
	return e
}

// --- Secret, Auth ------------------------------------------------------------

// internalJSON encodes the InternalData of a secret and an auth ahead of
// writing, so that the writers below cannot fail halfway.
func internalJSON(s *logical.Secret, a *logical.Auth) (sj, aj []byte, err error) {
	if s != nil {
		if sj, err = encodeJSON(s.InternalData); err != nil {
			return nil, nil, err
		}
	}
	if a != nil {
		if aj, err = encodeJSON(a.InternalData); err != nil {
			return nil, nil, err
		}
	}
	return sj, aj, nil
}

func putSecret(b []byte, num protowire.Number, s *logical.Secret, internal []byte) []byte {
	if s == nil {
		return b
	}
	return putMessage(b, num, func(b []byte) []byte {
		b = putInt64(b, 1, seconds(s.TTL))
		b = putInt64(b, 2, seconds(s.MaxTTL))
		b = putBool(b, 3, s.Renewable)
		b = putBytes(b, 4, internal)
		b = putString(b, 5, s.LeaseID)
		if !s.IssueTime.IsZero() {
			b = putInt64(b, 6, s.IssueTime.UnixNano())
		}
		return b
	})
}

func (r *reader) secret() (*logical.Secret, error) {
	out := &logical.Secret{}
	var ttl, maxTTL, issue int64
	var internal []byte
	r.message(func(m *reader) {
		for m.next() {
			switch m.num {
			case 1:
				m.int64(&ttl)
			case 2:
				m.int64(&maxTTL)
			case 3:
				m.bool(&out.Renewable)
			case 4:
				internal, _ = m.bytes()
			case 5:
				m.str(&out.LeaseID)
			case 6:
				m.int64(&issue)
			default:
				m.skip()
			}
		}
	})
	if r.err != nil {
		return nil, r.err
	}
	var err error
	if out.InternalData, err = decodeJSONMap(internal); err != nil {
		return nil, err
	}
	out.TTL, out.MaxTTL = fromSeconds(ttl), fromSeconds(maxTTL)
	if issue != 0 {
		out.IssueTime = time.Unix(0, issue).UTC()
	}
	return out, nil
}

func putAuth(b []byte, num protowire.Number, a *logical.Auth, internal []byte) []byte {
	if a == nil {
		return b
	}
	return putMessage(b, num, func(b []byte) []byte {
		b = putString(b, 1, a.DisplayName)
		b = putStrings(b, 2, a.Policies)
		b = putStringMap(b, 3, a.Metadata)
		b = putInt64(b, 4, seconds(a.TTL))
		b = putInt64(b, 5, seconds(a.MaxTTL))
		b = putBool(b, 6, a.Renewable)
		b = putInt64(b, 7, int64(a.NumUses))
		b = putBytes(b, 8, internal)
		b = putInt64(b, 9, seconds(a.Period))
		b = putInt64(b, 10, seconds(a.ExplicitMaxTTL))
		b = putBool(b, 11, a.NoDefaultPolicy)
		b = putStrings(b, 12, a.BoundCIDRs)
		if a.Alias != nil {
			b = putMessage(b, 13, func(b []byte) []byte {
				b = putString(b, 1, a.Alias.Name)
				return putStringMap(b, 2, a.Alias.Metadata)
			})
		}
		if !a.IssueTime.IsZero() {
			b = putInt64(b, 14, a.IssueTime.UnixNano())
		}
		return b
	})
}

func (r *reader) auth() (*logical.Auth, error) {
	out := &logical.Auth{}
	var ttl, maxTTL, period, explicit, uses, issue int64
	var internal []byte
	r.message(func(m *reader) {
		for m.next() {
			switch m.num {
			case 1:
				m.str(&out.DisplayName)
			case 2:
				m.appendStr(&out.Policies)
			case 3:
				m.stringMapEntry(&out.Metadata)
			case 4:
				m.int64(&ttl)
			case 5:
				m.int64(&maxTTL)
			case 6:
				m.bool(&out.Renewable)
			case 7:
				m.int64(&uses)
			case 8:
				internal, _ = m.bytes()
			case 9:
				m.int64(&period)
			case 10:
				m.int64(&explicit)
			case 11:
				m.bool(&out.NoDefaultPolicy)
			case 12:
				m.appendStr(&out.BoundCIDRs)
			case 13:
				al := &logical.Alias{}
				m.message(func(a *reader) {
					for a.next() {
						switch a.num {
						case 1:
							a.str(&al.Name)
						case 2:
							a.stringMapEntry(&al.Metadata)
						default:
							a.skip()
						}
					}
				})
				out.Alias = al
			case 14:
				m.int64(&issue)
			default:
				m.skip()
			}
		}
	})
	if r.err != nil {
		return nil, r.err
	}
	var err error
	if out.InternalData, err = decodeJSONMap(internal); err != nil {
		return nil, err
	}
	out.TTL, out.MaxTTL, out.Period = fromSeconds(ttl), fromSeconds(maxTTL), fromSeconds(period)
	out.ExplicitMaxTTL, out.NumUses = fromSeconds(explicit), int(uses)
	if issue != 0 {
		out.IssueTime = time.Unix(0, issue).UTC()
	}
	return out, nil
}

// --- HandleRequestArgs ---------------------------------------------------------

// RequestArgs is a HandleRequestArgs message.
type RequestArgs struct {
	MountID        string
	Request        *logical.Request
	Deadline       int64 // unix nanoseconds, 0 for none
	ExistenceCheck bool
	// InvalidatedKeys (minor 1) are storage keys to invalidate before
	// serving; see AppendInvalidatedKeys.
	InvalidatedKeys []string
}

// ErrInvalidUTF8 is returned by AppendRequestArgs for a request with a
// string (its path, a header, ...) that is not valid UTF-8: protobuf
// strings must be, so the module could not decode the message (nor could
// a go-plugin peer: protobuf-go refuses to encode it).
var ErrInvalidUTF8 = errors.New("abi: a request string is not valid UTF-8")

// AppendRequestArgs appends the HandleRequestArgs encoding of a to b.
// Request.Storage is not sent. A request with a string field that is not
// valid UTF-8 is refused with ErrInvalidUTF8.
func AppendRequestArgs(b []byte, a *RequestArgs) ([]byte, error) {
	if !validStrings(a) {
		return nil, ErrInvalidUTF8
	}
	b = putString(b, 1, a.MountID)
	if r := a.Request; r != nil {
		sj, aj, err := internalJSON(r.Secret, r.Auth)
		if err != nil {
			return nil, err
		}
		var dataErr error
		b = putMessage(b, 2, func(b []byte) []byte {
			b = putString(b, 1, r.ID)
			b = putString(b, 2, string(r.Operation))
			b = putString(b, 3, r.Path)
			if r.Data != nil {
				b, dataErr = putJSON(b, 4, r.Data)
			}
			b = putString(b, 5, r.MountPoint)
			b = putString(b, 6, r.MountType)
			b = putString(b, 7, r.MountAccessor)
			b = putHeaderMap(b, 8, r.Headers)
			b = putString(b, 9, r.RemoteAddr)
			b = putBool(b, 10, r.Unauthenticated)
			b = putAuth(b, 11, r.Auth, aj)
			return putSecret(b, 12, r.Secret, sj)
		})
		if dataErr != nil {
			return nil, dataErr
		}
	}
	b = putInt64(b, 3, a.Deadline)
	b = putBool(b, 4, a.ExistenceCheck)
	return putStrings(b, 5, a.InvalidatedKeys), nil
}

// AppendInvalidatedKeys adds keys to an encoded HandleRequestArgs (a
// repeated field may come last, after the rest): for a host that learns
// them after encoding the request. Only for modules of minor 1 or later:
// earlier ones skip the field.
func AppendInvalidatedKeys(b []byte, keys []string) []byte { return putStrings(b, 5, keys) }

// validStrings reports whether every string AppendRequestArgs writes as a
// protobuf string is valid UTF-8 (JSON-encoded data need not be: encoding
// makes it so).
func validStrings(a *RequestArgs) bool {
	ok := utf8.ValidString(a.MountID)
	for _, k := range a.InvalidatedKeys {
		ok = ok && utf8.ValidString(k)
	}
	r := a.Request
	if r == nil || !ok {
		return ok
	}
	for _, s := range [...]string{r.ID, string(r.Operation), r.Path, r.MountPoint, r.MountType, r.MountAccessor, r.RemoteAddr} {
		ok = ok && utf8.ValidString(s)
	}
	for k, vs := range r.Headers {
		ok = ok && utf8.ValidString(k)
		for _, v := range vs {
			ok = ok && utf8.ValidString(v)
		}
	}
	if s := r.Secret; s != nil {
		ok = ok && utf8.ValidString(s.LeaseID)
	}
	if au := r.Auth; au != nil {
		ok = ok && utf8.ValidString(au.DisplayName) && validMap(au.Metadata)
		for _, l := range [...][]string{au.Policies, au.BoundCIDRs} {
			for _, s := range l {
				ok = ok && utf8.ValidString(s)
			}
		}
		if al := au.Alias; al != nil {
			ok = ok && utf8.ValidString(al.Name) && validMap(al.Metadata)
		}
	}
	return ok
}

func validMap(m map[string]string) bool {
	for k, v := range m {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return false
		}
	}
	return true
}

// DecodeInvalidatedKeys reads only the invalidated keys (minor 1) of a
// HandleRequestArgs message, skipping the other fields without checking
// them: a module must apply them even when the rest of the request cannot
// be decoded (the host counts them as delivered).
func DecodeInvalidatedKeys(b []byte) ([]string, error) {
	var keys []string
	r := reader{b: b}
	for r.next() {
		if r.num == 5 {
			r.appendStr(&keys)
		} else {
			r.skip()
		}
	}
	return keys, r.err
}

// DecodeRequestArgs reads a HandleRequestArgs message. Errors are
// *logical.Error values with CodeInvalidRequest, as the go-plugin transport
// answers for undecodable request data.
func DecodeRequestArgs(b []byte) (*RequestArgs, error) {
	out := &RequestArgs{}
	r := reader{b: b}
	var jsonErr error
	for r.next() {
		switch r.num {
		case 1:
			r.str(&out.MountID)
		case 2:
			req := &logical.Request{}
			var data []byte
			r.message(func(m *reader) {
				for m.next() {
					switch m.num {
					case 1:
						m.str(&req.ID)
					case 2:
						var op string
						m.str(&op)
						req.Operation = logical.Operation(op)
					case 3:
						m.str(&req.Path)
					case 4:
						data, _ = m.bytes()
					case 5:
						m.str(&req.MountPoint)
					case 6:
						m.str(&req.MountType)
					case 7:
						m.str(&req.MountAccessor)
					case 8:
						m.headerMapEntry(&req.Headers)
					case 9:
						m.str(&req.RemoteAddr)
					case 10:
						m.bool(&req.Unauthenticated)
					case 11:
						a, err := m.auth()
						if err != nil && m.err == nil {
							jsonErr = logical.InvalidRequest("request auth data is not valid")
						}
						req.Auth = a
					case 12:
						s, err := m.secret()
						if err != nil && m.err == nil {
							jsonErr = logical.InvalidRequest("request secret data is not valid")
						}
						req.Secret = s
					default:
						m.skip()
					}
				}
			})
			if r.err == nil && jsonErr == nil {
				d, err := decodeJSONMap(data)
				if err != nil {
					jsonErr = logical.InvalidRequest("request data is not a JSON object")
				}
				req.Data = d
			}
			out.Request = req
		case 3:
			r.int64(&out.Deadline)
		case 4:
			r.bool(&out.ExistenceCheck)
		case 5:
			r.appendStr(&out.InvalidatedKeys)
		default:
			r.skip()
		}
	}
	if r.err != nil {
		return nil, logical.InvalidRequest("request is not a valid HandleRequestArgs message")
	}
	if jsonErr != nil {
		return nil, jsonErr
	}
	return out, nil
}

// --- HandleRequestReply --------------------------------------------------------

// Reply is a HandleRequestReply message.
type Reply struct {
	Response    *logical.Response // nil when NilResponse or Err
	Err         error
	NilResponse bool
	CheckFound  bool
	Exists      bool
}

// AppendReply appends the HandleRequestReply encoding of r to b.
func AppendReply(b []byte, r *Reply) ([]byte, error) {
	if resp := r.Response; resp != nil {
		sj, aj, err := internalJSON(resp.Secret, resp.Auth)
		if err != nil {
			return nil, err
		}
		var dataErr error
		b = putMessage(b, 1, func(b []byte) []byte {
			if resp.Data != nil { // a nil map reads back as nil either way
				b, dataErr = putJSON(b, 1, resp.Data)
			}
			b = putSecret(b, 2, resp.Secret, sj)
			b = putAuth(b, 3, resp.Auth, aj)
			b = putStrings(b, 4, resp.Warnings)
			return putInt32(b, 6, int32(resp.StatusCode))
		})
		if dataErr != nil {
			return nil, dataErr
		}
	}
	b = putError(b, 2, r.Err)
	b = putBool(b, 3, r.NilResponse)
	b = putBool(b, 4, r.CheckFound)
	return putBool(b, 5, r.Exists), nil
}

// DecodeReply reads a HandleRequestReply message.
func DecodeReply(b []byte) (*Reply, error) {
	out := &Reply{}
	r := reader{b: b}
	var convErr error
	for r.next() {
		switch r.num {
		case 1:
			resp := &logical.Response{}
			var data []byte
			var status int32
			r.message(func(m *reader) {
				for m.next() {
					switch m.num {
					case 1:
						data, _ = m.bytes()
					case 2:
						s, err := m.secret()
						if err != nil && convErr == nil {
							convErr = err
						}
						resp.Secret = s
					case 3:
						a, err := m.auth()
						if err != nil && convErr == nil {
							convErr = err
						}
						resp.Auth = a
					case 4:
						m.appendStr(&resp.Warnings)
					case 6:
						m.int32(&status)
					default:
						m.skip()
					}
				}
			})
			resp.StatusCode = int(status)
			if r.err == nil && convErr == nil {
				resp.Data, convErr = decodeJSONMap(data)
			}
			out.Response = resp
		case 2:
			out.Err = r.error()
		case 3:
			r.bool(&out.NilResponse)
		case 4:
			r.bool(&out.CheckFound)
		case 5:
			r.bool(&out.Exists)
		default:
			r.skip()
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if convErr != nil {
		return nil, ErrMalformed
	}
	return out, nil
}

// --- Setup ---------------------------------------------------------------------

// SetupArgs is a SetupRequest message.
type SetupArgs struct {
	MountID    string
	MountPoint string
	MountType  string
	Config     map[string]string
}

// AppendSetupArgs appends the SetupRequest encoding of a to b.
func AppendSetupArgs(b []byte, a *SetupArgs) []byte {
	b = putString(b, 1, a.MountID)
	b = putString(b, 2, a.MountPoint)
	b = putString(b, 3, a.MountType)
	return putStringMap(b, 4, a.Config)
}

// DecodeSetupArgs reads a SetupRequest message.
func DecodeSetupArgs(b []byte) (*SetupArgs, error) {
	out := &SetupArgs{}
	r := reader{b: b}
	for r.next() {
		switch r.num {
		case 1:
			r.str(&out.MountID)
		case 2:
			r.str(&out.MountPoint)
		case 3:
			r.str(&out.MountType)
		case 4:
			r.stringMapEntry(&out.Config)
		default:
			r.skip()
		}
	}
	return out, r.err
}

// SetupResult is a SetupReply message.
type SetupResult struct {
	Err          error
	Type         logical.BackendType
	SpecialPaths *logical.Paths
	Schema       *logical.Schema
}

// AppendSetupResult appends the SetupReply encoding of s to b.
func AppendSetupResult(b []byte, s *SetupResult) []byte {
	b = putError(b, 1, s.Err)
	if p := s.SpecialPaths; p != nil {
		b = putMessage(b, 2, func(b []byte) []byte {
			b = putStrings(b, 1, p.Root)
			return putStrings(b, 2, p.Unauthenticated)
		})
	}
	if sc := s.Schema; sc != nil {
		b = putMessage(b, 3, func(b []byte) []byte {
			b = putString(b, 1, sc.Help)
			for i := range sc.Paths {
				p := &sc.Paths[i]
				b = putMessage(b, 2, func(b []byte) []byte {
					b = putString(b, 1, p.Pattern)
					b = putString(b, 2, p.Synopsis)
					b = putString(b, 3, p.Description)
					for _, op := range p.Operations {
						b = putStringAlways(b, 4, string(op))
					}
					for _, f := range p.Fields {
						def, _ := encodeJSON(f.Default)
						av, _ := encodeJSON(f.AllowedValues)
						b = putMessage(b, 5, func(b []byte) []byte {
							b = putString(b, 1, f.Name)
							b = putString(b, 2, f.Type)
							b = putString(b, 3, f.Description)
							b = putBool(b, 4, f.Required)
							b = putBytes(b, 5, def)
							return putBytes(b, 6, av)
						})
					}
					return b
				})
			}
			return b
		})
	}
	return putString(b, 4, string(s.Type))
}

// DecodeSetupResult reads a SetupReply message. Like sdk/plugin, a missing
// schema reads as an empty one and missing special paths as none.
func DecodeSetupResult(b []byte) (*SetupResult, error) {
	out := &SetupResult{SpecialPaths: &logical.Paths{}, Schema: &logical.Schema{}}
	r := reader{b: b}
	for r.next() {
		switch r.num {
		case 1:
			out.Err = r.error()
		case 2:
			r.message(func(m *reader) {
				for m.next() {
					switch m.num {
					case 1:
						m.appendStr(&out.SpecialPaths.Root)
					case 2:
						m.appendStr(&out.SpecialPaths.Unauthenticated)
					default:
						m.skip()
					}
				}
			})
		case 3:
			r.message(func(m *reader) {
				for m.next() {
					switch m.num {
					case 1:
						m.str(&out.Schema.Help)
					case 2:
						out.Schema.Paths = append(out.Schema.Paths, m.pathSchema())
					default:
						m.skip()
					}
				}
			})
		case 4:
			var t string
			r.str(&t)
			out.Type = logical.BackendType(t)
		default:
			r.skip()
		}
	}
	return out, r.err
}

func (r *reader) pathSchema() logical.PathSchema {
	var ps logical.PathSchema
	r.message(func(m *reader) {
		for m.next() {
			switch m.num {
			case 1:
				m.str(&ps.Pattern)
			case 2:
				m.str(&ps.Synopsis)
			case 3:
				m.str(&ps.Description)
			case 4:
				var op string
				m.str(&op)
				ps.Operations = append(ps.Operations, logical.Operation(op))
			case 5:
				var fi logical.FieldInfo
				m.message(func(f *reader) {
					for f.next() {
						switch f.num {
						case 1:
							f.str(&fi.Name)
						case 2:
							f.str(&fi.Type)
						case 3:
							f.str(&fi.Description)
						case 4:
							f.bool(&fi.Required)
						case 5:
							if v, ok := f.bytes(); ok && len(v) > 0 {
								_ = json.Unmarshal(v, &fi.Default)
							}
						case 6:
							if v, ok := f.bytes(); ok && len(v) > 0 {
								_ = json.Unmarshal(v, &fi.AllowedValues)
							}
						default:
							f.skip()
						}
					}
				})
				ps.Fields = append(ps.Fields, fi)
			default:
				m.skip()
			}
		}
	})
	return ps
}

// --- Info ------------------------------------------------------------------------

// Info is an InfoReply message.
type Info struct {
	Name         string
	Type         logical.BackendType
	Version      string
	SDKVersion   string
	Capabilities []string
	// ConcurrentWrites: the module's writes may run on several instances
	// at once (it locks with ImportLock; ABI minor 1).
	ConcurrentWrites bool
}

// AppendInfo appends the InfoReply encoding of i to b.
func AppendInfo(b []byte, i *Info) []byte {
	b = putString(b, 1, i.Name)
	b = putString(b, 2, string(i.Type))
	b = putString(b, 3, i.Version)
	b = putString(b, 4, i.SDKVersion)
	b = putStrings(b, 5, i.Capabilities)
	return putBool(b, 6, i.ConcurrentWrites)
}

// DecodeInfo reads an InfoReply message.
func DecodeInfo(b []byte) (*Info, error) {
	out := &Info{}
	r := reader{b: b}
	for r.next() {
		switch r.num {
		case 1:
			r.str(&out.Name)
		case 2:
			var t string
			r.str(&t)
			out.Type = logical.BackendType(t)
		case 3:
			r.str(&out.Version)
		case 4:
			r.str(&out.SDKVersion)
		case 5:
			r.appendStr(&out.Capabilities)
		case 6:
			r.bool(&out.ConcurrentWrites)
		default:
			r.skip()
		}
	}
	return out, r.err
}

// --- InvalidateKeysArgs, MountRef ------------------------------------------------

// AppendInvalidateKeys appends an InvalidateKeysArgs message to b.
func AppendInvalidateKeys(b []byte, mountID string, keys []string) []byte {
	b = putString(b, 1, mountID)
	return putStrings(b, 2, keys)
}

// AppendInvalidateAll (minor 1) appends an InvalidateKeysArgs message
// with all set: drop everything cached from storage.
func AppendInvalidateAll(b []byte, mountID string) []byte {
	b = putString(b, 1, mountID)
	return putBool(b, 3, true)
}

// DecodeInvalidateKeys reads an InvalidateKeysArgs message. It does not
// report all (minor 1): use DecodeInvalidation.
func DecodeInvalidateKeys(b []byte) (mountID string, keys []string, err error) {
	inv, err := DecodeInvalidation(b)
	return inv.MountID, inv.Keys, err
}

// Invalidation is an InvalidateKeysArgs message.
type Invalidation struct {
	MountID string
	Keys    []string
	// All (minor 1): everything cached from storage is to be dropped
	// (the host could not list the keys).
	All bool
}

// DecodeInvalidation reads an InvalidateKeysArgs message.
func DecodeInvalidation(b []byte) (Invalidation, error) {
	var out Invalidation
	r := reader{b: b}
	for r.next() {
		switch r.num {
		case 1:
			r.str(&out.MountID)
		case 2:
			r.appendStr(&out.Keys)
		case 3:
			r.bool(&out.All)
		default:
			r.skip()
		}
	}
	return out, r.err
}

// AppendMountRef appends a MountRef message to b.
func AppendMountRef(b []byte, mountID string) []byte { return putString(b, 1, mountID) }

// DecodeMountRef reads a MountRef message.
func DecodeMountRef(b []byte) (string, error) {
	var id string
	r := reader{b: b}
	for r.next() {
		if r.num == 1 {
			r.str(&id)
		} else {
			r.skip()
		}
	}
	return id, r.err
}

// --- StorageCall, StorageResult --------------------------------------------------

// StorageOp values of StorageCall.op.
const (
	StorageGet    int32 = 1
	StoragePut    int32 = 2
	StorageDelete int32 = 3
	StorageList   int32 = 4
	StorageBatch  int32 = 5
)

// StorageCall is a StorageCall message (mount_id is unused over WASM: an
// instance serves one mount).
type StorageCall struct {
	Op    int32
	Key   string
	Value []byte
	Ops   []logical.StorageOp
}

// AppendStorageCall appends the StorageCall encoding of c to b.
func AppendStorageCall(b []byte, c *StorageCall) []byte {
	b = putInt32(b, 2, c.Op)
	b = putString(b, 3, c.Key)
	b = putBytes(b, 4, c.Value)
	for i := range c.Ops {
		op := &c.Ops[i]
		b = putMessage(b, 5, func(b []byte) []byte {
			b = putString(b, 1, op.Key)
			b = putBytes(b, 2, op.Value)
			return putBool(b, 3, op.Delete)
		})
	}
	return b
}

// DecodeStorageCall reads a StorageCall message. Values alias b.
func DecodeStorageCall(b []byte) (*StorageCall, error) {
	out := &StorageCall{}
	r := reader{b: b}
	for r.next() {
		switch r.num {
		case 2:
			r.int32(&out.Op)
		case 3:
			r.str(&out.Key)
		case 4:
			out.Value, _ = r.bytes()
		case 5:
			var op logical.StorageOp
			r.message(func(m *reader) {
				for m.next() {
					switch m.num {
					case 1:
						m.str(&op.Key)
					case 2:
						op.Value, _ = m.bytes()
					case 3:
						m.bool(&op.Delete)
					default:
						m.skip()
					}
				}
			})
			out.Ops = append(out.Ops, op)
		default:
			r.skip()
		}
	}
	return out, r.err
}

// StorageResult is a StorageResult message.
type StorageResult struct {
	Found bool
	Value []byte
	Keys  []string
	Err   error
}

// AppendStorageResult appends the StorageResult encoding of s to b.
func AppendStorageResult(b []byte, s *StorageResult) []byte {
	b = putBool(b, 1, s.Found)
	b = putBytes(b, 2, s.Value)
	b = putStrings(b, 3, s.Keys)
	return putError(b, 4, s.Err)
}

// DecodeStorageResult reads a StorageResult message. Value is a copy.
func DecodeStorageResult(b []byte) (*StorageResult, error) {
	out := &StorageResult{}
	r := reader{b: b}
	for r.next() {
		switch r.num {
		case 1:
			r.bool(&out.Found)
		case 2:
			r.copyBytes(&out.Value)
		case 3:
			r.appendStr(&out.Keys)
		case 4:
			out.Err = r.error()
		default:
			r.skip()
		}
	}
	return out, r.err
}

// --- HTTPRequest, HTTPResponse ---------------------------------------------------

// HTTPRequest is an HTTPRequest message.
type HTTPRequest struct {
	Method string
	URL    string
	Header map[string][]string
	Body   []byte
}

// AppendHTTPRequest appends the HTTPRequest encoding of h to b.
func AppendHTTPRequest(b []byte, h *HTTPRequest) []byte {
	b = putString(b, 1, h.Method)
	b = putString(b, 2, h.URL)
	b = putHeaderMap(b, 3, h.Header)
	return putBytes(b, 4, h.Body)
}

// DecodeHTTPRequest reads an HTTPRequest message. Body aliases b.
func DecodeHTTPRequest(b []byte) (*HTTPRequest, error) {
	out := &HTTPRequest{}
	r := reader{b: b}
	for r.next() {
		switch r.num {
		case 1:
			r.str(&out.Method)
		case 2:
			r.str(&out.URL)
		case 3:
			r.headerMapEntry(&out.Header)
		case 4:
			out.Body, _ = r.bytes()
		default:
			r.skip()
		}
	}
	return out, r.err
}

// HTTPResponse is an HTTPResponse message.
type HTTPResponse struct {
	StatusCode int32
	Header     map[string][]string
	Body       []byte
	Err        error
}

// AppendHTTPResponse appends the HTTPResponse encoding of h to b.
func AppendHTTPResponse(b []byte, h *HTTPResponse) []byte {
	b = putInt32(b, 1, h.StatusCode)
	b = putHeaderMap(b, 2, h.Header)
	b = putBytes(b, 3, h.Body)
	return putError(b, 4, h.Err)
}

// DecodeHTTPResponse reads an HTTPResponse message. Body is a copy.
func DecodeHTTPResponse(b []byte) (*HTTPResponse, error) {
	out := &HTTPResponse{}
	r := reader{b: b}
	for r.next() {
		switch r.num {
		case 1:
			r.int32(&out.StatusCode)
		case 2:
			r.headerMapEntry(&out.Header)
		case 3:
			r.copyBytes(&out.Body)
		case 4:
			out.Err = r.error()
		default:
			r.skip()
		}
	}
	return out, r.err
}
