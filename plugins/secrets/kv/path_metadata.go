package kv

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"time"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

const (
	casRequiredIgnoredWarning         = `"cas_required" set to false, but is mandated by backend config. This value will be ignored.`
	metadataCASRequiredIgnoredWarning = `"metadata_cas_required" set to false, but is mandated by backend config. This value will be ignored.`
)

func (b *backend) pathMetadata() *framework.Path {
	return &framework.Path{
		// "metadata" and "metadata/" both address the root, for listing.
		Pattern: `metadata(?:/` + framework.MatchAllRegex("path") + `)?`,
		Fields: map[string]*framework.FieldSchema{
			"path": {Type: framework.TypeString, Description: "Location of the secret (taken from the request path)."},
			"max_versions": {Type: framework.TypeInt,
				Description: "Versions to keep for this key; 0 defers to the mount's setting."},
			"cas_required": {Type: framework.TypeBool,
				Description: "If true, data writes to this key must carry options.cas. The mount's setting cannot be relaxed here."},
			"delete_version_after": {Type: framework.TypeDurationSecond,
				Description: `If non-zero, each new version of this key is deleted this long after it is written (the mount's smaller setting wins). "0s" clears it.`},
			"custom_metadata": {Type: framework.TypeMap,
				Description: "Non-secret string pairs describing the key: at most 64, keys up to 128 bytes, values up to 512 bytes. A write replaces them; a patch merges them (null deletes a pair)."},
			"metadata_cas_required": {Type: framework.TypeBool,
				Description: "If true, metadata writes to this key must carry metadata_cas."},
			"metadata_cas": {Type: framework.TypeInt,
				Description: "Check-and-set for metadata writes: must equal the key's current_metadata_version (0 for a new key)."},
		},
		ExistenceCheck: b.metaExists("metadata"),
		Operations: map[logical.Operation]framework.OperationFunc{
			logical.ReadOperation:   b.metadataRead,
			logical.CreateOperation: b.metadataWrite,
			logical.UpdateOperation: b.metadataWrite,
			logical.PatchOperation:  b.metadataPatch,
			logical.DeleteOperation: b.metadataDelete,
			logical.ListOperation:   b.metadataList,
		},
		HelpSynopsis: "Read, set or delete a secret's metadata and settings; list secrets.",
		HelpDescription: `A read returns the key's settings, current and oldest version, and each
retained version's created_time, deletion_time and destroyed flag. A write
sets max_versions, cas_required, delete_version_after, custom_metadata and
metadata_cas_required, creating the key's metadata if needed; a patch
changes only the fields given and needs the key to exist. Metadata writes
honour metadata_cas. A delete permanently removes the key with all its
versions. A list of a folder ("" or ending in "/") returns the keys and
sub-folders under it.`,
	}
}

func (b *backend) metadataRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	key := userKey(req.Path, "metadata")
	if err := validateKey(key); err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	b.locks.RLock(key)
	defer b.locks.RUnlock(key)

	meta, err := b.readMeta(ctx, s, key)
	if err != nil || meta == nil {
		return nil, err
	}
	versions := make(map[string]any, len(meta.Versions))
	for n, vm := range meta.Versions {
		versions[strconv.Itoa(n)] = map[string]any{
			"created_time":  formatTime(vm.CreatedTime),
			"deletion_time": formatOptionalTime(vm.DeletionTime),
			"destroyed":     vm.Destroyed,
		}
	}
	return &logical.Response{Data: map[string]any{
		"cas_required":             meta.CASRequired,
		"created_time":             formatTime(meta.CreatedTime),
		"current_metadata_version": meta.CurrentMetadataVersion,
		"current_version":          meta.CurrentVersion,
		"custom_metadata":          customMetadataValue(meta.CustomMetadata),
		"delete_version_after":     meta.DeleteVersionAfter.String(),
		"max_versions":             meta.MaxVersions,
		"metadata_cas_required":    meta.MetadataCASRequired,
		"oldest_version":           meta.OldestVersion,
		"updated_time":             formatTime(meta.UpdatedTime),
		"versions":                 versions,
	}}, nil
}

// metadataInput is a metadata write or patch, parsed and validated.
type metadataInput struct {
	maxVersions         *int
	casRequired         *bool
	deleteVersionAfter  *time.Duration
	metadataCASRequired *bool
	customMetadata      map[string]string // nil: not set
	customNulls         []string          // keys a patch deletes
	metadataCAS         int
	metadataCASSet      bool
	patch               bool // merge custom_metadata instead of replacing it
}

// settable reports whether the input changes anything; metadata_cas alone
// does not (OpenBao answers such a write 204 without a new metadata version).
func (in *metadataInput) settable() bool {
	return in.maxVersions != nil || in.casRequired != nil || in.deleteVersionAfter != nil ||
		in.metadataCASRequired != nil || in.customMetadata != nil
}

func parseMetadataInput(d *framework.FieldData, patch bool) (*metadataInput, error) {
	in := &metadataInput{patch: patch}
	if v, ok := d.GetOk("max_versions"); ok {
		n := v.(int)
		if n < 0 {
			return nil, logical.InvalidRequest("max_versions must not be negative")
		}
		in.maxVersions = &n
	}
	if v, ok := d.GetOk("cas_required"); ok {
		c := v.(bool)
		in.casRequired = &c
	}
	if v, ok := d.GetOk("delete_version_after"); ok {
		dva := time.Duration(v.(int)) * time.Second
		in.deleteVersionAfter = &dva
	}
	if v, ok := d.GetOk("metadata_cas_required"); ok {
		c := v.(bool)
		in.metadataCASRequired = &c
	}
	if v, ok := d.GetOk("metadata_cas"); ok {
		in.metadataCAS, in.metadataCASSet = v.(int), true
	}
	if v, ok := d.GetOk("custom_metadata"); ok {
		vals, nulls, err := customMetadataInput(v.(map[string]any))
		if err != nil {
			return nil, err
		}
		if !patch {
			for _, k := range nulls {
				vals[k] = "" // rejected below as an empty value, as in Vault
			}
			nulls = nil
		}
		if err := validateCustomMetadata(vals); err != nil {
			return nil, err
		}
		in.customMetadata, in.customNulls = vals, nulls
	}
	return in, nil
}

