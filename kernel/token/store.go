package token

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// Storage keys and prefixes; see doc.go for the layout.
const (
	saltKey        = "salt"
	idPrefix       = "id/"
	accessorPrefix = "accessor/"
	parentPrefix   = "parent/"
	expiryPrefix   = "expiry/"
	mountPrefix    = "mount/"

	saltLen     = 32
	tokenPrefix = "s."
	randomLen   = 24

	// defaultMaxTTL is Vault's 768h (32 days) system default and max lease TTL.
	defaultMaxTTL = 768 * time.Hour

	// maxChainDepth bounds the parent walk of a lookup; a longer chain can only
	// come from corrupt storage.
	maxChainDepth = 1024

	// revokeQueueLen bounds the work lookups hand to Run; overflow is
	// dropped (the sweeper finds expired tokens anyway).
	revokeQueueLen = 1024

	// lockStripes is the number of per-token write locks.
	lockStripes = 256
)

// marker is the value of index keys whose content is their name.
var marker = []byte("{}")

// Options configures a Store. The zero value is usable.
type Options struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// DefaultTTL and MaxTTL are the system default and max lease TTLs;
	// 0 means 768h. DefaultTTL is capped at MaxTTL.
	DefaultTTL, MaxTTL time.Duration
	// Logger receives the sweeper's errors; nil discards them.
	Logger *slog.Logger
	// RenewAuth is asked before a token issued by an auth mount (one with
	// MountAccessor set) is renewed: it returns the auth method's answer,
	// whose TTL, MaxTTL and Period then apply, or an error that refuses
	// the renewal. Nil means such tokens renew like any other.
	RenewAuth func(ctx context.Context, e *Entry) (*logical.Auth, error)
	// Revoked is called after a token is deleted (by revocation, expiry
	// or the revocation of an ancestor), with its HashedID, outside any
	// lock: the kernel revokes the token's leases there. Its errors are
	// the callee's to handle (the lease manager retries).
	Revoked func(ctx context.Context, hashedID string)
}

