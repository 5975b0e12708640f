package jwt

import (
	"context"
	"net/http"
	"reflect"
	"testing"

	"github.com/wardproject/ward/sdk/logical"
)

func TestFactory(t *testing.T) {
	if _, err := Factory(context.Background(), nil); err == nil {
		t.Fatal("Factory accepted a nil config")
	}
	b, err := Factory(context.Background(), &logical.BackendConfig{StorageView: logical.NewInmemStorage()})
	if err != nil {
		t.Fatal(err)
	}
	if b.Type() != logical.TypeAuth {
		t.Fatalf("type = %v", b.Type())
	}
	if got := b.SpecialPaths().Unauthenticated; !reflect.DeepEqual(got, []string{"login", "login/*"}) {
		t.Fatalf("unauthenticated paths = %v", got)
	}
	if fb, ok := b.(*backend); !ok || fb.AuthRenew == nil {
		t.Fatal("no renew hook")
	}
	// Without any storage view, handlers fail cleanly.
	nb, _ := Factory(context.Background(), &logical.BackendConfig{})
	if _, err := nb.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation, Path: "config"}); logical.CodeOf(err) != logical.CodeInternal {
		t.Fatalf("no storage: %v", err)
	}
}

// blockingTransport holds every request until released.
type blockingTransport struct {
	started chan struct{}
	release chan struct{}
	next    http.RoundTripper
}

func (b *blockingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	b.started <- struct{}{}
	<-b.release
	return b.next.RoundTrip(r)
}

// A fetch that an invalidation overtakes must not put its (possibly
// stale) key set back into the cache.
func TestFetchOvertakenByInvalidationIsNotCached(t *testing.T) {
	testKeys(t)
	srv := newJWKSServer(t, pubJWK(rsaKey, "k", "RS256"))
	tr := &blockingTransport{started: make(chan struct{}, 1), release: make(chan struct{}), next: srv.Client().Transport}
	b, err := newBackend(&logical.BackendConfig{StorageView: logical.NewInmemStorage()}, options{
		httpClient: func(string) (*http.Client, error) { return &http.Client{Transport: tr}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	src := keySource{url: srv.URL + "/keys"}
	done := make(chan error, 1)
	go func() {
		_, err := b.keys.get(context.Background(), b, src, "k")
		done <- err
	}()
	<-tr.started
	b.InvalidateKey(context.Background(), configKey)
	close(tr.release)
	if err := <-done; err != nil {
		t.Fatalf("get: %v", err)
	}
	if set, _, attempted, _ := b.keys.snapshot(src); set != nil || !attempted.IsZero() {
		t.Fatalf("an overtaken fetch was cached: set=%v attempted=%v", set, attempted)
	}
}