// apply changes meta per the input and bumps its metadata version.
func (in *metadataInput) apply(meta *keyMetadata) error {
	if in.maxVersions != nil {
		meta.MaxVersions = *in.maxVersions
	}
	if in.casRequired != nil {
		meta.CASRequired = *in.casRequired
	}
	if in.deleteVersionAfter != nil {
		meta.DeleteVersionAfter = *in.deleteVersionAfter
	}
	if in.metadataCASRequired != nil {
		meta.MetadataCASRequired = *in.metadataCASRequired
	}
	if in.customMetadata != nil {
		if !in.patch {
			meta.CustomMetadata = in.customMetadata
		} else {
			merged := maps.Clone(meta.CustomMetadata)
			if merged == nil {
				merged = map[string]string{}
			}
			maps.Copy(merged, in.customMetadata)
			for _, k := range in.customNulls {
				delete(merged, k)
			}
			if err := validateCustomMetadata(merged); err != nil {
				return err
			}
			meta.CustomMetadata = merged
		}
	}
	meta.CurrentMetadataVersion++
	return nil
}

// warnings answers a write that tries to relax a requirement the mount imposes.
func (in *metadataInput) warnings(c *mountConfig) *logical.Response {
	var resp *logical.Response
	if in.casRequired != nil && !*in.casRequired && c.CASRequired {
		resp = &logical.Response{}
		resp.AddWarning(casRequiredIgnoredWarning)
	}
	if in.metadataCASRequired != nil && !*in.metadataCASRequired && c.MetadataCASRequired {
		if resp == nil {
			resp = &logical.Response{}
		}
		resp.AddWarning(metadataCASRequiredIgnoredWarning)
	}
	return resp
}

func checkMetadataCAS(c *mountConfig, meta *keyMetadata, in *metadataInput) error {
	switch {
	case in.metadataCASSet && in.metadataCAS != meta.CurrentMetadataVersion:
		return errMetadataCASMismatch
	case !in.metadataCASSet && (c.MetadataCASRequired || meta.MetadataCASRequired):
		return errMetadataCASRequired
	}
	return nil
}

func (b *backend) metadataWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	return b.metadataUpdate(ctx, req, d, false)
}

func (b *backend) metadataPatch(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	return b.metadataUpdate(ctx, req, d, true)
}

// metadataUpdate serves metadata writes (which create missing metadata)
// and patches (which need it to exist).
func (b *backend) metadataUpdate(ctx context.Context, req *logical.Request, d *framework.FieldData, patch bool) (*logical.Response, error) {
	key := userKey(req.Path, "metadata")
	if err := validateKey(key); err != nil {
		return nil, err
	}
	in, err := parseMetadataInput(d, patch)
	if err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	config, err := b.readConfig(ctx, s)
	if err != nil {
		return nil, err
	}

	b.locks.Lock(key)
	defer b.locks.Unlock(key)

	meta, err := b.readMeta(ctx, s, key)
	if err != nil {
		return nil, err
	}
	if meta == nil && patch {
		return &logical.Response{StatusCode: http.StatusNotFound}, nil
	}
	if !in.settable() {
		return nil, nil
	}
	if meta == nil {
		now := b.clock()
		meta = &keyMetadata{CreatedTime: now, UpdatedTime: now, Versions: map[int]*versionMetadata{}}
	}
	if err := checkMetadataCAS(config, meta, in); err != nil {
		return nil, err
	}
	if err := in.apply(meta); err != nil {
		return nil, err
	}
	if err := b.writeMeta(ctx, s, key, meta); err != nil {
		return nil, err
	}
	return in.warnings(config), nil
}

func (b *backend) metadataDelete(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	key := userKey(req.Path, "metadata")
	if err := validateKey(key); err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	b.locks.Lock(key)
	defer b.locks.Unlock(key)

	meta, err := b.readMeta(ctx, s, key)
	if err != nil {
		return nil, err
	}
	// Version records first: the metadata is what lets a retry find them.
	// Listing also finds records a crash left unreferenced.
	versions, err := storedVersions(ctx, s, key)
	if err != nil {
		return nil, err
	}
	if meta != nil {
		for n, vm := range meta.Versions {
			if !vm.Destroyed {
				versions = append(versions, n)
			}
		}
	}
	seen := make(map[int]bool, len(versions))
	for _, n := range versions {
		if seen[n] {
			continue
		}
		seen[n] = true
		if err := deleteKey(ctx, s, versionKey(key, n)); err != nil {
			return nil, err
		}
	}
	if meta == nil {
		return nil, nil
	}
	return nil, b.deleteMeta(ctx, s, key)
}

func (b *backend) metadataList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	prefix, err := listPrefix(userKey(req.Path, "metadata"))
	if err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	keys, err := s.List(ctx, metaPrefix+prefix)
	if err != nil {
		return nil, fmt.Errorf("kv: storage list: %w", err)
	}
	return logical.ListResponse(keys), nil
}