// withDefaults is the one place options are validated and defaulted.
func (o Options) withDefaults() (Options, error) {
	if o.DefaultTTL < 0 || o.MaxTTL < 0 {
		return o, fmt.Errorf("token: negative default or max TTL")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxTTL == 0 {
		o.MaxTTL = defaultMaxTTL
	}
	if o.DefaultTTL == 0 {
		o.DefaultTTL = defaultMaxTTL
	}
	if o.DefaultTTL > o.MaxTTL {
		o.DefaultTTL = o.MaxTTL
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Store is the kernel's token store. All methods are safe for concurrent use.
type Store struct {
	view       logical.Storage
	salt       []byte
	now        func() time.Time
	defaultTTL time.Duration
	maxTTL     time.Duration
	logger     *slog.Logger
	backend    *framework.Backend
	renewAuth  func(ctx context.Context, e *Entry) (*logical.Auth, error)
	revoked    func(ctx context.Context, hashedID string)

	// cache holds decoded entries; see entryCache.
	cache *entryCache

	// revokeQ carries hashed IDs that lookups found invalid to Run, which
	// revokes them. Sends never block.
	revokeQ chan string

	// locks serialise read-modify-write of one id/<hashed> entry (and its
	// deletion). A goroutine holds at most one at a time.
	locks [lockStripes]sync.Mutex

	// rolesMu serialises read-modify-write of roles/<name> entries.
	rolesMu sync.Mutex

	mu sync.Mutex // protects the fields below
	// nextDue is the earliest expiry bucket (unix seconds) the sweeper has
	// not yet processed; math.MaxInt64 when none is known.
	nextDue int64
	// lastFull is when the sweeper last listed the index regardless of nextDue.
	lastFull time.Time
}

// NewStore opens the token store kept in view, creating its HMAC salt on
// first use.
func NewStore(ctx context.Context, view logical.Storage, opts Options) (*Store, error) {
	if view == nil {
		return nil, fmt.Errorf("token: nil storage view")
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	salt, err := loadOrCreateSalt(ctx, view)
	if err != nil {
		return nil, err
	}
	s := &Store{
		view:       view,
		salt:       salt,
		now:        opts.Now,
		defaultTTL: opts.DefaultTTL,
		maxTTL:     opts.MaxTTL,
		logger:     opts.Logger,
		renewAuth:  opts.RenewAuth,
		revoked:    opts.Revoked,
		revokeQ:    make(chan string, revokeQueueLen),
		cache:      newEntryCache(),
		nextDue:    0, // unknown: the first sweep lists the index
	}
	s.backend = s.newBackend()
	return s, nil
}

func loadOrCreateSalt(ctx context.Context, view logical.Storage) ([]byte, error) {
	se, err := view.Get(ctx, saltKey)
	if err != nil {
		return nil, fmt.Errorf("token: read salt: %w", err)
	}
	if se != nil {
		if len(se.Value) != saltLen {
			return nil, fmt.Errorf("token: stored salt has %d bytes, want %d", len(se.Value), saltLen)
		}
		return se.Value, nil
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("token: generate salt: %w", err)
	}
	if err := view.Put(ctx, &logical.StorageEntry{Key: saltKey, Value: salt}); err != nil {
		return nil, fmt.Errorf("token: write salt: %w", err)
	}
	return salt, nil
}

// Backend returns the framework backend serving auth/token/.
func (s *Store) Backend() logical.Backend { return s.backend }

// hash is hex HMAC-SHA256(salt, v).
func (s *Store) hash(v string) string {
	m := hmac.New(sha256.New, s.salt)
	m.Write([]byte(v))
	return hex.EncodeToString(m.Sum(nil))
}

func (s *Store) accessorKey(accessor string) string {
	return accessorPrefix + s.hash("accessor/"+accessor)
}

func expiryKey(t time.Time, hashed string) string {
	return fmt.Sprintf("%s%020d/%s", expiryPrefix, t.Unix(), hashed)
}

func parentKey(parent, child string) string { return parentPrefix + parent + "/" + child }

func mountKey(accessor, hashed string) string { return mountPrefix + accessor + "/" + hashed }

// lockFor returns the write lock of a hashed ID.
func (s *Store) lockFor(hashed string) *sync.Mutex {
	var i int
	if len(hashed) >= 2 {
		if b, err := hex.DecodeString(hashed[:2]); err == nil {
			i = int(b[0])
		}
	}
	return &s.locks[i%lockStripes]
}

// clock returns the current time without a monotonic reading, in UTC, so
// entries compare equal before and after a storage round trip.
func (s *Store) clock() time.Time { return s.now().Round(0).UTC() }

// accessorIndex is the value stored at accessor/<hash>.
type accessorIndex struct {
	HashedID string `json:"hashed_id"`
	Accessor string `json:"accessor"`
}

// get reads id/<hashed>; (nil, nil) when absent.
func (s *Store) get(ctx context.Context, hashed string) (*Entry, error) {
	cached, gen := s.cache.get(hashed)
	if cached != nil {
		return cached, nil
	}
	se, err := s.view.Get(ctx, idPrefix+hashed)
	if err != nil {
		return nil, fmt.Errorf("token: read entry: %w", err)
	}
	if se == nil {
		return nil, nil
	}
	e := new(Entry)
	if err := json.Unmarshal(se.Value, e); err != nil {
		return nil, fmt.Errorf("token: decode entry: %w", err)
	}
	e.HashedID = hashed
	s.cache.add(e, gen)
	return e, nil
}

func (s *Store) put(ctx context.Context, e *Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("token: encode entry: %w", err)
	}
	if err := s.view.Put(ctx, &logical.StorageEntry{Key: idPrefix + e.HashedID, Value: b}); err != nil {
		s.cache.invalidate(e.HashedID)
		return fmt.Errorf("token: write entry: %w", err)
	}
	s.cache.set(e)
	return nil
}

// randomBase62 returns n characters drawn uniformly from [0-9A-Za-z] with
// crypto/rand (rejection sampling, no modulo bias).
func randomBase62(n int) (string, error) {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/2)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("token: random: %w", err)
		}
		for _, b := range buf {
			if b >= 248 { // 248 = 4*62
				continue
			}
			out = append(out, alphabet[b%62])
			if len(out) == n {
				break
			}
		}
	}
	return string(out), nil
}

