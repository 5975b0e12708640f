package kv

import (
	"context"
	"net/http"
	"sort"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

func (b *backend) pathData() *framework.Path {
	return &framework.Path{
		Pattern: "data/" + framework.MatchAllRegex("path"),
		Fields: map[string]*framework.FieldSchema{
			"path": {Type: framework.TypeString, Description: "Location of the secret (taken from the request path)."},
			"version": {Type: framework.TypeInt,
				Description: "On read, the version to return; 0 or absent means the latest."},
			"options": {Type: framework.TypeMap,
				Description: `Write options. "cas": the write succeeds only if the key's current version equals it (0: only if the key has no version).`},
			// "data" is read from the raw input instead of being declared:
			// a declared TypeMap would answer a non-object with the
			// framework's message, not Vault's "no data provided".
		},
		TakesArbitraryInput: true,
		ExistenceCheck:      b.metaExists("data"),
		Operations: map[logical.Operation]framework.OperationFunc{
			logical.ReadOperation:   b.dataRead,
			logical.CreateOperation: b.dataWrite,
			logical.UpdateOperation: b.dataWrite,
			logical.PatchOperation:  b.dataPatch,
			logical.DeleteOperation: b.dataDelete,
		},
		HelpSynopsis: "Read, write, patch or soft-delete a versioned secret.",
		HelpDescription: `A write takes {"data": {...}, "options": {"cas": N}} and stores "data" as
a new version, answering that version's metadata. A read returns the latest
version, or ?version=N, as {"data": ..., "metadata": ...}; a deleted or
destroyed version answers 404 with its metadata and null data. A patch
applies "data" as a JSON merge patch (RFC 7386: null removes a key) to the
latest version and stores the result as a new version. A delete soft-deletes
the latest version. Writes and patches honour cas and cas_required; writes
beyond max_versions prune the oldest versions.`,
	}
}

// metaExists is the existence check of paths addressing a v2 key: the key
// exists when it has metadata.
func (b *backend) metaExists(prefix string) framework.ExistenceFunc {
	return func(ctx context.Context, req *logical.Request, _ *framework.FieldData) (bool, error) {
		key := userKey(req.Path, prefix)
		if validateKey(key) != nil {
			return false, nil // the handler reports the error
		}
		s, err := b.storage(req)
		if err != nil {
			return false, err
		}
		m, err := b.readMeta(ctx, s, key)
		return m != nil, err
	}
}

// versionMetadataData renders one version's metadata as data writes answer
// it and reads nest it under "metadata".
func versionMetadataData(n int, vm *versionMetadata, m *keyMetadata) map[string]any {
	return map[string]any{
		"version":         n,
		"created_time":    formatTime(vm.CreatedTime),
		"deletion_time":   formatOptionalTime(vm.DeletionTime),
		"destroyed":       vm.Destroyed,
		"custom_metadata": customMetadataValue(m.CustomMetadata),
	}
}

func (b *backend) dataRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	key := userKey(req.Path, "data")
	if err := validateKey(key); err != nil {
		return nil, err
	}
	n := 0
	if v, ok := d.GetOk("version"); ok {
		if n = v.(int); n < 0 {
			return nil, errInvalidVersion
		}
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
	if n == 0 {
		n = meta.CurrentVersion
	}
	vm := meta.Versions[n]
	if vm == nil {
		return nil, nil
	}
	md := versionMetadataData(n, vm, meta)
	if vm.Destroyed || vm.deleted(b.clock()) {
		return &logical.Response{
			StatusCode: http.StatusNotFound,
			Data:       map[string]any{"data": nil, "metadata": md},
		}, nil
	}
	data, err := readVersionData(ctx, s, key, n)
	if err != nil {
		return nil, err
	}
	if data == nil {
		// Metadata says live but the record is gone: a crash between a
		// destroy's two writes, or another replica pruning it just now.
		b.warn("kv: live version has no data record", "mount_path", req.MountPoint, "version", n)
		return nil, nil
	}
	return &logical.Response{Data: map[string]any{"data": data, "metadata": md}}, nil
}

// casOption returns options.cas and whether the request set it.
func casOption(d *framework.FieldData) (int, bool, error) {
	raw, ok := d.GetOk("options")
	if !ok {
		return 0, false, nil
	}
	v, ok := raw.(map[string]any)["cas"]
	if !ok || v == nil {
		return 0, false, nil
	}
	n, ok := toInt(v)
	if !ok {
		return 0, false, errCASParse
	}
	return n, true, nil
}

// checkCAS applies check-and-set. meta is nil for a key without metadata.
func checkCAS(c *mountConfig, meta *keyMetadata, cas int, casSet bool) error {
	current, keyRequires := 0, false
	if meta != nil {
		current, keyRequires = meta.CurrentVersion, meta.CASRequired
	}
	switch {
	case casSet && cas != current:
		return errCASMismatch
	case !casSet && (c.CASRequired || keyRequires):
		return errCASRequired
	}
	return nil
}

func (b *backend) dataWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	key := userKey(req.Path, "data")
	if err := validateKey(key); err != nil {
		return nil, err
	}
	data, ok := objectField(d.Raw, "data")
	if !ok {
		return nil, errNoData
	}
	encoded, err := encodeObject(data)
	if err != nil {
		return nil, err
	}
	cas, casSet, err := casOption(d)
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
	if err := checkCAS(config, meta, cas, casSet); err != nil {
		return nil, err
	}
	return b.addVersionLocked(ctx, s, req, key, config, meta, encoded)
}

