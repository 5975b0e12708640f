// Package barrier is the encryption barrier: everything the kernel and its
// plugins store passes through it and reaches physical storage as AES-256-GCM
// ciphertext.
//
// The barrier owns the keyring (the data encryption keys, one per term) and
// the in-memory copy of the root key that encrypts the keyring. Nothing
// outside this package ever sees those keys as bytes. The barrier must never
// write plaintext values to storage, never put key material or values into an
// error or log message, and never hand out a value slice shared with another
// caller. It does not know where the root key comes from: that is the seal's
// business (package seal), which hands it in through Initialize and Unseal.
//
// # Physical layout
//
//	barrier/keyring    the keyring, encrypted with the root key
//	                   (AAD = "barrier/keyring", term field = 0); with a
//	                   seal wrapper: [0x02][wrapper blob of that record]
//	data/<key>         the logical entry <key>, encrypted with the keyring
//	                   key of the term that was active when it was written
//	                   (AAD = "<key>", the logical key)
//
// Every other physical key (seal/..., for instance) belongs to someone else;
// the barrier neither reads nor writes it, except that Initialize and
// Reseal write the seal's records in the same atomic batch as the keyring.
//
// # Seal wrapping
//
// With a SealWrapper (an HSM, given by the seal), the keyring and every
// entry under the seal-wrapped prefixes the kernel names are encrypted by
// the wrapper first: a data record of version 0x02 holds the wrapper's blob
// (AAD = "<key>\x00seal-wrapped", so the version byte is authenticated
// too). Reading them needs the root key and the HSM. Reseal moves the
// keyring and those entries to a new wrapper (or none) and/or a new root key
// in one batch: seal migrations and rekeys.
//
// # Ciphertext format
//
//	[version 0x01][term uint32 big-endian][12-byte random nonce][GCM sealed bytes]
//
// The AAD binds an entry to its key, so an entry copied or moved to another
// key fails to decrypt (ErrCorrupt). The term selects the keyring key. The
// keyring record uses the same format with term 0.
//
// # Keys and terms
//
// Initialize creates a keyring holding term 1. Rotate adds a term and makes it
// active; new writes use the active term and every older term still decrypts,
// so rotation never rewrites data. Reencrypt rewrites, on demand, every
// record older than the active term (in chunks, while writers wait, so no
// write is lost); old terms stay in the keyring for backups. Nonces are
// random, and AES-GCM with random 96-bit nonces should not encrypt much more
// than 2^32 messages under one key: KeyStatus reports the encryption count
// (since unseal, plus what the kernel carries over with AddEncryptions) so
// the kernel can rotate well before that.
//
// Key names are not encrypted: they appear in physical storage and in List
// results as written, as in Vault. Secrets never belong in key names.
//
// # Sealing and what zeroing can and cannot do
//
// Seal zeroes every key byte slice the barrier holds (the root key copy and
// every term key) and drops its cipher.AEAD objects; afterwards every data
// operation returns ErrSealed. Go's crypto/aes keeps an expanded key schedule
// inside each AEAD that no API lets us zero; Seal drops the last references so
// the schedules become garbage, but their bytes remain in memory until the
// collector reuses it. Likewise the Go runtime may have copied key bytes
// (stack growth, for instance) where we cannot reach them. Zeroing narrows
// the window; it is not a guarantee.
//
// # Concurrency
//
// A Barrier is safe for concurrent use. Data operations take a read lock only
// while they encrypt or decrypt, never across storage I/O; Rotate and Seal take
// the write lock only to swap keys in or out. Writes also hold writeMu shared
// across their storage write, which Reencrypt and Reseal take exclusively
// while they rewrite records. Seal wrapper calls (HSM I/O) happen outside
// mu. An operation that has already passed its sealed check when Seal is
// called may still complete.
package barrier
