package lease

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

// Storage keys and prefixes; see doc.go for the layout.
const (
	idPrefix          = "id/"
	expiryPrefix      = "expiry/"
	tokenPrefix       = "token/"
	irrevocablePrefix = "irrevocable/"

	// The expiry index is three levels of unix-second folders: a window of
	// 2^16 s (~18 h), a window of 2^8 s, then the second itself. Every List
	// of the index returns at most 256 children below the top level, and
	// the top level grows with the time span leases cover, not their number.
	l1Width = 1 << 16
	l2Width = 1 << 8

	// randomLen is the length of the base62 random part of a lease ID
	// (~190 bits).
	randomLen = 32

	// lockStripes is the number of per-lease write locks.
	lockStripes = 256

	// maxErrorLen bounds the engine error kept in Entry.LastError.
	maxErrorLen = 512

	// tasksPerCall is how many background revocations may be in progress
	// per engine call slot (see Manager.tasks).
	tasksPerCall = 16
)

// Backend is what the manager needs from the kernel: the route to the
// secret engine that issued a lease.
type Backend interface {
	// RenewSecret asks the engine to renew the lease (a RenewOperation with
	// Request.Secret = e.Secret()). It answers the Secret to apply (its TTL;
	// 0 means "the increment, or else the current TTL") or refuses with an
	// error. The kernel may cap the answer with the mount's tuning.
	RenewSecret(ctx context.Context, e *Entry, increment time.Duration) (*logical.Secret, error)
	// RevokeSecret asks the engine to revoke the lease (a RevokeOperation).
	// It must be idempotent: a failure is retried, and a revocation may be
	// repeated after a crash.
	RevokeSecret(ctx context.Context, e *Entry) error
}

