package lease

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

// Entry is one lease as the manager stores it (JSON under id/<ID>).
//
// Entry never prints its ID, TokenHash, InternalData or Data: it implements
// fmt.Formatter and slog.LogValuer with a redacted form, so passing one to a
// logger or to fmt.Errorf cannot leak a credential.
type Entry struct {
	// ID is "<mount point><path>/<random>", e.g. "database/creds/ro/Xk3…".
	ID string `json:"id"`
	// MountPoint ("database/") and MountAccessor name the engine that
	// issued the secret; Path ("creds/ro") is the request path relative to
	// the mount.
	MountPoint    string `json:"mount_point"`
	MountAccessor string `json:"mount_accessor,omitempty"`
	Path          string `json:"path"`

	// TTL is the length of the current lease period (from registration or
	// the last renewal); MaxTTL caps the lease's life from IssueTime (0: no
	// cap). Renewable says whether Renew may extend it.
	TTL       time.Duration `json:"ttl"`
	MaxTTL    time.Duration `json:"max_ttl,omitempty"`
	Renewable bool          `json:"renewable"`
	// InternalData is the engine's private data (it may hold credentials):
	// given back on renew and revoke, never shown to clients. It is stored
	// as JSON, so numbers come back as float64.
	InternalData map[string]any `json:"internal_data,omitempty"`
	// Data is request data the engine needs at revocation, if any.
	Data map[string]any `json:"data,omitempty"`
	// TokenHash identifies the token that created the lease (opaque to the
	// manager; the kernel uses the token store's hashed ID). "" for none.
	TokenHash string `json:"token_hash,omitempty"`

	IssueTime       time.Time `json:"issue_time"`
	ExpireTime      time.Time `json:"expire_time"`
	LastRenewalTime time.Time `json:"last_renewal_time,omitzero"`

	// RevokeAttempts counts failed revocations; non-zero means the
	// revocation is pending (Renew refuses it). NextAttempt is when Run
	// tries again. LastError is the engine's last error message.
	RevokeAttempts int       `json:"revoke_attempts,omitempty"`
	NextAttempt    time.Time `json:"next_attempt,omitzero"`
	LastError      string    `json:"last_error,omitempty"`
	// Irrevocable is set after MaxAttempts failures: Run stops retrying and
	// Manager.Irrevocable lists the lease until it is revoked (Revoke tries
	// the engine again) or forgotten (RevokePrefix with force).
	Irrevocable bool `json:"irrevocable,omitempty"`

	// raw is the stored JSON this entry was decoded from, if it was read
	// from storage; never modified.
	raw []byte
}

// Secret returns the lease's secret as the engine gets it on renew and
// revoke requests (Request.Secret), with LeaseID and IssueTime filled in.
func (e *Entry) Secret() *logical.Secret {
	return &logical.Secret{
		TTL:          e.TTL,
		MaxTTL:       e.MaxTTL,
		Renewable:    e.Renewable,
		InternalData: cloneMap(e.InternalData),
		LeaseID:      e.ID,
		IssueTime:    e.IssueTime,
	}
}

// Pending reports whether a revocation has failed and is being retried.
func (e *Entry) Pending() bool { return e.RevokeAttempts > 0 && !e.Irrevocable }

// due is when Run must next look at the lease: its next revocation attempt
// if one failed, else its expiry. The expiry index key is filed under it.
func (e *Entry) due() time.Time {
	if !e.NextAttempt.IsZero() {
		return e.NextAttempt
	}
	return e.ExpireTime
}

// maxExpire is the latest the lease may live to, zero when uncapped.
func (e *Entry) maxExpire() time.Time {
	if e.MaxTTL <= 0 {
		return time.Time{}
	}
	return e.IssueTime.Add(e.MaxTTL)
}

// clone returns a deep copy, so callers never share maps with the manager
// or with each other.
func (e *Entry) clone() *Entry {
	c := *e
	c.raw = nil // c may be modified
	c.InternalData = cloneMap(e.InternalData)
	c.Data = cloneMap(e.Data)
	return &c
}

func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = cloneValue(v)
	}
	return out
}

func cloneValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return cloneMap(v)
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = cloneValue(x)
		}
		return out
	default:
		return v
	}
}

// String returns a redacted description: no lease ID, token hash or data.
func (e Entry) String() string {
	return fmt.Sprintf("lease.Entry{mount=%q path=%q renewable=%t expire=%s attempts=%d irrevocable=%t}",
		e.MountPoint, e.Path, e.Renewable, e.ExpireTime.UTC().Format(time.RFC3339), e.RevokeAttempts, e.Irrevocable)
}

// Format implements fmt.Formatter so that every verb, including %#v,
// prints the redacted String form.
func (e Entry) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, e.String()) }

// LogValue implements slog.LogValuer with the same redacted fields.
func (e Entry) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("mount", e.MountPoint),
		slog.String("path", e.Path),
		slog.Time("expire_time", e.ExpireTime),
		slog.Int("revoke_attempts", e.RevokeAttempts),
		slog.Bool("irrevocable", e.Irrevocable),
	)
}
