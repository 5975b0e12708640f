package database

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/wardproject/ward/plugins/secrets/database/postgres"
	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// Factory builds a database secret engine for one mount.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	return newBackend(conf, time.Now)
}

// backend is one mount of the engine. Configurations, roles and static
// passwords live in the mount's storage; the process keeps connection
// pools and locks.
type backend struct {
	*framework.Backend

	view   logical.Storage
	logger logical.Logger
	now    func() time.Time // injectable clock

	// configLocks serialise writes of one configuration (config write and
	// delete, rotate-root, building its pool).
	configLocks stripes[sync.Mutex]
	// staticLocks serialise the rotation of one static role.
	staticLocks stripes[sync.Mutex]

	// warmOnce starts warmPools; warmStop and warmDone stop it (cleanup).
	warmOnce sync.Once
	warmStop context.CancelFunc
	warmDone chan struct{}

	mu sync.Mutex // protects the fields below
	// gen counts invalidations: a pool built from a configuration read
	// before one is used once and not cached.
	gen   uint64
	conns map[string]*connEntry // by configuration name
}

// connEntry is a cached pool. refs counts the requests using it; a stale
// entry (its configuration changed) is closed by its last user.
type connEntry struct {
	db    *postgres.DB
	cfg   *dbConfig // the configuration the pool was built from
	refs  int
	stale bool
}

var _ logical.Backend = (*backend)(nil)

// newBackend is Factory with an injectable clock.
func newBackend(conf *logical.BackendConfig, now func() time.Time) (*backend, error) {
	if conf == nil {
		return nil, errors.New("database: missing backend configuration")
	}
	b := &backend{view: conf.StorageView, logger: conf.Logger, now: now, conns: map[string]*connEntry{}}
	b.Backend = &framework.Backend{
		Help:           backendHelp,
		BackendType:    logical.TypeSecret,
		Paths:          b.paths(),
		SecretRenew:    b.credsRenew,
		SecretRevoke:   b.credsRevoke,
		PeriodicFunc:   b.periodic,
		Invalidate:     b.invalidate,
		Clean:          b.cleanup,
		InitializeFunc: b.initialize,
	}
	if err := b.Backend.Initialize(context.Background()); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *backend) paths() []*framework.Path {
	var ps []*framework.Path
	ps = append(ps, b.configPaths()...)
	ps = append(ps, b.rolePaths()...)
	ps = append(ps, b.credsPath())
	return append(ps, b.staticPaths()...)
}

// storage returns the request's storage view, falling back to the mount's.
func (b *backend) storage(req *logical.Request) (logical.Storage, error) {
	if req.Storage != nil {
		return req.Storage, nil
	}
	if b.view != nil {
		return b.view, nil
	}
	return nil, errNoStorage
}

func (b *backend) clock() time.Time { return b.now().UTC() }

// logInfo and logWarn write messages that must not hold secret material.
func (b *backend) logInfo(msg string, args ...any) {
	if b.logger != nil {
		b.logger.Info(msg, args...)
	}
}

func (b *backend) logWarn(msg string, args ...any) {
	if b.logger != nil {
		b.logger.Warn(msg, args...)
	}
}

// acquire returns the pool of configuration name, building and caching it
// on first use. The caller must release it.
func (b *backend) acquire(ctx context.Context, s logical.Storage, name string) (*connEntry, error) {
	if e := b.cached(name); e != nil {
		return e, nil
	}
	lock := b.configLocks.forKey(name)
	lock.Lock()
	defer lock.Unlock()
	if e := b.cached(name); e != nil {
		return e, nil
	}
	b.mu.Lock()
	gen := b.gen
	b.mu.Unlock()
	cfg, err := loadConfig(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return nil, errConfigNotFound(name)
	}
	if cfg.PendingPassword != "" {
		if err := b.settlePendingRootLocked(ctx, s, name, cfg); err != nil {
			return nil, err
		}
	}
	db, err := postgres.Open(cfg.conn())
	if err != nil {
		return nil, dbError("database "+quote(name), err)
	}
	e := &connEntry{db: db, cfg: cfg, refs: 1}
	b.mu.Lock()
	if b.gen == gen {
		b.conns[name] = e
	} else {
		e.stale = true
	}
	b.mu.Unlock()
	return e, nil
}

func (b *backend) cached(name string) *connEntry {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.conns[name]; e != nil {
		e.refs++
		return e
	}
	return nil
}

// release returns a pool taken with acquire.
func (b *backend) release(e *connEntry) {
	b.mu.Lock()
	e.refs--
	closeIt := e.refs == 0 && e.stale
	b.mu.Unlock()
	if closeIt {
		e.db.Close()
	}
}

// dropConn forgets the pool of a configuration; it closes once unused.
func (b *backend) dropConn(name string) {
	b.mu.Lock()
	b.gen++
	e := b.conns[name]
	delete(b.conns, name)
	closeIt := false
	if e != nil {
		e.stale = true
		closeIt = e.refs == 0
	}
	b.mu.Unlock()
	if closeIt {
		e.db.Close()
	}
}

// invalidate drops the pool of a configuration that changed behind the
// plugin (another replica, a restore). Nothing else is cached.
func (b *backend) invalidate(_ context.Context, key string) {
	if name, ok := cutPrefix(key, configPrefix); ok {
		b.dropConn(name)
	}
}

// warmConns is how many connections of each pool warmPools opens: the
// lease manager's default number of concurrent revocations (the pool's
// maximum when smaller).
const warmConns = 16

