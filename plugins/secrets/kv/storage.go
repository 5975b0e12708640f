package kv

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wardproject/ward/sdk/jsonvalue"
	"github.com/wardproject/ward/sdk/logical"
)

// Storage key prefixes; see the layout in doc.go.
const (
	v1Prefix      = "entry/"
	configKey     = "config"
	metaPrefix    = "meta/"
	versionPrefix = "ver/"
)

// userKey extracts the user path that follows prefix ("data", "metadata",
// ...) in the request path. It reads req.Path rather than a field because
// the framework only overrides a field with a non-empty capture, so a body
// or query parameter named "path" would otherwise stand in for an empty one.
func userKey(reqPath, prefix string) string {
	return strings.TrimPrefix(strings.TrimPrefix(reqPath, prefix), "/")
}

// validateKey checks a user path that names one secret.
func validateKey(key string) error {
	if key == "" {
		return errMissingPath
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return errInvalidPath
		}
	}
	return nil
}

// listPrefix turns a user folder ("", "a", "a/", "a/b/") into the form
// "a/b/" (or "" for the root), validating it.
func listPrefix(folder string) (string, error) {
	folder = strings.TrimSuffix(folder, "/")
	if folder == "" {
		return "", nil
	}
	if err := validateKey(folder); err != nil {
		return "", err
	}
	return folder + "/", nil
}

func metaKey(key string) string { return metaPrefix + key }

func versionKey(key string, n int) string {
	return versionPrefix + key + "/" + strconv.Itoa(n)
}

// mountConfig is the v2 mount's settings, stored under configKey.
type mountConfig struct {
	MaxVersions         int           `json:"max_versions"`
	CASRequired         bool          `json:"cas_required"`
	DeleteVersionAfter  time.Duration `json:"delete_version_after"`
	MetadataCASRequired bool          `json:"metadata_cas_required"`
}

// keyMetadata is the metadata record of one v2 key, stored under meta/<key>.
type keyMetadata struct {
	CreatedTime            time.Time                `json:"created_time"`
	UpdatedTime            time.Time                `json:"updated_time"`
	CurrentVersion         int                      `json:"current_version"`
	OldestVersion          int                      `json:"oldest_version"`
	MaxVersions            int                      `json:"max_versions"`
	CASRequired            bool                     `json:"cas_required"`
	DeleteVersionAfter     time.Duration            `json:"delete_version_after"`
	CustomMetadata         map[string]string        `json:"custom_metadata,omitempty"`
	CurrentMetadataVersion int                      `json:"current_metadata_version"`
	MetadataCASRequired    bool                     `json:"metadata_cas_required"`
	Versions               map[int]*versionMetadata `json:"versions"`
}

// versionMetadata describes one retained version of a key.
type versionMetadata struct {
	CreatedTime time.Time `json:"created_time"`
	// DeletionTime, when set, is when the version stops being readable: now
	// for a soft delete, or created + delete_version_after.
	DeletionTime *time.Time `json:"deletion_time,omitempty"`
	Destroyed    bool       `json:"destroyed"`
}

// deleted reports whether the version is soft-deleted at now.
func (v *versionMetadata) deleted(now time.Time) bool {
	return v.DeletionTime != nil && !v.DeletionTime.After(now)
}

// versionRecord is one version's data, stored under ver/<key>/<n>. Data is
// kept as the JSON the client sent so numbers survive exactly.
type versionRecord struct {
	Data        json.RawMessage `json:"data"`
	CreatedTime time.Time       `json:"created_time"`
}

// getJSON loads key into out; it reports false when the key is absent.
func getJSON(ctx context.Context, s logical.Storage, key string, out any) (bool, error) {
	e, err := s.Get(ctx, key)
	if err != nil {
		return false, fmt.Errorf("kv: storage get: %w", err)
	}
	if e == nil {
		return false, nil
	}
	if err := json.Unmarshal(e.Value, out); err != nil {
		return false, errCorruptRecord
	}
	return true, nil
}

func putJSON(ctx context.Context, s logical.Storage, key string, v any) error {
	e, err := logical.StorageEntryJSON(key, v)
	if err != nil {
		return fmt.Errorf("kv: encode record: %w", errCorruptRecord)
	}
	if err := s.Put(ctx, e); err != nil {
		return fmt.Errorf("kv: storage put: %w", err)
	}
	return nil
}

// putRecord stores v encoded by marshal (codec.go), as putJSON does.
func putRecord[T any](ctx context.Context, s logical.Storage, key string, marshal func(T) ([]byte, error), v T) error {
	b, err := marshal(v)
	if err != nil {
		return fmt.Errorf("kv: encode record: %w", errCorruptRecord)
	}
	if err := s.Put(ctx, &logical.StorageEntry{Key: key, Value: b}); err != nil {
		return fmt.Errorf("kv: storage put: %w", err)
	}
	return nil
}

func deleteKey(ctx context.Context, s logical.Storage, key string) error {
	if err := s.Delete(ctx, key); err != nil {
		return fmt.Errorf("kv: storage delete: %w", err)
	}
	return nil
}

