package token

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

// TypeService is the only token type Ward issues so far.
const TypeService = "service"

// revocationPending is the NumUses value of an entry whose revocation has
// started (or whose last use was spent): it fails every lookup.
const revocationPending = -1

// Entry is one token as the store knows it. It is stored as JSON without ID.
//
// Entry never prints its ID or Accessor: it implements fmt.Formatter and
// slog.LogValuer with a redacted form, so passing one to a logger or to
// fmt.Errorf cannot leak a credential.
type Entry struct {
	// ID is the token itself. It is set only on the Entry returned by Create
	// and Lookup (and by Renew/UseToken, copied from their argument); it is
	// never stored.
	ID string `json:"-"`
	// HashedID is hex HMAC-SHA256(salt, ID): the storage key.
	HashedID string `json:"hashed_id"`
	Accessor string `json:"accessor"`
	// Policies are sorted and deduplicated; root tokens have exactly ["root"].
	Policies []string          `json:"policies"`
	Meta     map[string]string `json:"meta,omitempty"`
	// DisplayName is "token" unless set; auth/token/create sets
	// "token-<display_name>" as Vault does.
	DisplayName string `json:"display_name"`
	// NumUses is the number of uses left; 0 means unlimited.
	NumUses int `json:"num_uses"`
	// Parent is the HashedID of the parent token, "" for orphans.
	Parent string `json:"parent,omitempty"`
	// Path is the path that created the token ("auth/token/create").
	Path string `json:"path"`
	// Role is the name of the token role the token was created through
	// (auth/token/create/<role>), "" for none.
	Role         string    `json:"role,omitempty"`
	CreationTime time.Time `json:"creation_time"`
	// TTL is the effective TTL given at creation (0 = none).
	TTL            time.Duration `json:"ttl"`
	ExplicitMaxTTL time.Duration `json:"explicit_max_ttl"`
	Period         time.Duration `json:"period"`
	Renewable      bool          `json:"renewable"`
	// ExpireTime is when the token stops working; zero means never.
	ExpireTime time.Time `json:"expire_time"`
	Type       string    `json:"type"`

	// MaxTTL caps the token's lifetime (from CreationTime) like
	// ExplicitMaxTTL, but comes from the issuing auth mount's tuning and
	// the method's answer; 0 means the system maximum only.
	MaxTTL time.Duration `json:"max_ttl,omitempty"`
	// BoundCIDRs, when set, are the only client addresses that may use
	// the token.
	BoundCIDRs []string `json:"bound_cidrs,omitempty"`
	// MountAccessor is the accessor of the auth mount that issued the
	// token at login; "" for tokens from auth/token.
	MountAccessor string `json:"mount_accessor,omitempty"`
	// Auth is what the auth method answered at login, kept for renewals
	// (which send it back to the method). Never shown to clients.
	Auth *logical.Auth `json:"auth,omitempty"`
}

// IsRoot reports whether the token carries the root policy.
func (e *Entry) IsRoot() bool {
	return e != nil && slices.Contains(e.Policies, "root")
}

// clone returns a deep copy, so callers never share maps or slices with
// another caller's entry.
func (e *Entry) clone() *Entry {
	c := *e
	c.Policies = slices.Clone(e.Policies)
	c.BoundCIDRs = slices.Clone(e.BoundCIDRs)
	if e.Auth != nil {
		a := *e.Auth
		a.Policies = slices.Clone(a.Policies)
		a.BoundCIDRs = slices.Clone(a.BoundCIDRs)
		a.Metadata = maps.Clone(a.Metadata)
		a.InternalData = maps.Clone(a.InternalData)
		if a.Alias != nil {
			al := *a.Alias
			al.Metadata = maps.Clone(al.Metadata)
			a.Alias = &al
		}
		c.Auth = &a
	}
	if e.Meta != nil {
		c.Meta = make(map[string]string, len(e.Meta))
		for k, v := range e.Meta {
			c.Meta[k] = v
		}
	}
	return &c
}

// expiredAt reports whether the entry's expiry has passed at now.
func (e *Entry) expiredAt(now time.Time) bool {
	return !e.ExpireTime.IsZero() && !now.Before(e.ExpireTime)
}

// usableAt reports whether the entry itself (not its ancestors) is valid.
func (e *Entry) usableAt(now time.Time) bool {
	return e.NumUses >= 0 && !e.expiredAt(now)
}

// String returns a redacted description: no token, no accessor.
func (e Entry) String() string {
	return fmt.Sprintf("token.Entry{policies=%s display_name=%q path=%q orphan=%t type=%q}",
		strings.Join(e.Policies, ","), e.DisplayName, e.Path, e.Parent == "", e.Type)
}

// Format implements fmt.Formatter so that every verb, including %#v and %d,
// prints the redacted String form.
func (e Entry) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, e.String()) }

// LogValue implements slog.LogValuer with the same redacted fields.
func (e Entry) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("policies", e.Policies),
		slog.String("display_name", e.DisplayName),
		slog.String("path", e.Path),
		slog.Bool("orphan", e.Parent == ""),
		slog.String("type", e.Type),
	)
}

type ctxKey struct{}

// NewContext returns ctx carrying the authenticated caller's entry. The
// kernel calls it after authenticating a request and before dispatching to
// any backend.
func NewContext(ctx context.Context, e *Entry) context.Context {
	return context.WithValue(ctx, ctxKey{}, e)
}

// FromContext returns the caller's entry put there by NewContext.
func FromContext(ctx context.Context) (*Entry, bool) {
	e, ok := ctx.Value(ctxKey{}).(*Entry)
	return e, ok && e != nil
}