// sanitizePolicies trims, lower-cases, drops empty names, sorts and
// deduplicates; a list holding "root" becomes exactly ["root"]. The result
// is never nil.
func sanitizePolicies(in []string) []string {
	out := make([]string, 0, len(in))
	for _, p := range in {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "" {
			continue
		}
		if p == "root" {
			return []string{"root"}
		}
		out = append(out, p)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Create stores a new token and returns the stored entry with ID set.
//
// e.ID may be preset (the kernel's root token, or a root caller's choice);
// otherwise "s." + 24 base62 characters are generated. Create fills in
// HashedID, Accessor, CreationTime, ExpireTime and defaults (DisplayName
// "token", Path "auth/token/create", Type "service"), computes the effective
// TTL (the default TTL for non-root tokens without one; a periodic token
// gets its period; capped by ExplicitMaxTTL and, unless root, MaxTTL) and
// makes tokens without expiry non-renewable. If e.Parent is set, the parent
// must be valid. Create does not modify e.
func (s *Store) Create(ctx context.Context, in *Entry) (*Entry, error) {
	if in == nil {
		return nil, fmt.Errorf("%w: nil entry", ErrInvalidEntry)
	}
	e := in.clone()
	switch e.Type {
	case "", TypeService:
		e.Type = TypeService
	default:
		return nil, fmt.Errorf("%w: unsupported token type", ErrInvalidEntry)
	}
	if e.NumUses < 0 || e.TTL < 0 || e.ExplicitMaxTTL < 0 || e.Period < 0 {
		return nil, fmt.Errorf("%w: negative num_uses, ttl, explicit_max_ttl or period", ErrInvalidEntry)
	}
	e.Policies = sanitizePolicies(e.Policies)
	if e.DisplayName == "" {
		e.DisplayName = "token"
	}
	if e.Path == "" {
		e.Path = "auth/token/create"
	}
	if len(e.Meta) == 0 {
		e.Meta = nil
	}

	if e.ID == "" {
		r, err := randomBase62(randomLen)
		if err != nil {
			return nil, err
		}
		e.ID = tokenPrefix + r
	}
	acc, err := randomBase62(randomLen)
	if err != nil {
		return nil, err
	}
	e.Accessor = acc
	e.HashedID = s.hash(e.ID)

	now := s.clock()
	e.CreationTime = now
	s.applyTTL(e)
	if e.TTL > 0 {
		e.ExpireTime = now.Add(e.TTL)
	} else {
		e.ExpireTime = time.Time{}
		e.Renewable = false
	}

	if e.Parent != "" {
		p, err := s.loadValid(ctx, e.Parent)
		if err != nil {
			return nil, err
		}
		if p == nil {
			return nil, ErrParentInvalid
		}
	}

	if err := s.writeNew(ctx, e); err != nil {
		return nil, err
	}

	// Re-check the parent now that the child is in the parent index: a tree
	// revocation that marked the parent before our index write could not
	// have seen the child, so the child must not survive.
	if e.Parent != "" {
		p, err := s.loadValid(ctx, e.Parent)
		if err == nil && p == nil {
			err = ErrParentInvalid
		}
		if err != nil {
			if rerr := s.revokeTree(ctx, e.HashedID); rerr != nil {
				s.logger.Error("token: revoking a child of a revoked parent failed", "error", rerr)
			}
			return nil, err
		}
	}
	if !e.ExpireTime.IsZero() {
		s.noteExpiry(e.ExpireTime)
	}
	return e, nil
}

// applyTTL computes e.TTL (and caps e.Period) at creation, following
// Vault's CalculateTTL with root tokens exempt from the system max.
func (s *Store) applyTTL(e *Entry) {
	root := e.IsRoot()
	var limit time.Duration // 0 = no cap
	if !root {
		limit = s.maxTTL
	}
	limit = minPositive(limit, e.MaxTTL)
	limit = minPositive(limit, e.ExplicitMaxTTL)
	switch {
	case e.Period > 0:
		if limit > 0 && e.Period > limit {
			e.Period = limit
		}
		e.TTL = e.Period
	case e.TTL == 0 && !root:
		e.TTL = s.defaultTTL
	}
	if limit > 0 && (e.TTL == 0 || e.TTL > limit) {
		e.TTL = limit
	}
}

// minPositive returns the lesser of a and b, where 0 means "no limit".
func minPositive(a, b time.Duration) time.Duration {
	if a == 0 || (b > 0 && b < a) {
		return b
	}
	return a
}

// writeNew writes a new entry's indexes and then the entry, under its lock:
// in one atomic batch when the storage supports it (one durable commit per
// token instead of four), else one by one, deleting (best effort) the
// index keys it wrote if a later write fails.
func (s *Store) writeNew(ctx context.Context, e *Entry) (err error) {
	l := s.lockFor(e.HashedID)
	l.Lock()
	defer l.Unlock()
	old, err := s.view.Get(ctx, idPrefix+e.HashedID)
	if err != nil {
		return fmt.Errorf("token: read entry: %w", err)
	}
	if old != nil {
		return ErrTokenExists
	}
	var ops []logical.StorageOp
	if e.Parent != "" {
		ops = append(ops, logical.StorageOp{Key: parentKey(e.Parent, e.HashedID), Value: marker})
	}
	if e.MountAccessor != "" {
		ops = append(ops, logical.StorageOp{Key: mountKey(e.MountAccessor, e.HashedID), Value: marker})
	}
	ai, err := json.Marshal(accessorIndex{HashedID: e.HashedID, Accessor: e.Accessor})
	if err != nil {
		return fmt.Errorf("token: encode accessor index: %w", err)
	}
	ops = append(ops, logical.StorageOp{Key: s.accessorKey(e.Accessor), Value: ai})
	if !e.ExpireTime.IsZero() {
		ops = append(ops, logical.StorageOp{Key: expiryKey(e.ExpireTime, e.HashedID), Value: marker})
	}

	if bs, ok := s.view.(logical.BatchStorage); ok {
		b, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("token: encode entry: %w", err)
		}
		ops = append(ops, logical.StorageOp{Key: idPrefix + e.HashedID, Value: b}) // the entry last
		if err := bs.Batch(ctx, ops); err != nil {
			return fmt.Errorf("token: write entry: %w", err)
		}
		s.cache.set(e)
		return nil
	}

	var written []string
	defer func() {
		if err == nil {
			return
		}
		for _, k := range written {
			_ = s.view.Delete(ctx, k)
		}
	}()
	for _, op := range ops {
		if err := s.view.Put(ctx, &logical.StorageEntry{Key: op.Key, Value: op.Value}); err != nil {
			return fmt.Errorf("token: write index: %w", err)
		}
		written = append(written, op.Key)
	}
	return s.put(ctx, e)
}

// Lookup returns the valid token with this ID, with ID set, or (nil, nil)
// when it is unknown, expired, exhausted, revoked, or has an invalid
// ancestor. Invalid tokens found here are handed to Run for revocation.
func (s *Store) Lookup(ctx context.Context, id string) (*Entry, error) {
	if id == "" {
		return nil, nil
	}
	e, err := s.loadValid(ctx, s.hash(id))
	if err != nil || e == nil {
		return nil, err
	}
	e.ID = id
	return e, nil
}

// LookupAccessor returns the valid token with this accessor, with ID "",
// or (nil, nil) as Lookup does.
func (s *Store) LookupAccessor(ctx context.Context, accessor string) (*Entry, error) {
	if accessor == "" {
		return nil, nil
	}
	hashed, err := s.hashedByAccessor(ctx, accessor)
	if err != nil || hashed == "" {
		return nil, err
	}
	e, err := s.loadValid(ctx, hashed)
	if err != nil || e == nil {
		return nil, err
	}
	if e.Accessor != accessor { // index pointing at another entry: corrupt or stale
		return nil, nil
	}
	return e, nil
}

func (s *Store) hashedByAccessor(ctx context.Context, accessor string) (string, error) {
	se, err := s.view.Get(ctx, s.accessorKey(accessor))
	if err != nil {
		return "", fmt.Errorf("token: read accessor index: %w", err)
	}
	if se == nil {
		return "", nil
	}
	var ai accessorIndex
	if err := se.DecodeJSON(&ai); err != nil {
		return "", fmt.Errorf("token: decode accessor index: %w", err)
	}
	return ai.HashedID, nil
}

// loadValid reads the entry and checks it and its ancestors: the entry,
// or nil when it or any ancestor is not valid.
func (s *Store) loadValid(ctx context.Context, hashed string) (*Entry, error) {
	e, ok, err := s.checkChain(ctx, hashed)
	if err == nil && !ok && e != nil {
		// The entry is fine but an ancestor is not. Read once more: a
		// concurrent revoke-orphan re-parents children before it revokes
		// their parent, so we may have read the entry just before that.
		e, ok, err = s.checkChain(ctx, hashed)
	}
	if err != nil || !ok {
		return nil, err
	}
	return e, nil
}

// checkChain reads hashed and walks its parents. It returns the entry and
// whether the whole chain is valid; e is nil if the entry itself is absent
// or invalid (no retry helps then).
func (s *Store) checkChain(ctx context.Context, hashed string) (*Entry, bool, error) {
	now := s.clock()
	e, err := s.get(ctx, hashed)
	if err != nil || e == nil {
		return nil, false, err
	}
	if !e.usableAt(now) {
		s.enqueueRevoke(hashed)
		return nil, false, nil
	}
	child, parent := hashed, e.Parent
	for depth := 0; parent != ""; depth++ {
		if depth >= maxChainDepth {
			return nil, false, fmt.Errorf("token: parent chain longer than %d", maxChainDepth)
		}
		p, err := s.get(ctx, parent)
		if err != nil {
			return nil, false, err
		}
		switch {
		case p == nil:
			s.enqueueRevoke(child) // dangling: revokeIfInvalid re-checks
			return e, false, nil
		case !p.usableAt(now):
			s.enqueueRevoke(parent)
			return e, false, nil
		}
		child, parent = parent, p.Parent
	}
	return e, true, nil
}

func (s *Store) enqueueRevoke(hashed string) {
	select {
	case s.revokeQ <- hashed:
	default:
	}
}

// noteExpiry tells the sweeper an expiry index key exists for t. It is
// called after the key is written.
func (s *Store) noteExpiry(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := t.Unix(); u < s.nextDue {
		s.nextDue = u
	}
}

// Renew extends an expiring, renewable token and returns the updated entry
// (ID copied from e). Tokens without expiry are returned unchanged.
//
// A periodic token's new expiry is now+Period, capped by CreationTime +
// ExplicitMaxTTL; any other token's is now + (increment, or else its
// creation TTL), capped by CreationTime + min(MaxTTL (not for root),
// ExplicitMaxTTL).
//
// A token created through a role first takes the role's current period
// and explicit max TTL (see applyRole); if the role no longer exists,
// Renew fails with ErrRoleNotFound.
func (s *Store) Renew(ctx context.Context, e *Entry, increment time.Duration) (*Entry, error) {
	if e == nil {
		return nil, ErrNotFound
	}
	v, err := s.loadValid(ctx, e.HashedID)
	if err != nil {
		return nil, err
	} else if v == nil {
		return nil, ErrNotFound
	}
	// Ask the issuing auth method first, outside the lock: it is a plugin
	// call and may refuse (user deleted, policies changed).
	var answer *logical.Auth
	if v.MountAccessor != "" && s.renewAuth != nil && v.Renewable && !v.ExpireTime.IsZero() {
		if answer, err = s.renewAuth(ctx, v); err != nil {
			return nil, err
		}
	}

	l := s.lockFor(e.HashedID)
	l.Lock()
	defer l.Unlock()
	cur, err := s.get(ctx, e.HashedID)
	if err != nil {
		return nil, err
	}
	now := s.clock()
	if cur == nil || !cur.usableAt(now) {
		return nil, ErrNotFound
	}
	cur.ID = e.ID
	if cur.ExpireTime.IsZero() {
		return cur, nil
	}
	if !cur.Renewable {
		return nil, ErrNotRenewable
	}
	changed, err := s.applyRole(ctx, cur)
	if err != nil {
		return nil, err
	}
	if answer != nil {
		if applyAuthAnswer(cur, answer) {
			changed = true
		}
	}

	var ttl time.Duration
	var maxValid time.Time
	if cur.Period > 0 {
		// A periodic token lives as long as it is renewed (up to its
		// explicit max), but each period is capped like any TTL: a period
		// raised after creation (by a role or an auth method) must not
		// outgrow the system, mount or explicit maximum.
		var limit time.Duration
		if !cur.IsRoot() {
			limit = s.maxTTL
		}
		limit = minPositive(limit, cur.MaxTTL)
		limit = minPositive(limit, cur.ExplicitMaxTTL)
		ttl = minPositive(cur.Period, limit)
		if cur.ExplicitMaxTTL > 0 {
			maxValid = cur.CreationTime.Add(cur.ExplicitMaxTTL)
		}
	} else {
		ttl = cur.TTL
		if increment > 0 {
			ttl = increment
		}
		var limit time.Duration
		if !cur.IsRoot() {
			limit = s.maxTTL
		}
		limit = minPositive(limit, cur.MaxTTL)
		limit = minPositive(limit, cur.ExplicitMaxTTL)
		if limit > 0 {
			maxValid = cur.CreationTime.Add(limit)
		}
	}
	exp := now.Add(ttl)
	if !maxValid.IsZero() && exp.After(maxValid) {
		exp = maxValid
	}
	if exp.Equal(cur.ExpireTime) {
		if changed {
			if err := s.put(ctx, cur); err != nil {
				return nil, err
			}
		}
		return cur, nil
	}
	old := cur.ExpireTime
	cur.ExpireTime = exp
	if err := s.view.Put(ctx, &logical.StorageEntry{Key: expiryKey(exp, cur.HashedID), Value: marker}); err != nil {
		return nil, fmt.Errorf("token: write expiry index: %w", err)
	}
	if err := s.put(ctx, cur); err != nil {
		return nil, err
	}
	s.noteExpiry(exp)
	if expiryKey(old, cur.HashedID) != expiryKey(exp, cur.HashedID) {
		if err := s.view.Delete(ctx, expiryKey(old, cur.HashedID)); err != nil {
			// A stale index key is harmless: the sweeper drops it.
			s.logger.Warn("token: deleting a stale expiry index key failed", "error", err)
		}
	}
	return cur, nil
}

// applyAuthAnswer takes the TTL, max TTL and period an auth method
// answered to a renewal. The max TTL may only shrink and only periodic
// tokens take a period: a method cannot extend a token past the limits it
// was issued with. It reports whether e changed.
func applyAuthAnswer(e *Entry, a *logical.Auth) bool {
	before := [3]time.Duration{e.TTL, e.MaxTTL, e.Period}
	if a.TTL > 0 {
		e.TTL = a.TTL
	}
	e.MaxTTL = minPositive(e.MaxTTL, a.MaxTTL)
	if e.Period > 0 {
		// Only a periodic token takes a new period: a renewal must not
		// turn a token with a max TTL into one without.
		e.Period = a.Period
	}
	if e.Period > 0 && e.MaxTTL > 0 && e.Period > e.MaxTTL {
		e.Period = e.MaxTTL
	}
	return before != [3]time.Duration{e.TTL, e.MaxTTL, e.Period}
}

// UseToken spends one use of a use-limited token. It returns the entry
// valid for the current request (ID copied from e, NumUses = uses left), or
// nil when the token has no use left or is no longer valid. When this use
// is the last one the token (and its children) is revoked before UseToken
// returns; the current request still proceeds with the returned entry.
// Tokens with unlimited uses are returned as they are, without I/O.
func (s *Store) UseToken(ctx context.Context, e *Entry) (*Entry, error) {
	cur, last, err := s.SpendUse(ctx, e)
	if err != nil || cur == nil {
		return nil, err
	}
	if last {
		if err := s.revokeTree(ctx, cur.HashedID); err != nil {
			return nil, err
		}
	}
	return cur, nil
}

// SpendUse spends one use of a use-limited token, like UseToken, but when
// this use is the last one (last = true) it only marks the token for
// revocation: from then on every lookup of it, or of a descendant, fails,
// and no child can be created under it. The caller revokes it (Revoke)
// once the request that spent the use is done: until then the token's
// entry, and what the kernel keys by it (its cubbyhole, its leases), still
// exist for that request, as in Vault, which revokes an exhausted token
// after the request. Of concurrent calls for a token with one use left,
// exactly one gets the entry.
func (s *Store) SpendUse(ctx context.Context, e *Entry) (cur *Entry, last bool, err error) {
	if e == nil {
		return nil, false, nil
	}
	if e.NumUses == 0 {
		return e, false, nil
	}
	l := s.lockFor(e.HashedID)
	l.Lock()
	defer l.Unlock()
	cur, err = s.get(ctx, e.HashedID)
	if err != nil {
		return nil, false, err
	}
	if cur == nil || !cur.usableAt(s.clock()) {
		return nil, false, nil
	}
	cur.ID = e.ID
	if cur.NumUses == 0 {
		return cur, false, nil
	}
	left := cur.NumUses - 1
	cur.NumUses = left
	if left == 0 {
		cur.NumUses = revocationPending // later uses and lookups fail from here on
	}
	if err := s.put(ctx, cur); err != nil {
		return nil, false, err
	}
	cur.NumUses = left
	return cur, left == 0, nil
}

// accessors returns the accessors of all stored tokens, sorted.
func (s *Store) accessors(ctx context.Context) ([]string, error) {
	keys, err := s.view.List(ctx, accessorPrefix)
	if err != nil {
		return nil, fmt.Errorf("token: list accessors: %w", err)
	}
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if strings.HasSuffix(k, "/") {
			continue
		}
		se, err := s.view.Get(ctx, accessorPrefix+k)
		if err != nil {
			return nil, fmt.Errorf("token: read accessor index: %w", err)
		}
		if se == nil {
			continue
		}
		var ai accessorIndex
		if err := se.DecodeJSON(&ai); err != nil {
			return nil, fmt.Errorf("token: decode accessor index: %w", err)
		}
		out = append(out, ai.Accessor)
	}
	slices.Sort(out)
	return out, nil
}

// remaining is the rounded number of seconds until the entry expires at
// now, 0 when it never expires or has expired.
func remaining(e *Entry, now time.Time) int64 {
	if e.ExpireTime.IsZero() {
		return 0
	}
	d := e.ExpireTime.Sub(now).Round(time.Second)
	if d <= 0 {
		return 0
	}
	return int64(d / time.Second)
}

// Close forgets the salt and the cached entries; the store is unusable
// afterwards. The kernel calls it when sealing.
func (s *Store) Close() {
	clear(s.salt)
	s.cache.mu.Lock()
	s.cache.m = map[string]*Entry{}
	s.cache.gen++
	s.cache.mu.Unlock()
}

// ExistsHashed reports whether a token entry with this HashedID is stored
// (valid or not yet swept); the lease manager's tidy uses it to find leases
// whose token is gone.
func (s *Store) ExistsHashed(ctx context.Context, hashed string) (bool, error) {
	e, err := s.get(ctx, hashed)
	return e != nil, err
}
