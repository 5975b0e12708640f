// Package lease is Ward's expiration manager: it owns the leases on the
// secrets engines hand out (dynamic database users, cloud keys...), their
// renewal within a maximum TTL, and their revocation — explicit, by prefix,
// by creating token, or at expiry — with retries that never lose a lease.
//
// It must never: keep per-lease state in memory (memory and unseal time do
// not grow with the number of leases; Vault loads every lease at unseal and
// arms a timer for each); put a lease ID, token hash, InternalData or
// request Data in a log line or an error (InternalData may hold
// credentials; Entry redacts itself when formatted); drop a lease whose
// revocation fails (it is retried, then listed as irrevocable until an
// operator revokes or forces it); or import another kernel package — the
// kernel implements Backend and wires the manager in.
//
// # Storage layout (keys relative to the view given to New)
//
//	id/<lease id>                        JSON Entry. IDs are "<mount point><path>/<random>",
//	                                     so a plain List of id/<prefix> lists a folder of
//	                                     leases (sys/leases/lookup/<prefix>)
//	expiry/<w16>/<w8>/<sec>/<hash>       value: lease ID. The expiry index, ordered by time
//	token/<token hash>/<hash>            value: lease ID. Leases of a token
//	irrevocable/<hash>                   value: lease ID. Leases whose revocation failed
//	                                     MaxAttempts times
//
// <hash> is hex of the first 16 bytes of SHA-256(lease ID). <sec> is the unix
// second the lease is due (its expire time, or the time of its next
// revocation attempt after a failure); <w8> and <w16> are the starts of the
// 2^8 s and 2^16 s windows holding it. Every segment is a unix second,
// zero-padded to 11 digits, so key order is time order.
//
// Why three levels: storage List returns every child of a prefix, with no
// limit. With one folder per second (the token store's layout) the first
// List at unseal returns one name per distinct due second — up to one per
// lease. With windows, the top level grows only with the time span leases
// cover (one name per ~18 h: 43 for 32 days), and every lower List returns
// at most 256 names. One second's folder holds the leases due in that
// second, bounded by how fast they can be written, not by how many exist.
//
// Every write of a lease and its index keys is one atomic batch
// (logical.BatchStorage); on a view without batches, index keys are written
// before the entry and deleted after it, so a crash leaves at worst a
// dangling index key, which Run and Tidy drop.
//
// # Expiry
//
// Run wakes every Interval. It remembers the earliest second it has not
// processed (lowered by every write of an index key) and does no I/O until
// that second arrives; then it walks the index in time order, descending
// only into windows that have started, and stops at the first that has not.
// The leases found are revoked with at most Concurrency engine calls at
// once (16 by default, across the whole manager) and at most 16 times as
// many revocations in progress (the others waiting for a call slot or for
// their storage commit, so that commits share syncs): a million
// simultaneous expiries run as at most 256 goroutines, not a million.
// Unsealing does no I/O at all (New reads nothing); the first Run reads the
// due window only.
//
// Run does not wait for the revocations it started before its next walk:
// a lease that comes due while others are being revoked starts as soon as
// a slot is free, instead of after the slowest revocation of the previous
// walk (which made leases due during a long walk late by its length). An
// in-memory set of the index keys being handled (bounded like the tasks)
// keeps a walk from starting a second handler for one key; a handler that
// must look at its key again (due later in its second, a storage error)
// lowers the next-due second when it finishes.
//
// # Revocation and retries
//
// Revoking calls Backend.RevokeSecret (outside any lock) and, on success,
// deletes the entry and its index keys in one batch, computed from a fresh
// read so that a renewal racing the revocation leaves nothing behind.
// Concurrent revocations of one lease share one engine call.
//
// On failure the lease is kept: RevokeAttempts, LastError and NextAttempt
// are stored and its expiry key moves to NextAttempt (RetryBase doubling to
// RetryMax, equal jitter). Because the schedule is stored, a restarted
// manager continues it instead of hammering the engine. A pending lease
// cannot be renewed. After MaxAttempts failures the lease leaves the expiry
// index for irrevocable/ and is logged at error level; Irrevocable lists
// it, Revoke tries the engine again, RevokePrefix with force forgets it.
//
// RevokeByToken never fails because an engine is down: the leases it cannot
// revoke become pending and Run finishes the job.
//
// # Renewal
//
// Renew requires a renewable, unexpired lease that is not being revoked,
// asks Backend.RenewSecret (outside any lock), then re-reads the lease under
// its lock and applies the answer: new expire time now + TTL (the answer's,
// else the increment, else the current TTL), capped at IssueTime + MaxTTL;
// the answer may lower MaxTTL, never raise it.
//
// # Concurrency
//
// Read-modify-writes of one lease (renew, failure bookkeeping, deletion,
// stale-key checks) hold one of 256 lock stripes chosen by the lease hash,
// never two at once and never across a Backend call. The manager's own
// mutex only guards the sweeper's next-due second, the in-flight map and
// the set of index keys being expired.
//
// # What the kernel decides
//
// TTL defaults and caps (mount tuning, system max) are applied before
// Register: Registration.Secret's TTL and MaxTTL are final. The kernel also
// maps Backend calls to RenewOperation/RevokeOperation requests on the
// mount named by Entry.MountAccessor, and runs Run only where it may write
// (the active node of a cluster).
package lease
