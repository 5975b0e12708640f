package lease_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/wardproject/ward/kernel/lease"
	"github.com/wardproject/ward/sdk/logical"
)

// engines stands in for the kernel's Backend: it would route each call to
// the mount named by e.MountAccessor as a RenewOperation/RevokeOperation
// with Request.Secret = e.Secret().
type engines struct{}

func (engines) RenewSecret(_ context.Context, e *lease.Entry, inc time.Duration) (*logical.Secret, error) {
	s := e.Secret()
	s.TTL = inc
	return s, nil
}

func (engines) RevokeSecret(_ context.Context, e *lease.Entry) error {
	fmt.Println("engine revokes", e.Secret().InternalData["username"])
	return nil
}

func Example() {
	ctx := context.Background()
	// The kernel passes its barrier view for leases.
	m, err := lease.New(logical.NewInmemStorage(), lease.Options{Backend: engines{}})
	if err != nil {
		panic(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop() // at seal
	go m.Run(runCtx)

	// An engine answered database/creds/readonly with a Secret.
	e, err := m.Register(ctx, lease.Registration{
		MountPoint: "database/", MountAccessor: "database_9f3c", Path: "creds/readonly",
		Secret:    &logical.Secret{TTL: time.Hour, MaxTTL: 24 * time.Hour, Renewable: true, InternalData: map[string]any{"username": "v-ro-1"}},
		TokenHash: "hashed-token",
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(strings.HasPrefix(e.ID, "database/creds/readonly/"))

	if _, err := m.Renew(ctx, e.ID, 2*time.Hour); err != nil {
		panic(err)
	}
	// The token is revoked: its leases go with it.
	if err := m.RevokeByToken(ctx, "hashed-token"); err != nil {
		panic(err)
	}
	_, err = m.Lookup(ctx, e.ID)
	fmt.Println(err)
	// Output:
	// true
	// engine revokes v-ro-1
	// lease not found
}