// Options configures a Manager. Only Backend is required.
type Options struct {
	// Backend routes renewals and revocations to secret engines.
	Backend Backend
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives revocation failures and sweeper errors (never a
	// lease ID, token hash or secret data); nil discards them.
	Logger *slog.Logger
	// Interval is how often Run checks whether anything is due; default
	// 250ms. A check with nothing due does no I/O.
	Interval time.Duration
	// RetryBase and RetryMax bound the exponential backoff between failed
	// revocations (equal jitter: a delay d becomes d/2 + rand[0, d/2]);
	// defaults 5s and 5m.
	RetryBase, RetryMax time.Duration
	// MaxAttempts is how many failed revocations make a lease irrevocable;
	// default 10 (10 to 20 minutes of retries with the default backoff).
	MaxAttempts int
	// Concurrency bounds the Backend.RevokeSecret calls running at once,
	// across the whole Manager; default 16. Background work (Run,
	// RevokePrefix, RevokeByToken, Tidy) keeps at most 16 times as many
	// revocations in progress, so their storage commits overlap; a million
	// due leases never means more than that many goroutines.
	Concurrency int
	// TokenExists, when set, lets Tidy revoke leases whose creating token
	// is gone (a crash between revoking a token and its leases).
	TokenExists func(ctx context.Context, tokenHash string) (bool, error)
}

// withDefaults is the one place options are validated and defaulted.
func (o Options) withDefaults() (Options, error) {
	if o.Backend == nil {
		return o, errors.New("lease: Options.Backend is required")
	}
	if o.Interval < 0 || o.RetryBase < 0 || o.RetryMax < 0 || o.MaxAttempts < 0 || o.Concurrency < 0 {
		return o, errors.New("lease: negative option")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Interval == 0 {
		o.Interval = 250 * time.Millisecond
	}
	if o.RetryBase == 0 {
		o.RetryBase = 5 * time.Second
	}
	if o.RetryMax == 0 {
		o.RetryMax = 5 * time.Minute
	}
	if o.RetryMax < o.RetryBase {
		o.RetryMax = o.RetryBase
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 10
	}
	if o.Concurrency == 0 {
		o.Concurrency = 16
	}
	return o, nil
}

// Registration is what the kernel registers when an engine answers a
// response with a Secret.
type Registration struct {
	// MountPoint is the engine's mount with its trailing slash
	// ("database/"); MountAccessor identifies the mount.
	MountPoint    string
	MountAccessor string
	// Path is the request path relative to the mount ("creds/readonly").
	Path string
	// Secret is the engine's Secret. Its TTL and MaxTTL are final: the
	// kernel applies the mount's and the system's defaults and caps before
	// registering. TTL must be positive; MaxTTL 0 means uncapped (the
	// kernel should always set one). LeaseID and IssueTime are ignored.
	Secret *logical.Secret
	// Data is request data the engine needs at revocation, if any.
	Data map[string]any
	// TokenHash identifies the creating token (opaque; no "/"), "" for none.
	TokenHash string
}

// Manager is the kernel's expiration manager. All methods are safe for
// concurrent use. It keeps no per-lease state in memory: everything lives
// in the storage view.
type Manager struct {
	view        logical.Storage
	backend     Backend
	now         func() time.Time
	logger      *slog.Logger
	interval    time.Duration
	retryBase   time.Duration
	retryMax    time.Duration
	maxAttempts int
	tokenExists func(ctx context.Context, tokenHash string) (bool, error)

	// calls bounds the Backend.RevokeSecret calls running at once; tasks
	// bounds the background revocations in progress (in an engine call,
	// waiting for one, or committing), so that storage commits of finished
	// revocations overlap and share syncs.
	calls, tasks chan struct{}

	// locks serialise read-modify-write of one lease's keys (by the
	// stripe of its hash). A goroutine holds at most one at a time and
	// never across a call to the Backend.
	locks [lockStripes]sync.Mutex

	mu sync.Mutex // protects the fields below
	// nextDue is the earliest expiry index second Run has not processed;
	// math.MaxInt64 when none is known, 0 when unknown (list the index).
	nextDue int64
	// lastFull is when Run last listed the index regardless of nextDue.
	lastFull time.Time
	// inflight holds the revocations under way, by lease hash, so
	// concurrent revocations of one lease call the engine once.
	inflight map[string]*call
	// expiring holds the expiry index keys Run's handlers are working on
	// (at most the tasks bound), so that Run, which does not wait for
	// them, never starts a second handler for one key.
	expiring map[string]struct{}
}

// call is one revocation in flight; err is set before done is closed.
type call struct {
	done chan struct{}
	err  error
}

// New returns a Manager over view, the barrier view the kernel reserves for
// leases. It does no I/O: nothing is loaded at unseal; Run reads the expiry
// index lazily, one due window at a time.
func New(view logical.Storage, opts Options) (*Manager, error) {
	if view == nil {
		return nil, errors.New("lease: nil storage view")
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Manager{
		view:        view,
		backend:     opts.Backend,
		now:         opts.Now,
		logger:      opts.Logger,
		interval:    opts.Interval,
		retryBase:   opts.RetryBase,
		retryMax:    opts.RetryMax,
		maxAttempts: opts.MaxAttempts,
		tokenExists: opts.TokenExists,
		calls:       make(chan struct{}, opts.Concurrency),
		tasks:       make(chan struct{}, opts.Concurrency*tasksPerCall),
		inflight:    map[string]*call{},
		expiring:    map[string]struct{}{},
	}, nil
}

// hashID names a lease inside index keys: hex of the first 16 bytes of
// SHA-256(id). Index keys hold the ID itself as their value.
func hashID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16])
}

func entryKey(id string) string { return idPrefix + id }

// expiryKey is expiry/<l1>/<l2>/<sec>/<hash>, each folder the unix second
// its window starts at, zero-padded to 11 digits so keys sort by time.
func expiryKey(t time.Time, h string) string {
	s := max(t.Unix(), 0)
	return fmt.Sprintf("%s%011d/%011d/%011d/%s", expiryPrefix, s&^(l1Width-1), s&^(l2Width-1), s, h)
}

