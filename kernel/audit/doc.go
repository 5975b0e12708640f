// Package audit owns Ward's audit log: the entry format, redaction, the
// audit devices, the broker that fails closed, and the hash chain with
// signed checkpoints that makes a log tamper-evident, with its verifier.
//
// It must never: write a token, an accessor (unless configured) or a
// secret value in clear text (unless the device is configured LogRaw);
// put secret material in an error; let a remote device slow a request
// down; or report an entry as recorded before a synchronous device has
// written it. It does no storage of its own: the kernel keeps the keys and
// the chain state in the barrier and hands them in.
//
// # Entries
//
// Each entry is one line of JSON in Vault's audit format, so log pipelines
// built for Vault or OpenBao parse it:
//
//	{"time":"2026-11-24T10:00:00.123Z","type":"request",
//	 "auth":{"client_token":"hmac-sha256:…","accessor":"hmac-sha256:…","display_name":"userpass-alice",
//	         "policies":["app","default"],"token_policies":[…],"metadata":{"user":"hmac-sha256:…"},
//	         "entity_id":"…","token_type":"service","token_ttl":3600,"token_issue_time":"…"},
//	 "request":{"id":"…","operation":"update","mount_point":"secret/","mount_type":"kv",
//	            "mount_accessor":"kv_…","client_token":"hmac-sha256:…","client_token_accessor":"hmac-sha256:…",
//	            "namespace":{"id":"root"},"path":"secret/data/app","data":{"data":{"password":"hmac-sha256:…"}},
//	            "remote_address":"10.0.0.1","remote_port":53211,"wrap_ttl":30,"headers":{…}},
//	 "error":"…",
//	 "policy_conditions":[{"policy":"app","path":"secret/data/*","expression":"…","result":true}],
//	 "seq":42,"prev":"<hex SHA-256 of line 41>"}
//
// A response entry ("type":"response") repeats auth and request and adds
// "response":{"auth":{…the token a login minted…},"mount_point","mount_type",
// "mount_accessor","secret":{"lease_id"},"data","warnings","redirect",
// "wrap_info":{"ttl","token","accessor","creation_time","creation_path",
// "wrapped_accessor"},"status_code"} (wrap_info only for a wrapped response).
// Ward's additions are policy_conditions (request entries: the CEL
// conditions evaluated for the decision), response.status_code, and seq and
// prev (every line). Map keys are written sorted; HTML characters are not
// escaped.
//
// # Redaction
//
// Unless the device is LogRaw, every string value in request data,
// response data and audited headers, at any depth (maps, slices, structs
// through their JSON form, times, byte slices), is written as
// "hmac-sha256:<hex>" under the device's HMAC key; numbers, booleans and
// nulls are kept, and so are map keys (as in Vault). Client tokens (of the
// caller and of a token a login minted) are always HMAC'd; accessors too
// unless RawAccessors (hmac_accessor = false). Auth metadata values are
// HMAC'd (auth methods put free-form data there). A wrapped response's
// wrap_info token is always HMAC'd, its accessor and wrapped_accessor like
// other accessors. Left in clear, as Vault
// leaves them: paths, operations, mount fields, display names, policy
// names, entity IDs, token types and TTLs, warnings, lease IDs, errors and
// CEL expressions — they say who did what with which authority and never
// carry a secret value (errors never quote request data). Hash computes
// the same HMAC for sys/audit-hash, so an operator can search for a known
// value.
//
// LogRaw writes everything in clear: the log then holds working tokens and
// every secret read or written, and anyone who reads it (or a remote sink)
// owns them. Use it only to debug, on a throwaway server.
//
// # The chain and checkpoints
//
// Each device has its own chain. Line n carries "seq": n (from 1) and
// "prev": the hex SHA-256 of the exact bytes of line n-1 without its
// newline (all zeros for line 1). Every CheckpointEvery entries (default
// 1000), or when an entry comes CheckpointInterval (default 10s) after the
// last checkpoint (checked on each entry, and by a ticker when idle), the
// device appends a checkpoint line, itself part of the chain:
//
//	{"type":"checkpoint","time":"…","seq":1043,"prev":"…","head":"<hash of the last entry line>",
//	 "count":1000,"prev_checkpoint":42,"interval_entries":1000,"interval_ms":10000,
//	 "reason":"entries","signature":"<base64 Ed25519>"}
//
// The signature covers "ward-audit-checkpoint-v1\n" followed by the line
// without its signature field (this exact field order, no spaces); the
// verifier rebuilds that encoding and requires the line to be byte for
// byte canonical. Because prev links every line to the one before, one
// valid signature vouches for every line before it. Reasons: "open" (the
// device opened its output: start, restart, recovery after a failure, new
// file after rotation — so every file starts with, or soon has, a signed
// line), "entries", "interval", "rotate" (last line of a file before
// Reopen), "close", "manual" (FileDevice.Checkpoint). A checkpoint's time
// is never earlier than the entries it covers.
//
// The chain continues across restarts. The device saves its ChainState
// (last seq, last line hash, last checkpoint) through the ChainStore the
// kernel implements over the barrier, after each checkpoint and on Close.
// On open, a file device reads the end of its file: a trailing incomplete
// line (an interrupted write that was never acknowledged) is removed; if
// the last line is not where the saved state ends (a crash after the last
// save, a file restored or replaced), the chain continues from the file's
// last line and the device says so (a warning, Stats.Resyncs). An empty
// file (rotated while Ward was down) continues from the saved state, so
// concatenated rotated files verify as one chain.
//
// # Verification
//
// Verify (and VerifyLog, with an anchor) reads a log and names the first
// bad line: a line edited in any byte (the next line's prev no longer
// matches; the line after that tells which of the two was edited), bad
// JSON, a line removed or lines reordered (seq gap or step back), a bad or
// non-canonical checkpoint, a checkpoint whose head, count or
// prev_checkpoint disagrees with the lines before it, a missing checkpoint
// after an entry that made one due (so removing the last checkpoint, or
// cutting the log just before it, fails), a log without any checkpoint,
// and a log cut in the middle of a line. Lines after the last checkpoint
// are reported as VerifyResult.UnverifiedTail, not as an error: they are
// chained but not yet signed, and nothing in the file can tell whether
// more followed. A log cut exactly after a checkpoint is likewise a valid
// prefix on its own; pass the device's latest checkpoint (LastCheckpoint,
// served as last_checkpoint by sys/audit/<path>/verify-key) as VerifyOptions.Anchor to
// detect that. A log may start mid-chain (a rotated file):
// VerifyResult.FirstSeq and FirstPrev then link it to the previous file.
//
// Keys for `-key` are base64 of the 32 raw Ed25519 public key bytes
// (PublicKeyString, ParsePublicKey).
//
// # Devices
//
// FileDevice is synchronous: Log returns once the line is written — by
// write(2) only, unless Fsync. Concurrent Logs are grouped into one write
// (group commit), which keeps file order equal to chain order and makes
// fsync affordable under load; under load, the Log that writes a group
// first yields the processor once, so the requests running meanwhile can
// join it (each Log still returns only after its own line is written).
// Formatting, redaction and hashing of a line happen before the device
// lock; under it a line only gets its seq and prev. A failed write or open fails the entries
// that were not written, rolls the chain back to the last line written,
// and the device retries opening on every Log (and on its ticker), so it
// recovers without a restart. Reopen (SIGHUP) closes the current file with
// a "rotate" checkpoint and starts the file at Path again. "-" writes to
// standard output.
//
// SocketDevice (tcp, udp, unix) is asynchronous, because one stalled
// collector stalled every request in Vault (hashicorp/vault#5361): Log
// formats and chains the entry and puts it on a bounded queue without
// blocking; a goroutine writes the queue with a write timeout and
// reconnects with backoff. A full queue drops the line (Stats.Dropped); the
// seq gap shows the loss to whoever verifies the remote copy. After a
// reconnection the last batch is sent again, so the collector may see a
// line twice, and lines from two connections may arrive interleaved: order
// them by seq.
//
// # Fail closed
//
// Broker.LogRequest is called before a request runs (also for logins,
// denied requests and errors) and LogResponse after. With no device
// enabled both are no-ops, as in Vault. Otherwise an entry counts as
// recorded when a synchronous device wrote it; asynchronous devices only
// decide when no synchronous device is enabled (then one must have queued
// it while connected). When an entry is not recorded the broker returns an
// error wrapping ErrNotRecorded and the kernel must refuse the request
// before running it (or withhold the response).
//
// # Wiring (what the kernel does)
//
// Per device, the kernel keeps in the barrier an HMAC key (NewKey), the
// seed of an Ed25519 key (NewSigningKey().Seed()) and the ChainState
// document its ChainStore saves. At unseal it builds each configured
// device with NewDevice(ctx, type, options, DeviceConfig{keys, store,
// logger}) and Broker.Enable(path, device); it calls LogRequest before
// running every request (refusing it on error) and LogResponse before
// answering; Broker.Reopen on SIGHUP; Broker.Close at seal. Hash serves
// sys/audit-hash; the device's public key (PublicKeyString) and latest
// checkpoint (Stats().LastCheckpoint) serve the verify-key and checkpoint
// endpoints.
//
// # Cost
//
// Measured (CPU time) on the 2-vCPU test VM (ext4), an entry with ten
// data fields (about 2 KiB per line): formatting and redaction 7–9 µs;
// one entry to a file device 14–15 µs (write(2) only; 11–12 µs at 32
// concurrent clients), and with fsync 34–63 µs at 32 concurrent clients
// but 230–450 µs without concurrency (group commit is what makes fsync
// usable); a request (request and response entries) through the broker to
// one file device 27–30 µs, 21–24 µs at 32 concurrent clients; a socket
// device Log 11 µs. A file device entry allocates almost nothing: entry
// and batch buffers, HMAC and line-hash states are pooled. End to end, a
// file device costs KV v2 reads at 32 clients about 10–17% of their
// throughput (wardbench; the machine is noisy).
// Verification reads about 120 MB/s.
package audit
