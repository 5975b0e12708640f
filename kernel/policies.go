package kernel

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/wardproject/ward/kernel/policy"
	"github.com/wardproject/ward/sdk/logical"
)

// responseWrappingPolicyName is the fixed policy of response-wrapping
// tokens (Vault's). Its name is reserved: nobody can write or delete it.
const responseWrappingPolicyName = "response-wrapping"

// responseWrappingPolicyText is Vault's response-wrapping policy: a
// wrapping token can unwrap itself, and read its cubbyhole/response (the
// older way of unwrapping), nothing else.
const responseWrappingPolicyText = `
path "cubbyhole/response" {
    capabilities = ["create", "read"]
}

path "sys/wrapping/unwrap" {
    capabilities = ["update"]
}
`

// responseWrappingPolicy is the parsed built-in policy.
var responseWrappingPolicy = func() *policy.Policy {
	p, err := policy.Parse(responseWrappingPolicyName, responseWrappingPolicyText, policy.ParseOptions{})
	if err != nil {
		panic("kernel: built-in response-wrapping policy: " + err.Error())
	}
	return p
}()

// policyStore keeps ACL policies in the barrier and caches what every
// request needs: parsed policies by name and built ACLs by policy set.
type policyStore struct {
	view logical.Storage
	now  func() time.Time

	mu       sync.RWMutex // protects the fields below
	policies map[string]*policy.Policy
	acls     map[string]*policy.ACL
	// gen counts policy changes: an ACL built while one happened is not
	// cached, so no request is ever authorized by a replaced policy twice.
	gen uint64
}

// storedPolicy is a policy as persisted.
type storedPolicy struct {
	Name     string    `json:"name"`
	Policy   string    `json:"policy"`
	Modified time.Time `json:"modified"`
	Version  int       `json:"version"`
}

// newPolicyStore opens the store; on first use it writes Vault's default
// policy so operators can read and edit it, as in Vault.
func newPolicyStore(ctx context.Context, view logical.Storage, now func() time.Time) (*policyStore, error) {
	s := &policyStore{view: view, now: now, policies: map[string]*policy.Policy{}, acls: map[string]*policy.ACL{}}
	se, err := view.Get(ctx, "default")
	if err != nil {
		return nil, err
	}
	if se == nil {
		if err := s.write(ctx, "default", policy.DefaultPolicyText); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// get returns a policy by name; nil when there is none.
func (s *policyStore) get(ctx context.Context, name string) (*policy.Policy, *storedPolicy, error) {
	name = policy.NormalizeName(name)
	switch name {
	case "root":
		return policy.Root(), &storedPolicy{Name: "root"}, nil
	case responseWrappingPolicyName:
		// Built in and never stored, so it cannot be edited (Vault
		// neither lists it).
		return responseWrappingPolicy, &storedPolicy{Name: name, Policy: responseWrappingPolicyText, Version: 1}, nil
	}
	se, err := s.view.Get(ctx, name)
	if err != nil || se == nil {
		return nil, nil, err
	}
	var sp storedPolicy
	if err := se.DecodeJSON(&sp); err != nil {
		return nil, nil, err
	}
	s.mu.RLock()
	p := s.policies[name]
	s.mu.RUnlock()
	if p == nil || p.Raw != sp.Policy {
		if p, err = policy.Parse(name, sp.Policy, policy.ParseOptions{}); err != nil {
			return nil, nil, err
		}
		s.mu.Lock()
		s.policies[name] = p
		s.mu.Unlock()
	}
	return p, &sp, nil
}

// write parses and stores a policy, replacing any of the same name.
func (s *policyStore) write(ctx context.Context, name, text string) error {
	name = policy.NormalizeName(name)
	if name == "" {
		return logical.InvalidRequest("policy name is required")
	}
	if policy.IsReservedName(name) {
		return logical.InvalidRequest("cannot update the %s policy", name)
	}
	if strings.TrimSpace(text) == "" {
		return logical.InvalidRequest("policy text is empty")
	}
	p, err := policy.Parse(name, text, policy.ParseOptions{})
	if err != nil {
		// Parse errors name the line (and for conditions the CEL position):
		// the author needs them, and they hold no secret.
		if errors.Is(err, policy.ErrInvalidPolicy) {
			return logical.InvalidRequest("%v", err)
		}
		return err
	}
	version := 1
	if se, err := s.view.Get(ctx, name); err != nil {
		return err
	} else if se != nil {
		var old storedPolicy
		if se.DecodeJSON(&old) == nil {
			version = old.Version + 1
		}
	}
	se, err := logical.StorageEntryJSON(name, storedPolicy{Name: name, Policy: text, Modified: s.now().UTC(), Version: version})
	if err != nil {
		return err
	}
	if err := s.view.Put(ctx, se); err != nil {
		return err
	}
	s.mu.Lock()
	s.policies[name] = p
	s.acls = map[string]*policy.ACL{}
	s.gen++
	s.mu.Unlock()
	return nil
}

// remove deletes a policy; root and default cannot be deleted.
func (s *policyStore) remove(ctx context.Context, name string) error {
	name = policy.NormalizeName(name)
	if name == "root" || name == "default" || name == responseWrappingPolicyName {
		return logical.InvalidRequest("cannot delete the %s policy", name)
	}
	if err := s.view.Delete(ctx, name); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.policies, name)
	s.acls = map[string]*policy.ACL{}
	s.gen++
	s.mu.Unlock()
	return nil
}

// list returns every policy name, root included, sorted.
func (s *policyStore) list(ctx context.Context) ([]string, error) {
	keys, err := logical.CollectKeys(ctx, s.view, "")
	if err != nil {
		return nil, err
	}
	keys = append(keys, "root")
	sort.Strings(keys)
	return keys, nil
}

// acl returns the ACL of a set of policy names. Names without a policy are
// ignored, as in Vault (a token may outlive a policy).
func (s *policyStore) acl(ctx context.Context, names []string) (*policy.ACL, error) {
	key := aclKey(names)
	s.mu.RLock()
	a, gen := s.acls[key], s.gen
	s.mu.RUnlock()
	if a != nil {
		return a, nil
	}
	var ps []*policy.Policy
	for _, n := range names {
		p, _, err := s.get(ctx, n)
		if err != nil {
			return nil, err
		}
		if p != nil {
			ps = append(ps, p)
		}
	}
	a, err := policy.NewACL(ps)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.gen == gen {
		if len(s.acls) > 10000 {
			s.acls = map[string]*policy.ACL{}
		}
		s.acls[key] = a
	}
	s.mu.Unlock()
	return a, nil
}

func aclKey(names []string) string {
	sorted := slices.Clone(names)
	for i := range sorted {
		sorted[i] = policy.NormalizeName(sorted[i])
	}
	sort.Strings(sorted)
	return strings.Join(slices.Compact(sorted), "\x00")
}