func tokenKey(tokenHash, h string) string { return tokenPrefix + tokenHash + "/" + h }

func irrevocableKey(h string) string { return irrevocablePrefix + h }

// indexKeys returns the index keys the entry must have (not its own key).
func indexKeys(e *Entry, h string) []string {
	var keys []string
	if e.Irrevocable {
		keys = append(keys, irrevocableKey(h))
	} else {
		keys = append(keys, expiryKey(e.due(), h))
	}
	if e.TokenHash != "" {
		keys = append(keys, tokenKey(e.TokenHash, h))
	}
	return keys
}

// lockFor returns the write lock of a lease hash.
func (m *Manager) lockFor(h string) *sync.Mutex {
	var i int
	if len(h) >= 2 {
		if b, err := hex.DecodeString(h[:2]); err == nil {
			i = int(b[0])
		}
	}
	return &m.locks[i%lockStripes]
}

// noteDue tells Run an expiry index key exists for t. It is called after
// the key is written.
func (m *Manager) noteDue(t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if u := t.Unix(); u < m.nextDue {
		m.nextDue = u
	}
}

// apply writes ops atomically when the view supports batches. Otherwise it
// writes them in order; callers order ops so that a crash part-way leaves
// at worst a dangling index key (which Run and Tidy drop), never an entry
// without its expiry key.
func (m *Manager) apply(ctx context.Context, ops []logical.StorageOp) error {
	if bs, ok := m.view.(logical.BatchStorage); ok {
		return bs.Batch(ctx, ops)
	}
	for _, op := range ops {
		var err error
		if op.Delete {
			err = m.view.Delete(ctx, op.Key)
		} else {
			err = m.view.Put(ctx, &logical.StorageEntry{Key: op.Key, Value: op.Value})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// get reads and decodes a lease; (nil, nil) when it does not exist.
func (m *Manager) get(ctx context.Context, id string) (*Entry, error) {
	return m.getSince(ctx, id, nil)
}

// getSince is get, but returns prev itself, without decoding, when the
// stored bytes are those prev was decoded from (revocation re-reads every
// lease under its lock just before deleting it).
func (m *Manager) getSince(ctx context.Context, id string, prev *Entry) (*Entry, error) {
	se, err := m.view.Get(ctx, entryKey(id))
	if err != nil {
		return nil, fmt.Errorf("lease: read entry: %w", err)
	}
	if se == nil {
		return nil, nil
	}
	if prev != nil && prev.raw != nil && bytes.Equal(prev.raw, se.Value) {
		return prev, nil
	}
	var e Entry
	if err := se.DecodeJSON(&e); err != nil {
		return nil, fmt.Errorf("lease: decode entry: %w", err)
	}
	if e.ID != id {
		return nil, errors.New("lease: stored entry does not match its key")
	}
	e.raw = se.Value
	return &e, nil
}

// putOps returns the ops writing e with its index keys, and deleting the
// index keys of old (the entry as stored before, nil for a new one) that e
// no longer has. Index puts come first, the entry next, stale deletes last.
func putOps(e, old *Entry) ([]logical.StorageOp, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("lease: encode entry: %w", err)
	}
	h := hashID(e.ID)
	idVal := []byte(e.ID)
	keys := indexKeys(e, h)
	ops := make([]logical.StorageOp, 0, len(keys)+3)
	for _, k := range keys {
		ops = append(ops, logical.StorageOp{Key: k, Value: idVal})
	}
	ops = append(ops, logical.StorageOp{Key: entryKey(e.ID), Value: b})
	if old != nil {
		for _, k := range indexKeys(old, h) {
			if !containsString(keys, k) {
				ops = append(ops, logical.StorageOp{Key: k, Delete: true})
			}
		}
	}
	return ops, nil
}

// deleteOps returns the ops deleting e and its index keys, entry first
// (a crash part-way on a view without batches leaves dangling index keys,
// never an entry that no index leads to).
func deleteOps(e *Entry) []logical.StorageOp {
	keys := indexKeys(e, hashID(e.ID))
	ops := make([]logical.StorageOp, 0, len(keys)+1)
	ops = append(ops, logical.StorageOp{Key: entryKey(e.ID), Delete: true})
	for _, k := range keys {
		ops = append(ops, logical.StorageOp{Key: k, Delete: true})
	}
	return ops
}

func containsString(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// validPath reports whether p is a relative slash-separated path with no
// empty, "." or ".." segment.
func validPath(p string) bool {
	if p == "" {
		return false
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// validID reports whether id can name a lease.
func validID(id string) bool { return validPath(id) }

// validPrefix reports whether p can be a lease ID prefix ("" is the root).
func validPrefix(p string) bool {
	return p == "" || validPath(strings.TrimSuffix(p, "/"))
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// randomID returns randomLen base62 characters from crypto/rand.
func randomID() string {
	out := make([]byte, 0, randomLen)
	var buf [64]byte
	for len(out) < randomLen {
		_, _ = rand.Read(buf[:]) // never fails (crypto/rand panics instead)
		for _, b := range buf {
			if b < 248 { // 248 = 4*62: keep the draw uniform
				out = append(out, base62[b%62])
				if len(out) == randomLen {
					break
				}
			}
		}
	}
	return string(out)
}

// Register stores a new lease for an engine's Secret and returns it. The
// expire time is now + Secret.TTL, capped at now + Secret.MaxTTL.
func (m *Manager) Register(ctx context.Context, r Registration) (*Entry, error) {
	switch {
	case r.Secret == nil:
		return nil, fmt.Errorf("%w: no secret", ErrInvalid)
	case r.Secret.TTL <= 0:
		return nil, fmt.Errorf("%w: TTL must be positive", ErrInvalid)
	case r.Secret.MaxTTL < 0:
		return nil, fmt.Errorf("%w: negative max TTL", ErrInvalid)
	case !strings.HasSuffix(r.MountPoint, "/") || !validPath(strings.TrimSuffix(r.MountPoint, "/")):
		return nil, fmt.Errorf("%w: mount point must be a path ending in \"/\"", ErrInvalid)
	case strings.Contains(r.TokenHash, "/") || r.TokenHash == "." || r.TokenHash == "..":
		return nil, fmt.Errorf("%w: malformed token hash", ErrInvalid)
	}
	path := strings.TrimSuffix(r.Path, "/")
	if path != "" && !validPath(path) {
		return nil, fmt.Errorf("%w: malformed path", ErrInvalid)
	}
	id := r.MountPoint + path
	if path != "" {
		id += "/"
	}
	id += randomID()

	now := m.now()
	ttl := r.Secret.TTL
	if r.Secret.MaxTTL > 0 && ttl > r.Secret.MaxTTL {
		ttl = r.Secret.MaxTTL
	}
	e := &Entry{
		ID:            id,
		MountPoint:    r.MountPoint,
		MountAccessor: r.MountAccessor,
		Path:          path,
		TTL:           ttl,
		MaxTTL:        r.Secret.MaxTTL,
		Renewable:     r.Secret.Renewable,
		InternalData:  cloneMap(r.Secret.InternalData),
		Data:          cloneMap(r.Data),
		TokenHash:     r.TokenHash,
		IssueTime:     now,
		ExpireTime:    now.Add(ttl),
	}
	ops, err := putOps(e, nil)
	if err != nil {
		return nil, err
	}
	// The lock keeps Tidy from judging the index keys half-written (on a
	// view without batches).
	l := m.lockFor(hashID(id))
	l.Lock()
	err = m.apply(ctx, ops)
	l.Unlock()
	if err != nil {
		return nil, fmt.Errorf("lease: write lease: %w", err)
	}
	m.noteDue(e.ExpireTime)
	return e.clone(), nil
}

// Lookup returns the lease, or ErrNotFound.
func (m *Manager) Lookup(ctx context.Context, id string) (*Entry, error) {
	if !validID(id) {
		return nil, ErrNotFound
	}
	e, err := m.get(ctx, id)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, ErrNotFound
	}
	return e, nil
}

// List returns the lease IDs and folders immediately under prefix, with
// storage List semantics (sorted, folders end in "/", names relative to
// prefix). It serves sys/leases/lookup/<prefix>.
func (m *Manager) List(ctx context.Context, prefix string) ([]string, error) {
	if !validPrefix(prefix) {
		return nil, fmt.Errorf("%w: malformed prefix", ErrInvalid)
	}
	keys, err := m.view.List(ctx, idPrefix+prefix)
	if err != nil {
		return nil, fmt.Errorf("lease: list leases: %w", err)
	}
	return keys, nil
}

// Renew asks the engine to renew a renewable, unexpired lease and applies
// its answer: the new period is the answer's TTL (or else increment, or
// else the current TTL) from now, capped at IssueTime + MaxTTL. The answer
// may lower MaxTTL (never raise it), sets Renewable, and replaces
// InternalData when it has some. It returns the updated lease.
func (m *Manager) Renew(ctx context.Context, id string, increment time.Duration) (*Entry, error) {
	if increment < 0 {
		return nil, fmt.Errorf("%w: negative increment", ErrInvalid)
	}
	e, err := m.Lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := renewable(e, m.now()); err != nil {
		return nil, err
	}
	// Ask the engine outside any lock: it is a plugin call.
	ans, err := m.backend.RenewSecret(ctx, e.clone(), increment)
	if err != nil {
		return nil, err
	}
	if ans == nil {
		return nil, ErrNotRenewable
	}
	if ans.TTL < 0 || ans.MaxTTL < 0 {
		return nil, errors.New("lease: the secret engine answered a renewal with a negative TTL")
	}

	h := hashID(id)
	l := m.lockFor(h)
	l.Lock()
	defer l.Unlock()
	cur, err := m.get(ctx, id)
	if err != nil {
		return nil, err
	}
	if cur == nil || !cur.IssueTime.Equal(e.IssueTime) {
		return nil, ErrNotFound
	}
	now := m.now()
	if err := renewable(cur, now); err != nil {
		return nil, err
	}
	old := cur.clone()
	ttl := ans.TTL
	if ttl == 0 {
		ttl = increment
	}
	if ttl == 0 {
		ttl = cur.TTL
	}
	if ans.MaxTTL > 0 && (cur.MaxTTL == 0 || ans.MaxTTL < cur.MaxTTL) {
		cur.MaxTTL = ans.MaxTTL
	}
	exp := now.Add(ttl)
	if limit := cur.maxExpire(); !limit.IsZero() && exp.After(limit) {
		exp = limit
	}
	cur.TTL = exp.Sub(now)
	cur.ExpireTime = exp
	cur.LastRenewalTime = now
	cur.Renewable = ans.Renewable
	if ans.InternalData != nil {
		cur.InternalData = cloneMap(ans.InternalData)
	}
	ops, err := putOps(cur, old)
	if err != nil {
		return nil, err
	}
	if err := m.apply(ctx, ops); err != nil {
		return nil, fmt.Errorf("lease: write renewal: %w", err)
	}
	m.noteDue(exp)
	return cur.clone(), nil
}

// renewable says why e cannot be renewed at now, nil if it can.
func renewable(e *Entry, now time.Time) error {
	switch {
	case e.RevokeAttempts > 0 || e.Irrevocable:
		return ErrRevoking
	case !now.Before(e.ExpireTime):
		return ErrExpired
	case !e.Renewable:
		return ErrNotRenewable
	}
	return nil
}
