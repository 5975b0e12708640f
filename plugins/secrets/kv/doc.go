// Package kv is Ward's key/value secret engine, compatible with the HTTP API
// of Vault's and OpenBao's "kv" engine in both of its modes. The mount option
// "version" picks the mode: "" or "1" serves KV v1 (one unversioned JSON
// object per path), "2" serves KV v2 (versioned secrets with check-and-set,
// soft delete, destroy and per-key metadata). Factory is the only export.
//
// # What it owns and what it must never do
//
// The package owns the layout of its mount's storage view and nothing else.
// Storage is the only source of truth: the process state is a striped set
// of mutexes that serialises read-modify-write cycles on one key inside
// this process and, for KV v2, a cache of decoded metadata and config
// records (see "Metadata cache" below). It must never keep secret data (the
// version records, or v1 entries) in memory between requests. It must never
// put secret material (request data, stored values, custom_metadata values)
// in an error or a log line; errors name fields and paths only, and corrupt
// stored records are reported without the decoder's message, which can
// quote stored bytes.
//
// # Storage layout
//
// KV v1:
//
//	entry/<path>           the secret: the request's JSON object, verbatim
//
// KV v2:
//
//	config                 mount settings: max_versions, cas_required,
//	                       delete_version_after, metadata_cas_required (JSON)
//	meta/<path>            key metadata (JSON): current and oldest version,
//	                       created and updated time, the key's own settings,
//	                       custom_metadata, metadata version, and one record per
//	                       retained version {created_time, deletion_time,
//	                       destroyed}
//	ver/<path>/<n>         version n of <path> (JSON): {"data": <object>,
//	                       "created_time": ...}; absent once destroyed or pruned
//
// <path> is the user's path, validated first: no empty, "." or ".."
// segments, no leading or trailing "/". Listing reads the meta/ namespace, so
// its folders mirror user paths. ver/<path>/<n> is unambiguous because <n> is
// the last segment and is all digits; the children of ver/<path>/ that are
// numbers are exactly the versions of <path> (folders there belong to deeper
// paths), which is how deleting a key also finds versions orphaned by a crash.
//
// # Write order
//
// When the host's storage implements logical.BatchStorage (Ward's does), a
// v2 write commits the new version record, the metadata that makes it
// visible and the deletion of versions pruned by max_versions in one atomic
// batch: one durable commit instead of two or three, and no intermediate
// state. Otherwise it puts the version record, then the metadata, then
// deletes the pruned records; a crash leaves at worst an unreferenced
// record that the next write of that version number overwrites or that a
// metadata delete collects. Destroy and
// delete remove version records before the metadata that points at them, so
// secret bytes never outlive a successful destroy; a crash in between leaves
// metadata whose version reads as not found. Across kernel replicas nothing
// here is atomic: storage offers no compare-and-swap, so two replicas writing
// one key at the same instant can both pick the same next version. The
// striped lock makes this impossible within one process.
//
// # WASM instances
//
// Built as a WASM module (cmd/kv-wasm), a mount runs several instances of
// the engine, each with its own memory. The locks are sdk/keylock locks,
// which there also take the mount's lock of the key from the host, and
// taking one first hands the instance every invalidation other instances
// caused: a read-modify-write of a key therefore excludes every other
// instance's and starts from exact metadata, as within one process. The
// module declares so (ServeOpts.ConcurrentWrites), and the host runs its
// writes in parallel across instances.
//
// # Metadata cache
//
// A KV v2 read would take two storage callbacks to the host (meta/<path>,
// then ver/<path>/<n>) and a write a config and a metadata read before its
// puts; each callback is a cross-process round trip, and decoding the
// metadata JSON is a large share of the plugin's CPU. So each v2 backend
// (one per mount) caches the decoded keyMetadata of meta/<path> records and
// the mount config: a read of a cached key makes one callback, for the
// version record, and a write reads nothing.
//
//   - What it holds: metadata and config records, and the absence of
//     metadata for keys read and found missing. Never version data.
//     custom_metadata is in it and is treated like the rest of the
//     metadata: never logged.
//   - When it changes: filled on a read miss; replaced by every successful
//     metadata or config write made through the plugin; dropped on a
//     metadata delete, on any failed put or delete of the record (it may
//     have landed), and on invalidation. A storage read error is never
//     cached. Callers get deep copies, so no handler can change a cached
//     record.
//   - Bound: 65,536 keys per mount (256 per lock stripe), evicting an
//     arbitrary key of the stripe when full: about 64 MiB with the default
//     10 versions per key, more for keys that keep more versions or much
//     custom_metadata (cache.go).
//
// Single node, the cache is exact: the host resolves every request's
// storage to the mount's view, every write of a meta/ or config record
// goes through this process, updates the cache before releasing the key's
// stripe lock, and a per-stripe generation counter stops a reader that
// read storage before a write (or an invalidation) from putting its older
// record back afterwards. cache.go lists the interleavings.
//
// Across replicas the cache relies on the host: after a meta/<path> or
// config record changes by any route other than this process (another
// replica applying a raft entry, a restore), the host must call
// InvalidateKey with the storage key once the change is visible to Get.
// InvalidateKey("meta/<path>") drops that key, "config" drops the config,
// "ver/..." changes nothing (version records are not cached), and any other
// key, including other keys under meta/, clears the whole cache. Until the
// invalidation arrives a read may return the metadata as it was before the
// change (and so, for example, miss a newer version, or report a version
// live that another replica destroyed, whose record then reads as not
// found), and a write of the key from this process may build on it, as
// replicas writing one key concurrently can do without the cache (see
// "Write order"). A host that invalidates as it applies each replicated
// change keeps that window to the replication lag that storage reads on
// the replica have anyway. A write here that races an invalidation of its
// key is not cached, since which of the two puts storage kept is unknown.
//
// # Semantics chosen where Vault and OpenBao differ or are silent
//
//   - Effective max_versions: the key's if > 0, else the mount's if > 0, else
//     10. Pruning happens when a write pushes the count over it (Vault).
//   - Effective delete_version_after: the smaller non-zero of the key's and
//     the mount's (Vault). A version whose deletion_time is not after now
//     reads as deleted. Negative durations (Vault's "disable") are rejected.
//   - current_metadata_version counts metadata writes and patches (not data
//     writes); metadata_cas / metadata_cas_required follow OpenBao 2.x.
//   - A patch of a missing key answers an empty 404 (StatusCode); of a
//     deleted or destroyed latest version, 404 with that version's metadata.
//   - The user path is taken from req.Path, never from a request field, so a
//     body or query parameter named "path" cannot redirect an operation.
package kv
