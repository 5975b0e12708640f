package lease

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

var ctx = context.Background()

func TestOptionsDefaults(t *testing.T) {
	if _, err := New(logical.NewInmemStorage(), Options{}); err == nil {
		t.Fatal("New without a Backend succeeded")
	}
	if _, err := New(nil, Options{Backend: newFakeBackend()}); err == nil {
		t.Fatal("New with a nil view succeeded")
	}
	if _, err := New(logical.NewInmemStorage(), Options{Backend: newFakeBackend(), MaxAttempts: -1}); err == nil {
		t.Fatal("New with a negative option succeeded")
	}
	m, err := New(logical.NewInmemStorage(), Options{Backend: newFakeBackend()})
	if err != nil {
		t.Fatal(err)
	}
	if m.interval != 250*time.Millisecond || m.retryBase != 5*time.Second || m.retryMax != 5*time.Minute ||
		m.maxAttempts != 10 || cap(m.calls) != 16 || cap(m.tasks) != 256 {
		t.Fatalf("defaults: %v %v %v %d %d", m.interval, m.retryBase, m.retryMax, m.maxAttempts, cap(m.calls))
	}
}

func TestRegisterLookupList(t *testing.T) {
	f := newFixture(t)
	issue := f.clock.Now()
	e := f.register(t, "creds/readonly", time.Hour, 24*time.Hour, "tok1")

	random, ok := strings.CutPrefix(e.ID, "database/creds/readonly/")
	if !ok || !regexp.MustCompile(`^[0-9A-Za-z]{32}$`).MatchString(random) {
		t.Fatalf("lease ID %q: want database/creds/readonly/<32 base62>", e.ID)
	}
	if !e.IssueTime.Equal(issue) || !e.ExpireTime.Equal(issue.Add(time.Hour)) || e.TTL != time.Hour || e.MaxTTL != 24*time.Hour {
		t.Fatalf("times: issue %v expire %v ttl %v max %v", e.IssueTime, e.ExpireTime, e.TTL, e.MaxTTL)
	}

	got, err := f.m.Lookup(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.MountPoint != "database/" || got.MountAccessor != "database_1234" || got.Path != "creds/readonly" ||
		got.TokenHash != "tok1" || !got.Renewable || got.InternalData["username"] != "v-ro-Q7" || !got.ExpireTime.Equal(e.ExpireTime) {
		t.Fatalf("Lookup = %+v", *got)
	}
	s := got.Secret()
	if s.LeaseID != e.ID || !s.IssueTime.Equal(issue) || s.TTL != time.Hour || s.InternalData["username"] != "v-ro-Q7" {
		t.Fatalf("Secret() = %+v", s)
	}

	// Returned entries are copies.
	got.InternalData["username"] = "changed"
	again, _ := f.m.Lookup(ctx, e.ID)
	if again.InternalData["username"] != "v-ro-Q7" {
		t.Fatal("Lookup shares maps with callers")
	}

	e2 := f.register(t, "creds/readonly", time.Hour, 0, "")
	f.register(t, "creds/admin", time.Hour, 0, "")
	keys, err := f.m.List(ctx, "database/creds/readonly/")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{strings.TrimPrefix(e.ID, "database/creds/readonly/"), strings.TrimPrefix(e2.ID, "database/creds/readonly/")}
	if len(keys) != 2 || !(keys[0] == want[0] && keys[1] == want[1] || keys[0] == want[1] && keys[1] == want[0]) {
		t.Fatalf("List = %v, want %v", keys, want)
	}
	if keys, _ := f.m.List(ctx, "database/"); fmt.Sprint(keys) != "[creds/]" {
		t.Fatalf("List(database/) = %v", keys)
	}
	if keys, _ := f.m.List(ctx, "database/creds/"); fmt.Sprint(keys) != "[admin/ readonly/]" {
		t.Fatalf("List(database/creds/) = %v", keys)
	}
	if _, err := f.m.List(ctx, "../x/"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("List(../x/) = %v", err)
	}

	// Storage holds the entry and its two index keys, nothing else.
	h := hashID(e.ID)
	for _, k := range []string{"id/" + e.ID, expiryKey(e.ExpireTime, h), "token/tok1/" + h} {
		se, err := f.view.Get(ctx, k)
		if err != nil || se == nil {
			t.Fatalf("key %q missing (%v)", k, err)
		}
	}
	if n := len(f.view.keys(t)); n != 3+2*2 {
		t.Fatalf("storage holds %d keys, want 7: %v", n, f.view.keys(t))
	}

	if _, err := f.m.Lookup(ctx, "database/creds/readonly/nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Lookup(missing) = %v", err)
	}
	if _, err := f.m.Lookup(ctx, "../../etc"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Lookup(bad id) = %v", err)
	}
	if logical.CodeOf(ErrNotFound) != logical.CodeInvalidRequest {
		t.Fatal("ErrNotFound should be a 400-class error")
	}
}

