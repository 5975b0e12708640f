package kv

import (
	"context"
	"time"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// versionMutator changes one existing version of key in place and reports
// whether it changed anything. It may touch storage (destroy does).
type versionMutator func(ctx context.Context, s logical.Storage, key string, n int, vm *versionMetadata, now time.Time) (bool, error)

// pathVersionOp builds delete/, undelete/ and destroy/: an update taking
// {"versions": [...]} that applies mutate to each listed version.
func (b *backend) pathVersionOp(prefix string, mutate versionMutator, synopsis, description string) *framework.Path {
	return &framework.Path{
		Pattern: prefix + "/" + framework.MatchAllRegex("path"),
		Fields: map[string]*framework.FieldSchema{
			"path": {Type: framework.TypeString, Description: "Location of the secret (taken from the request path)."},
			// "versions" is parsed from the raw input: it may be an array
			// of numbers, of decimal strings, or a comma-separated string,
			// which no single framework field type accepts.
		},
		TakesArbitraryInput: true,
		Operations: map[logical.Operation]framework.OperationFunc{
			logical.UpdateOperation: func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
				return b.versionOp(ctx, req, d, prefix, mutate)
			},
		},
		HelpSynopsis: synopsis,
		HelpDescription: description + `

Takes "versions": an array of version numbers (numbers or decimal strings;
"1,2" is also accepted). Answers 204; a missing key is not an error.`,
	}
}

func (b *backend) versionOp(ctx context.Context, req *logical.Request, d *framework.FieldData,
	prefix string, mutate versionMutator) (*logical.Response, error) {
	key := userKey(req.Path, prefix)
	if err := validateKey(key); err != nil {
		return nil, err
	}
	versions, err := parseVersions(d.Raw["versions"])
	if err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	b.locks.Lock(key)
	defer b.locks.Unlock(key)

	meta, err := b.readMeta(ctx, s, key)
	if err != nil || meta == nil {
		return nil, err
	}
	now := b.clock()
	changed := false
	for _, n := range versions {
		vm := meta.Versions[n]
		if vm == nil {
			continue // pruned, never written, or not a version number
		}
		c, err := mutate(ctx, s, key, n, vm, now)
		if err != nil {
			return nil, err
		}
		changed = changed || c
	}
	if !changed {
		return nil, nil
	}
	return nil, b.writeMeta(ctx, s, key, meta)
}

// versionsDelete soft-deletes a version that is live or only scheduled
// for deletion.
func (b *backend) versionsDelete(_ context.Context, _ logical.Storage, _ string, _ int, vm *versionMetadata, now time.Time) (bool, error) {
	if vm.Destroyed || vm.deleted(now) {
		return false, nil
	}
	vm.DeletionTime = &now
	return true, nil
}

// versionsUndelete clears the deletion time of a version not destroyed.
func (b *backend) versionsUndelete(_ context.Context, _ logical.Storage, _ string, _ int, vm *versionMetadata, _ time.Time) (bool, error) {
	if vm.Destroyed || vm.DeletionTime == nil {
		return false, nil
	}
	vm.DeletionTime = nil
	return true, nil
}

// versionsDestroy removes a version's data record, then marks it destroyed
// (the caller writes the metadata after), so the data never outlives a
// successful destroy.
func (b *backend) versionsDestroy(ctx context.Context, s logical.Storage, key string, n int, vm *versionMetadata, _ time.Time) (bool, error) {
	if vm.Destroyed {
		return false, nil
	}
	if err := deleteKey(ctx, s, versionKey(key, n)); err != nil {
		return false, err
	}
	vm.Destroyed = true
	return true, nil
}
