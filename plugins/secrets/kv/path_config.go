package kv

import (
	"context"
	"time"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// defaultMaxVersions applies when neither the key nor the mount sets max_versions.
const defaultMaxVersions = 10

// v2Paths is KV v2. Anything else on the mount is an unsupported path.
func (b *backend) v2Paths() []*framework.Path {
	return []*framework.Path{
		b.pathConfig(),
		b.pathData(),
		b.pathVersionOp("delete", b.versionsDelete, "Soft-delete versions of a secret.",
			`Marks the given versions deleted (deletion_time is set to now); their data
stays in storage and can be restored with undelete/. Versions that are
already deleted, destroyed, pruned or never existed are ignored.`),
		b.pathVersionOp("undelete", b.versionsUndelete, "Restore soft-deleted versions of a secret.",
			`Clears deletion_time of the given versions, including one scheduled by
delete_version_after. Destroyed versions cannot be restored and are ignored.`),
		b.pathVersionOp("destroy", b.versionsDestroy, "Permanently remove versions of a secret.",
			`Removes the data of the given versions from storage and marks them destroyed.
Their metadata remains; reading them answers 404 with that metadata.`),
		b.pathMetadata(),
	}
}

func (b *backend) pathConfig() *framework.Path {
	return &framework.Path{
		Pattern: "config",
		Fields: map[string]*framework.FieldSchema{
			"max_versions": {Type: framework.TypeInt,
				Description: "Versions to keep per key when the key sets none. 0 means the default, 10."},
			"cas_required": {Type: framework.TypeBool,
				Description: "If true, every data write must carry options.cas."},
			"delete_version_after": {Type: framework.TypeDurationSecond,
				Description: `If non-zero, each new version is deleted this long after it is written (a key's own smaller setting wins). "0s" clears it.`},
			"metadata_cas_required": {Type: framework.TypeBool,
				Description: "If true, every metadata write must carry metadata_cas."},
		},
		Operations: map[logical.Operation]framework.OperationFunc{
			logical.ReadOperation:   b.configRead,
			logical.UpdateOperation: b.configWrite,
			logical.CreateOperation: b.configWrite,
		},
		HelpSynopsis: "Read or set the mount's defaults for every key.",
		HelpDescription: `The mount's max_versions, cas_required, delete_version_after and
metadata_cas_required apply to every key; a key's metadata can tighten them.
A write changes only the fields it sets.`,
	}
}

func (b *backend) configRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	c, err := b.readConfig(ctx, s)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{
		"max_versions":          c.MaxVersions,
		"cas_required":          c.CASRequired,
		"delete_version_after":  c.DeleteVersionAfter.String(),
		"metadata_cas_required": c.MetadataCASRequired,
	}}, nil
}

func (b *backend) configWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	maxRaw, mOk := d.GetOk("max_versions")
	casRaw, cOk := d.GetOk("cas_required")
	dvaRaw, dOk := d.GetOk("delete_version_after")
	mcasRaw, mcOk := d.GetOk("metadata_cas_required")
	if !mOk && !cOk && !dOk && !mcOk {
		return nil, nil
	}
	if mOk && maxRaw.(int) < 0 {
		return nil, logical.InvalidRequest("max_versions must not be negative")
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	// The config is one record, so concurrent writers race last-wins as in
	// Vault; the lock only orders writers within this process (or WASM
	// mount).
	b.locks.Lock(configKey)
	defer b.locks.Unlock(configKey)
	c, err := b.readConfig(ctx, s)
	if err != nil {
		return nil, err
	}
	if mOk {
		c.MaxVersions = maxRaw.(int)
	}
	if cOk {
		c.CASRequired = casRaw.(bool)
	}
	if dOk {
		c.DeleteVersionAfter = time.Duration(dvaRaw.(int)) * time.Second
	}
	if mcOk {
		c.MetadataCASRequired = mcasRaw.(bool)
	}
	return nil, b.writeConfig(ctx, s, c)
}

// effectiveMaxVersions is the key's max_versions if set, else the mount's,
// else the default.
func effectiveMaxVersions(c *mountConfig, m *keyMetadata) int {
	switch {
	case m.MaxVersions > 0:
		return m.MaxVersions
	case c.MaxVersions > 0:
		return c.MaxVersions
	}
	return defaultMaxVersions
}

// effectiveDeleteVersionAfter is the smaller non-zero of the mount's and
// the key's delete_version_after (0: versions are kept until deleted).
func effectiveDeleteVersionAfter(c *mountConfig, m *keyMetadata) time.Duration {
	switch {
	case c.DeleteVersionAfter <= 0:
		return max(m.DeleteVersionAfter, 0)
	case m.DeleteVersionAfter <= 0:
		return c.DeleteVersionAfter
	}
	return min(c.DeleteVersionAfter, m.DeleteVersionAfter)
}