func (b *backend) dataPatch(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	key := userKey(req.Path, "data")
	if err := validateKey(key); err != nil {
		return nil, err
	}
	patch, ok := objectField(d.Raw, "data")
	if !ok {
		return nil, errNoData
	}
	cas, casSet, err := casOption(d)
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
	if meta == nil {
		return &logical.Response{StatusCode: http.StatusNotFound}, nil
	}
	if err := checkCAS(config, meta, cas, casSet); err != nil {
		return nil, err
	}
	n := meta.CurrentVersion
	vm := meta.Versions[n]
	if vm == nil {
		return &logical.Response{StatusCode: http.StatusNotFound}, nil
	}
	if vm.Destroyed || vm.deleted(b.clock()) {
		return &logical.Response{StatusCode: http.StatusNotFound, Data: versionMetadataData(n, vm, meta)}, nil
	}
	current, err := readVersionData(ctx, s, key, n)
	if err != nil {
		return nil, err
	}
	if current == nil {
		b.warn("kv: live version has no data record", "mount_path", req.MountPoint, "version", n)
		return &logical.Response{StatusCode: http.StatusNotFound}, nil
	}
	encoded, err := encodeObject(mergePatch(current, patch).(map[string]any))
	if err != nil {
		return nil, err
	}
	return b.addVersionLocked(ctx, s, req, key, config, meta, encoded)
}

// addVersionLocked stores encoded as the next version of key (meta is nil
// for a new key), prunes versions beyond max_versions, and answers the new
// version's metadata. The caller holds key's lock.
func (b *backend) addVersionLocked(ctx context.Context, s logical.Storage, req *logical.Request,
	key string, config *mountConfig, meta *keyMetadata, encoded []byte) (*logical.Response, error) {
	now := b.clock()
	if meta == nil {
		meta = &keyMetadata{CreatedTime: now, Versions: map[int]*versionMetadata{}}
	}
	n := meta.CurrentVersion + 1
	vm := &versionMetadata{CreatedTime: now}
	if dva := effectiveDeleteVersionAfter(config, meta); dva > 0 {
		t := now.Add(dva)
		vm.DeletionTime = &t
	}
	rec := versionRecord{Data: encoded, CreatedTime: now}
	if bs, ok := s.(logical.BatchStorage); ok {
		// One atomic commit: the version, the metadata that refers to it
		// and the removal of pruned versions land together or not at all.
		meta.CurrentVersion = n
		meta.UpdatedTime = now
		meta.Versions[n] = vm
		pruned := pruneVersions(meta, effectiveMaxVersions(config, meta))
		if err := b.commitVersion(ctx, bs, key, n, rec, meta, pruned); err != nil {
			return nil, err
		}
		return &logical.Response{Data: versionMetadataData(n, vm, meta)}, nil
	}

	// Without batches: the version first, so metadata never refers to a
	// missing record.
	if err := putRecord(ctx, s, versionKey(key, n), marshalVersion, rec); err != nil {
		return nil, err
	}
	meta.CurrentVersion = n
	meta.UpdatedTime = now
	meta.Versions[n] = vm
	pruned := pruneVersions(meta, effectiveMaxVersions(config, meta))
	if err := b.writeMeta(ctx, s, key, meta); err != nil {
		return nil, err
	}

	resp := &logical.Response{Data: versionMetadataData(n, vm, meta)}
	for _, p := range pruned {
		if err := deleteKey(ctx, s, versionKey(key, p)); err != nil {
			// The version is already unreferenced; a metadata delete of
			// the key still finds and removes its record.
			b.warn("kv: could not remove a pruned version", "mount_path", req.MountPoint, "version", p, "error", err)
			resp.AddWarning("error occurred when cleaning up old versions; their data is removed when the key's metadata is deleted")
			break
		}
	}
	return resp, nil
}

// pruneVersions drops from meta the oldest versions beyond maxVersions and
// returns their numbers, oldest first.
func pruneVersions(meta *keyMetadata, maxVersions int) []int {
	if len(meta.Versions) <= maxVersions {
		return nil
	}
	last := meta.CurrentVersion - maxVersions // versions <= last go
	var pruned []int
	for v := range meta.Versions {
		if v <= last {
			delete(meta.Versions, v)
			pruned = append(pruned, v)
		}
	}
	sort.Ints(pruned)
	meta.OldestVersion = last + 1
	return pruned
}

func (b *backend) dataDelete(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	key := userKey(req.Path, "data")
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
	if err != nil || meta == nil {
		return nil, err
	}
	now := b.clock()
	vm := meta.Versions[meta.CurrentVersion]
	if vm == nil || vm.Destroyed || vm.deleted(now) {
		return nil, nil
	}
	vm.DeletionTime = &now
	return nil, b.writeMeta(ctx, s, key, meta)
}
