// Package kv is Ward's key/value secret engine, compatible with the HTTP API
// of Vault's and OpenBao's "kv" engine in both of its modes. The mount option
// "version" picks the mode: "" or "1" serves KV v1 (one unversioned JSON
// object per path), "2" serves KV v2 (versioned secrets with check-and-set,
// soft delete, destroy and per-key metadata). Factory is the only export.
//
// # What it owns and what it must never do
//
// The package owns the layout of its mount's storage view and nothing else.
// It must never keep secret data or metadata in memory between requests (the
// plugin runs outside the kernel, and several kernel replicas may serve one
// mount): every request reads what it needs from req.Storage. The only
// process state is a striped set of mutexes that serialises read-modify-write
// cycles on one key inside this process. It must never put secret material
// (request data, stored values, custom_metadata values) in an error or a log
// line; errors name fields and paths only, and corrupt stored records are
// reported without the decoder's message, which can quote stored bytes.
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
// A v2 write puts the new version record, then the metadata that makes it
// visible, then deletes the records of versions pruned by max_versions; a
// crash leaves at worst an unreferenced record that the next write of that
// version number overwrites or that a metadata delete collects. Destroy and
// delete remove version records before the metadata that points at them, so
// secret bytes never outlive a successful destroy; a crash in between leaves
// metadata whose version reads as not found. Across kernel replicas nothing
// here is atomic: storage offers no compare-and-swap, so two replicas writing
// one key at the same instant can both pick the same next version. The
// striped lock makes this impossible within one process.
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