// initialize opens the pool of every database configuration once (the
// host initializes a mount after Factory, which initializes it too, to
// compile its paths) and fills them with connections in the background.
func (b *backend) initialize(ctx context.Context) error {
	if b.view == nil {
		return nil
	}
	b.warmOnce.Do(func() {
		pools := b.openPools(ctx)
		wctx, cancel := context.WithCancel(context.Background())
		b.warmStop, b.warmDone = cancel, make(chan struct{})
		go func() {
			defer close(b.warmDone)
			b.warmPools(wctx, pools)
		}()
	})
	return nil
}

// openPools reads every database configuration and opens its pool (no
// connection yet), while the mount is being set up: the background part
// of warming then touches no storage, so it never runs storage calls on a
// request's behalf. A configuration whose root rotation was interrupted
// is left to its first request, which settles it.
func (b *backend) openPools(ctx context.Context) []*connEntry {
	names, err := b.view.List(ctx, configPrefix)
	if err != nil {
		return nil
	}
	var pools []*connEntry
	for _, name := range names {
		cfg, err := loadConfig(ctx, b.view, name)
		if err != nil || cfg == nil || cfg.PendingPassword != "" {
			continue
		}
		if e, err := b.acquire(ctx, b.view, name); err == nil {
			pools = append(pools, e)
		}
	}
	return pools
}

// warmPools opens connections in the pools, in the background: after a
// restart, the first requests are often the revocations of leases that
// came due while the server was down, and a cold pool makes each of them
// wait for a connection. Failures are only logged (the database may be
// down: requests report it).
func (b *backend) warmPools(ctx context.Context, pools []*connEntry) {
	for _, e := range pools {
		if ctx.Err() == nil {
			if err := e.db.Warm(ctx, warmConns); err != nil && ctx.Err() == nil && b.logger != nil {
				b.logger.Debug("database: warming a connection pool failed", "error", err.Error())
			}
		}
		b.release(e)
	}
}

// cleanup closes every pool when the mount goes away.
func (b *backend) cleanup(context.Context) {
	b.warmOnce.Do(func() {}) // orders this after initialize, or prevents it
	if b.warmStop != nil {
		b.warmStop()
		<-b.warmDone
	}
	b.mu.Lock()
	names := make([]string, 0, len(b.conns))
	for n := range b.conns {
		names = append(names, n)
	}
	b.mu.Unlock()
	for _, n := range names {
		b.dropConn(n)
	}
}

// stripes is a fixed set of locks that keys hash onto.
type stripes[L any] struct {
	locks [lockStripes]L
}

const lockStripes = 64

func (s *stripes[L]) forKey(key string) *L {
	h := uint32(2166136261) // FNV-1a
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return &s.locks[h%lockStripes]
}

// getJSON reads key into out; found is false for a missing key.
func getJSON(ctx context.Context, s logical.Storage, key, what string, out any) (found bool, err error) {
	ent, err := s.Get(ctx, key)
	if err != nil {
		return false, storageErr("reading "+what, err)
	}
	if ent == nil {
		return false, nil
	}
	if err := ent.DecodeJSON(out); err != nil {
		return false, errCorruptRecord
	}
	return true, nil
}

// putJSON stores v under key.
func putJSON(ctx context.Context, s logical.Storage, key, what string, v any) error {
	ent, err := logical.StorageEntryJSON(key, v)
	if err != nil {
		return err
	}
	if err := s.Put(ctx, ent); err != nil {
		return storageErr("writing "+what, err)
	}
	return nil
}

// storageErr hides the storage error's text and keeps its code.
func storageErr(what string, err error) error {
	return logical.Errorf(logical.CodeOf(err), "database: storage error while %s", what)
}

// dbError maps a postgres error to a wire error: what the operator can
// fix in a template or configuration is 400, the rest 500. Its text is
// already free of credentials.
func dbError(what string, err error) error {
	var pe *postgres.Error
	if errors.As(err, &pe) {
		switch pe.Kind {
		case postgres.KindStatement, postgres.KindTemplate, postgres.KindConfig, postgres.KindNotFound:
			return logical.InvalidRequest("%s: %s", what, pe.Error())
		}
		return logical.Errorf(logical.CodeInternal, "%s: %s", what, pe.Error())
	}
	if c := logical.CodeOf(err); c != logical.CodeInternal {
		return err
	}
	return logical.Errorf(logical.CodeInternal, "%s: internal error", what)
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

func cutPrefix(s, prefix string) (string, bool) {
	if len(s) > len(prefix) && s[:len(prefix)] == prefix {
		return s[len(prefix):], true
	}
	return "", false
}

// Storage layout (see doc.go).
const (
	configPrefix     = "config/"
	rolePrefix       = "role/"
	staticRolePrefix = "static-role/"
)

// Sentinel errors. None holds request data or secret material.
var (
	// errNoStorage is returned when neither the request nor the mount has
	// a storage view (a host bug).
	errNoStorage = &logical.Error{Code: logical.CodeInternal, Message: "database: no storage view"}
	// errCorruptRecord is returned when a stored record does not decode;
	// the decoder's message, which can quote stored bytes, is dropped.
	errCorruptRecord = &logical.Error{Code: logical.CodeInternal, Message: "database: stored record is corrupt"}
)

func errConfigNotFound(name string) error {
	return logical.InvalidRequest("database configuration %q does not exist", name)
}

const backendHelp = `The database secret engine generates PostgreSQL credentials: dynamic
users created on demand for a role and dropped when their lease ends, and
static roles whose existing users get their password rotated periodically.
Configure a connection at config/<name>, a role at roles/<name>, and read
creds/<role>.`
