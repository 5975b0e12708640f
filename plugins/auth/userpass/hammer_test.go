package userpass

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/wardproject/ward/sdk/logical"
)

// TestHammerUser races password changes, policy changes, token setting
// updates and logins on one user. Logins must see a whole record (one of
// the passwords, never a corrupt entry), and no update may be lost.
func TestHammerUser(t *testing.T) {
	e := newEnv(t)
	e.ok(logical.CreateOperation, "users/bob", map[string]any{"password": "pw-0", "token_policies": "p-0"})
	const rounds = 40
	var wg sync.WaitGroup
	errs := make(chan error, 1024)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}

	wg.Add(1)
	go func() { // passwords, ending at pw-final
		defer wg.Done()
		for i := 1; i <= rounds; i++ {
			pw := fmt.Sprintf("pw-%d", i%2)
			if i == rounds {
				pw = "pw-final"
			}
			path := "users/bob/password"
			if i%3 == 0 {
				path = "users/bob"
			}
			if _, err := e.do(logical.UpdateOperation, path, map[string]any{"password": pw}); err != nil {
				report(fmt.Errorf("password update: %w", err))
			}
		}
	}()
	wg.Add(1)
	go func() { // policies, ending at p-final
		defer wg.Done()
		for i := 1; i <= rounds; i++ {
			pol := fmt.Sprintf("p-%d", i)
			if i == rounds {
				pol = "p-final"
			}
			if _, err := e.do(logical.UpdateOperation, "users/bob/policies", map[string]any{"token_policies": pol}); err != nil {
				report(fmt.Errorf("policy update: %w", err))
			}
		}
	}()
	wg.Add(1)
	go func() { // token settings, ending at token_ttl 99
		defer wg.Done()
		for i := 1; i <= rounds; i++ {
			ttl := i
			if i == rounds {
				ttl = 99
			}
			if _, err := e.do(logical.UpdateOperation, "users/bob", map[string]any{"token_ttl": ttl}); err != nil {
				report(fmt.Errorf("ttl update: %w", err))
			}
		}
	}()
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				pw := fmt.Sprintf("pw-%d", (g+i)%2)
				resp, err := e.do(logical.UpdateOperation, "login/bob", map[string]any{"password": pw})
				switch {
				case err == nil && (resp == nil || resp.Auth == nil || resp.Auth.DisplayName != "bob"):
					report(fmt.Errorf("login: bad response %+v", resp))
				case err != nil && err.Error() != "invalid username or password":
					report(fmt.Errorf("login: %w", err))
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// No writer lost another's update.
	a := e.login("bob", "pw-final")
	if !slices.Equal(a.Policies, []string{"p-final"}) || a.TTL.Seconds() != 99 {
		t.Fatalf("lost update: policies %v ttl %v", a.Policies, a.TTL)
	}
}

// TestHammerCreateDelete races creates and deletes of one user with
// logins: a login either succeeds or gets the generic answer.
func TestHammerCreateDelete(t *testing.T) {
	e := newEnv(t)
	var wg sync.WaitGroup
	errs := make(chan error, 1024)
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 30; i++ {
				var err error
				if (g+i)%2 == 0 {
					_, err = e.do(logical.UpdateOperation, "users/carol", map[string]any{"password": "pw"})
				} else {
					_, err = e.do(logical.DeleteOperation, "users/carol", nil)
				}
				if err != nil {
					errs <- err
				}
				if _, err := e.do(logical.UpdateOperation, "login/carol", map[string]any{"password": "pw"}); err != nil && err.Error() != "invalid username or password" {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
