package approle

import (
	"context"
	"errors"
	"strings"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

func (b *backend) pathTidy() *framework.Path {
	return &framework.Path{
		Pattern:      "tidy/secret-id",
		Operations:   map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: b.pathTidyUpdate},
		HelpSynopsis: "Removes expired secret IDs, secret IDs of deleted roles, and dangling accessors.",
	}
}

// pathTidyUpdate runs the tidy to completion before answering (Vault runs
// it in the background and answers 202).
func (b *backend) pathTidyUpdate(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	if !b.tidyMu.TryLock() {
		return nil, logical.InvalidRequest("a tidy operation is already running")
	}
	defer b.tidyMu.Unlock()
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	t := tidier{b: b, s: s, live: map[string]bool{}}
	if err := t.secretIDs(ctx); err != nil {
		return nil, err
	}
	if err := t.accessors(ctx); err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{
		"secret_ids_deleted": t.secretsDeleted,
		"accessors_deleted":  t.accessorsDeleted,
	}}, nil
}

// tidier is one tidy run.
type tidier struct {
	b *backend
	s logical.Storage
	// live holds role instances found alive during this run. Only liveness
	// is remembered: an instance, once dead, never comes back (a role
	// created again gets a new one), whereas a dead answer could predate the
	// secret ID it would condemn.
	live map[string]bool

	secretsDeleted, accessorsDeleted int
}

// subfolders lists the folder children of prefix, without the slash.
func subfolders(ctx context.Context, s logical.Storage, prefix string) ([]string, error) {
	keys, err := s.List(ctx, prefix)
	if err != nil {
		return nil, storageErr("listing "+prefix, err)
	}
	var out []string
	for _, k := range keys {
		if strings.HasSuffix(k, "/") {
			out = append(out, strings.TrimSuffix(k, "/"))
		}
	}
	return out, nil
}

// secretIDs deletes expired secret IDs and those of deleted roles.
func (t *tidier) secretIDs(ctx context.Context) error {
	insts, err := subfolders(ctx, t.s, secretIDPrefix)
	if err != nil {
		return err
	}
	for _, inst := range insts {
		hs, err := t.s.List(ctx, secretIDPrefix+inst+"/")
		if err != nil {
			return storageErr("listing secret IDs", err)
		}
		for _, h := range hs {
			if strings.HasSuffix(h, "/") {
				continue
			}
			if err := t.secretID(ctx, inst, h); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *tidier) secretID(ctx context.Context, inst, h string) error {
	sk := secretKey(inst, h)
	lock := t.b.secretLocks.forKey(sk)
	lock.Lock()
	defer lock.Unlock()
	var e secretIDEntry
	found, err := getJSON(ctx, t.s, sk, "a secret ID", &e)
	if errors.Is(err, errCorruptRecord) {
		t.b.warn("approle tidy: skipping a corrupt secret ID record", "role_instance", inst)
		return nil
	}
	if err != nil || !found {
		return err
	}
	if !e.expiredAt(t.b.clock()) {
		live, err := t.instanceLive(ctx, inst, e.RoleName)
		if err != nil || live {
			return err
		}
	}
	if err := apply(ctx, t.s, "deleting a secret ID", deleteOps(inst, h, e.Accessor)); err != nil {
		return err
	}
	t.secretsDeleted++
	return nil
}

// instanceLive reports whether role name exists and is incarnation inst.
func (t *tidier) instanceLive(ctx context.Context, inst, name string) (bool, error) {
	if t.live[inst] {
		return true, nil
	}
	if name == "" || strings.Contains(name, "/") {
		return false, nil
	}
	r, err := loadRole(ctx, t.s, name)
	if err != nil {
		return false, err
	}
	if r != nil && r.Instance == inst {
		t.live[inst] = true
		return true, nil
	}
	return false, nil
}

// accessors deletes accessor entries whose secret ID is gone.
func (t *tidier) accessors(ctx context.Context) error {
	insts, err := subfolders(ctx, t.s, accessorPrefix)
	if err != nil {
		return err
	}
	for _, inst := range insts {
		accs, err := t.s.List(ctx, accessorPrefix+inst+"/")
		if err != nil {
			return storageErr("listing secret ID accessors", err)
		}
		for _, acc := range accs {
			if strings.HasSuffix(acc, "/") {
				continue
			}
			if err := t.accessor(ctx, inst, acc); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *tidier) accessor(ctx context.Context, inst, acc string) error {
	ak := accessorKey(inst, acc)
	var a accessorEntry
	found, err := getJSON(ctx, t.s, ak, "a secret ID accessor", &a)
	corrupt := errors.Is(err, errCorruptRecord)
	if err != nil && !corrupt {
		return err
	}
	if !found && !corrupt {
		return nil // deleted since the listing
	}
	if found && a.SecretIDHMAC != "" {
		// Under the secret ID's lock: a secret ID being created writes its
		// accessor first and must not lose it between the two writes.
		sk := secretKey(inst, a.SecretIDHMAC)
		lock := t.b.secretLocks.forKey(sk)
		lock.Lock()
		defer lock.Unlock()
		var e secretIDEntry
		found, err := getJSON(ctx, t.s, sk, "a secret ID", &e)
		if errors.Is(err, errCorruptRecord) {
			return nil // the secret ID pass reported it; keep its accessor
		}
		if err != nil {
			return err
		}
		if found && e.Accessor == acc {
			return nil
		}
	}
	if err := t.s.Delete(ctx, ak); err != nil {
		return storageErr("deleting a secret ID accessor", err)
	}
	t.accessorsDeleted++
	return nil
}