func TestExpiryKeyLayout(t *testing.T) {
	tm := time.Unix(1764000123, 999)
	got := expiryKey(tm, "abcd")
	want := fmt.Sprintf("expiry/%011d/%011d/%011d/abcd", 1764000123&^(1<<16-1), 1764000123&^(1<<8-1), 1764000123)
	if got != want {
		t.Fatalf("expiryKey = %q, want %q", got, want)
	}
	// Key order is time order.
	if !(expiryKey(time.Unix(99999, 0), "z") < expiryKey(time.Unix(100000, 0), "a")) {
		t.Fatal("expiry keys do not sort by time")
	}
}

func TestRegisterValidation(t *testing.T) {
	f := newFixture(t)
	ok := logical.Secret{TTL: time.Minute}
	for _, tc := range []struct {
		name string
		r    Registration
	}{
		{"no secret", Registration{MountPoint: "db/", Path: "creds/x"}},
		{"zero TTL", Registration{MountPoint: "db/", Path: "creds/x", Secret: &logical.Secret{}}},
		{"negative max", Registration{MountPoint: "db/", Path: "creds/x", Secret: &logical.Secret{TTL: time.Minute, MaxTTL: -1}}},
		{"mount without slash", Registration{MountPoint: "db", Path: "creds/x", Secret: &ok}},
		{"empty mount", Registration{MountPoint: "", Path: "creds/x", Secret: &ok}},
		{"dotdot path", Registration{MountPoint: "db/", Path: "creds/../x", Secret: &ok}},
		{"absolute path", Registration{MountPoint: "db/", Path: "/creds", Secret: &ok}},
		{"token hash with slash", Registration{MountPoint: "db/", Path: "creds/x", Secret: &ok, TokenHash: "a/b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := f.m.Register(ctx, tc.r); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Register = %v, want ErrInvalid", err)
			}
		})
	}
	if n := len(f.view.keys(t)); n != 0 {
		t.Fatalf("refused registrations wrote %d keys", n)
	}
	// A lease at the mount root (empty path) is fine.
	e, err := f.m.Register(ctx, Registration{MountPoint: "db/", Path: "", Secret: &ok})
	if err != nil || !strings.HasPrefix(e.ID, "db/") || strings.Count(e.ID, "/") != 1 {
		t.Fatalf("Register(empty path) = %v, %v", e, err)
	}
}

func TestRegisterCapsTTLAtMax(t *testing.T) {
	f := newFixture(t)
	e := f.register(t, "creds/ro", 2*time.Hour, time.Hour, "")
	if e.TTL != time.Hour || !e.ExpireTime.Equal(e.IssueTime.Add(time.Hour)) {
		t.Fatalf("TTL %v expire %v: want capped at max TTL", e.TTL, e.ExpireTime)
	}
}