// decodeObject decodes a stored JSON object keeping numbers exact, as
// encoding/json's Decoder with UseNumber does (sdk/jsonvalue, without
// reflection).
func decodeObject(raw []byte) (map[string]any, error) {
	if len(raw) == 0 {
		return nil, errCorruptRecord // a Decoder finds no value
	}
	m, err := jsonvalue.DecodeObject(raw)
	if err != nil {
		return nil, errCorruptRecord
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}

// encodeObject encodes request data for storage, as json.Marshal does
// (sdk/jsonvalue, without reflection).
func encodeObject(m map[string]any) ([]byte, error) {
	b, err := jsonvalue.Append(nil, m, true)
	if err != nil {
		// The encoder's message names a type or value; keep it out.
		return nil, logical.InvalidRequest("data is not representable as JSON")
	}
	return b, nil
}

// readConfig returns the mount's config (defaults when none is stored),
// from the cache when it holds it.
func (b *backend) readConfig(ctx context.Context, s logical.Storage) (*mountConfig, error) {
	c, hit, token := b.cache.lookupConfig()
	if hit {
		return &c, nil
	}
	if _, err := getJSON(ctx, s, configKey, &c); err != nil {
		return nil, err
	}
	b.cache.populateConfig(token, c)
	return &c, nil
}

// writeConfig stores the mount's config. The caller holds configKey's lock.
func (b *backend) writeConfig(ctx context.Context, s logical.Storage, c *mountConfig) error {
	token := b.cache.configToken()
	if err := putJSON(ctx, s, configKey, c); err != nil {
		b.cache.removeConfig() // the put may have landed
		return err
	}
	b.cache.storeConfig(token, *c)
	return nil
}

// readMeta returns a copy of the metadata of key, or nil when the key does
// not exist, from the cache when it holds it. The caller may change it.
func (b *backend) readMeta(ctx context.Context, s logical.Storage, key string) (*keyMetadata, error) {
	m, hit, token := b.cache.lookup(key)
	if hit {
		return m, nil
	}
	m, err := decodeMeta(ctx, s, key)
	if err != nil {
		return nil, err // nothing cached: storage state unknown
	}
	b.cache.populate(key, token, m)
	return m, nil
}

// decodeMeta reads the metadata of key from storage, nil when absent.
func decodeMeta(ctx context.Context, s logical.Storage, key string) (*keyMetadata, error) {
	e, err := s.Get(ctx, metaKey(key))
	if err != nil {
		return nil, fmt.Errorf("kv: storage get: %w", err)
	}
	if e == nil {
		return nil, nil
	}
	var m keyMetadata
	if err := unmarshalMeta(e.Value, &m); err != nil {
		return nil, errCorruptRecord
	}
	if m.Versions == nil {
		m.Versions = map[int]*versionMetadata{}
	}
	return &m, nil
}

// writeMeta stores the metadata of key. The caller holds key's lock, and
// may keep changing m afterwards: the cache takes a copy.
func (b *backend) writeMeta(ctx context.Context, s logical.Storage, key string, m *keyMetadata) error {
	token := b.cache.token(key)
	if err := putRecord(ctx, s, metaKey(key), marshalMeta, m); err != nil {
		b.cache.remove(key) // the put may have landed
		return err
	}
	b.cache.store(key, token, m)
	return nil
}

// commitVersion writes version n's record and key's metadata, and deletes
// the pruned versions' records, in one atomic batch. The caller holds key's
// lock. The cache follows the same rules as writeMeta.
func (b *backend) commitVersion(ctx context.Context, bs logical.BatchStorage, key string, n int,
	rec versionRecord, meta *keyMetadata, pruned []int) error {
	ve, err := marshalVersion(rec)
	if err != nil {
		return fmt.Errorf("kv: encode record: %w", errCorruptRecord)
	}
	me, err := marshalMeta(meta)
	if err != nil {
		return fmt.Errorf("kv: encode record: %w", errCorruptRecord)
	}
	ops := make([]logical.StorageOp, 0, 2+len(pruned))
	ops = append(ops, logical.StorageOp{Key: versionKey(key, n), Value: ve}, logical.StorageOp{Key: metaKey(key), Value: me})
	for _, p := range pruned {
		ops = append(ops, logical.StorageOp{Key: versionKey(key, p), Delete: true})
	}
	token := b.cache.token(key)
	if err := bs.Batch(ctx, ops); err != nil {
		b.cache.remove(key) // the batch may have landed
		return fmt.Errorf("kv: storage batch: %w", err)
	}
	b.cache.store(key, token, meta)
	return nil
}

// deleteMeta deletes the metadata of key. The caller holds key's lock.
func (b *backend) deleteMeta(ctx context.Context, s logical.Storage, key string) error {
	err := deleteKey(ctx, s, metaKey(key))
	b.cache.remove(key) // after a failure too: the delete may have landed
	return err
}

// readVersionData returns version n's data, or nil if its record is absent.
func readVersionData(ctx context.Context, s logical.Storage, key string, n int) (map[string]any, error) {
	e, err := s.Get(ctx, versionKey(key, n))
	if err != nil {
		return nil, fmt.Errorf("kv: storage get: %w", err)
	}
	if e == nil {
		return nil, nil
	}
	return readVersionObject(e.Value)
}

// storedVersions lists the version numbers that have a record under
// ver/<key>/, including records no metadata refers to any more.
func storedVersions(ctx context.Context, s logical.Storage, key string) ([]int, error) {
	children, err := s.List(ctx, versionPrefix+key+"/")
	if err != nil {
		return nil, fmt.Errorf("kv: storage list: %w", err)
	}
	var out []int
	for _, c := range children {
		if n, err := strconv.Atoi(c); err == nil && n > 0 && strconv.Itoa(n) == c {
			out = append(out, n)
		}
	}
	sort.Ints(out)
	return out, nil
}

// formatTime renders a time as Vault does: RFC 3339 with nanoseconds, UTC.
func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func formatOptionalTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return formatTime(*t)
}

// customMetadataValue renders custom_metadata: null when empty, as Vault does.
func customMetadataValue(m map[string]string) any {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