func TestRenew(t *testing.T) {
	f := newFixture(t)
	e := f.register(t, "creds/ro", time.Hour, 3*time.Hour, "")
	oldKey := expiryKey(e.ExpireTime, hashID(e.ID))

	f.clock.Advance(30 * time.Minute)
	got, err := f.m.Renew(ctx, e.ID, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now := f.clock.Now()
	if !got.ExpireTime.Equal(now.Add(2*time.Hour)) || !got.LastRenewalTime.Equal(now) || got.TTL != 2*time.Hour {
		t.Fatalf("after renew: expire %v renewed %v ttl %v", got.ExpireTime, got.LastRenewalTime, got.TTL)
	}
	// The expiry index moved with it.
	if se, _ := f.view.Get(ctx, oldKey); se != nil {
		t.Fatal("old expiry key kept after renewal")
	}
	if se, _ := f.view.Get(ctx, expiryKey(got.ExpireTime, hashID(e.ID))); se == nil || string(se.Value) != e.ID {
		t.Fatal("new expiry key missing")
	}

	// No increment: the current TTL again.
	f.clock.Advance(10 * time.Minute)
	got, err = f.m.Renew(ctx, e.ID, 0)
	if err != nil || !got.ExpireTime.Equal(f.clock.Now().Add(2*time.Hour)) {
		t.Fatalf("renew without increment: %v, %v", got, err)
	}

	// Max TTL counts from issue time: 3h after issue, however asked.
	f.clock.Advance(time.Hour)
	got, err = f.m.Renew(ctx, e.ID, 10*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if limit := e.IssueTime.Add(3 * time.Hour); !got.ExpireTime.Equal(limit) {
		t.Fatalf("expire %v, want capped at %v", got.ExpireTime, limit)
	}
	if got.TTL != got.ExpireTime.Sub(f.clock.Now()) {
		t.Fatalf("TTL %v does not match the capped period", got.TTL)
	}

	// The engine's answer: its TTL wins, MaxTTL only shrinks, InternalData replaced.
	f.backend.answer = func(e *Entry, _ time.Duration) *logical.Secret {
		return &logical.Secret{TTL: 5 * time.Minute, MaxTTL: 100 * time.Hour, Renewable: true, InternalData: map[string]any{"v": 2.0}}
	}
	got, err = f.m.Renew(ctx, e.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !got.ExpireTime.Equal(f.clock.Now().Add(5*time.Minute)) || got.MaxTTL != 3*time.Hour || got.InternalData["v"] != 2.0 {
		t.Fatalf("after answer: expire %v max %v data %v", got.ExpireTime, got.MaxTTL, got.InternalData)
	}
	f.backend.answer = func(e *Entry, _ time.Duration) *logical.Secret {
		return &logical.Secret{TTL: time.Hour, MaxTTL: 2 * time.Hour, Renewable: true}
	}
	got, err = f.m.Renew(ctx, e.ID, 0)
	if err != nil || got.MaxTTL != 2*time.Hour || !got.ExpireTime.Equal(e.IssueTime.Add(2*time.Hour)) {
		t.Fatalf("a lower max TTL from the engine: %v, %v", got, err)
	}

	// The engine may refuse; the lease is unchanged.
	before, _ := f.m.Lookup(ctx, e.ID)
	f.backend.renewErr = logical.InvalidRequest("role deleted")
	if _, err := f.m.Renew(ctx, e.ID, 0); err == nil || err.Error() != "role deleted" {
		t.Fatalf("refused renewal = %v", err)
	}
	after, _ := f.m.Lookup(ctx, e.ID)
	if !after.ExpireTime.Equal(before.ExpireTime) {
		t.Fatal("a refused renewal changed the lease")
	}
	f.backend.renewErr = nil

	// The engine may make it non-renewable.
	f.backend.answer = func(e *Entry, _ time.Duration) *logical.Secret { return &logical.Secret{TTL: time.Minute} }
	if _, err := f.m.Renew(ctx, e.ID, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.Renew(ctx, e.ID, 0); !errors.Is(err, ErrNotRenewable) {
		t.Fatalf("renew after the engine said non-renewable = %v", err)
	}

	// Only the current expiry key exists.
	if keys := f.keysUnder(t, "expiry/"); len(keys) != 1 {
		t.Fatalf("expiry keys after renewals: %v", keys)
	}
}

func TestRenewRefusals(t *testing.T) {
	f := newFixture(t)
	e, err := f.m.Register(ctx, Registration{MountPoint: "db/", Path: "creds/x", Secret: &logical.Secret{TTL: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.Renew(ctx, e.ID, 0); !errors.Is(err, ErrNotRenewable) {
		t.Fatalf("renew non-renewable = %v", err)
	}
	r := f.register(t, "creds/ro", time.Minute, 0, "")
	if _, err := f.m.Renew(ctx, r.ID, -time.Second); !errors.Is(err, ErrInvalid) {
		t.Fatalf("negative increment = %v", err)
	}
	f.clock.Advance(time.Minute)
	if _, err := f.m.Renew(ctx, r.ID, 0); !errors.Is(err, ErrExpired) {
		t.Fatalf("renew expired = %v", err)
	}
	if _, err := f.m.Renew(ctx, "db/creds/x/missing", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("renew missing = %v", err)
	}
	if n := len(f.backend.renewed); n != 0 {
		t.Fatalf("the engine was asked %d times for refused renewals", n)
	}
}

// TestNoSecretsInLogsOrErrors checks that lease IDs, token hashes and
// InternalData stay out of formatted entries, errors and log lines.
func TestNoSecretsInLogsOrErrors(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := newFixture(t, func(o *Options) { o.Logger = logger; o.MaxAttempts = 2 })
	const tokenHash = "f00dfacef00dfacef00dface"
	e, err := f.m.Register(ctx, Registration{
		MountPoint: "database/", Path: "creds/ro", TokenHash: tokenHash,
		Secret: &logical.Secret{TTL: time.Minute, Renewable: true, InternalData: map[string]any{"password": "hunter2-s3cret"}},
		Data:   map[string]any{"other": "d4ta-s3cret"},
	})
	if err != nil {
		t.Fatal(err)
	}
	random := e.ID[strings.LastIndexByte(e.ID, '/')+1:]
	secrets := []string{random, tokenHash, "hunter2-s3cret", "d4ta-s3cret"}

	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		out = append(out, fmt.Sprintf(verb, e), fmt.Sprintf(verb, *e))
	}
	logger.Info("entry", "lease", e, "value", *e)
	f.backend.setRevokeErr(errors.New("connection refused"))
	err = f.m.Revoke(ctx, e.ID)
	out = append(out, err.Error())
	f.clock.Advance(time.Hour)
	f.sweep(t) // second failure: irrevocable, logged at error level
	_, err = f.m.Renew(ctx, e.ID, 0)
	out = append(out, err.Error())
	_, err = f.m.Register(ctx, Registration{MountPoint: "database/", Path: "x", TokenHash: "a/" + tokenHash, Secret: &logical.Secret{TTL: 1}})
	out = append(out, err.Error())
	out = append(out, logs.String())
	if !strings.Contains(logs.String(), "irrevocable") {
		t.Fatalf("no irrevocable log line: %s", logs.String())
	}
	for _, s := range out {
		for _, secret := range secrets {
			if strings.Contains(s, secret) {
				t.Errorf("%q leaks %q", s, secret)
			}
		}
	}
}
