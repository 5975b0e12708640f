// Package transit is Ward's transit secret engine ("encryption as a
// service"), compatible with the HTTP API of Vault's and OpenBao's transit
// engine: the same paths, fields, response shapes and error messages, so
// the OpenBao Go client and the examples of Vault's documentation work.
// Factory is the only export; cmd/transit-wasm builds the same engine as a
// WASM module. docs/secrets-transit.md lists the API and the differences
// from Vault.
//
// # What it owns and what it must never do
//
// The package owns its mount's storage layout and the named keys in it. It
// must never put key material, plaintext, ciphertext payloads or request
// values in an error or a log line: errors name fields, versions and key
// names only, and a stored record that does not parse is reported without
// the decoder's message. Types that hold keys (keyEntry, keyVersion,
// keyring) have no String method. Cryptography comes from the standard
// library (crypto/aes, crypto/cipher, crypto/ecdsa, crypto/ed25519,
// crypto/rsa, crypto/hmac, crypto/hkdf, crypto/sha256/512/3) and
// golang.org/x/crypto/chacha20poly1305; nothing is hand-rolled, and
// nothing needs cgo or system calls, so the WASM build is the same code.
//
// # Storage layout
//
//	policy/<name>   one named key (JSON, policyRecord): settings and every
//	                version from max(1, min_available_version) to
//	                latest_version, with its material
//	config/keys     mount settings: disable_upsert
//
// The kernel's barrier encrypts both. A key is one record, so creating,
// rotating, reconfiguring, trimming or restoring it is one atomic put.
// Versions below min_decryption_version stay in the record (Vault moves
// them to an archive entry; Ward hides them from reads and exports the
// same way) until trim deletes them.
//
// # Keys in memory
//
// A request never parses a key: each mount caches the parsed keyring of
// its keys (cache.go), immutable snapshots holding a ready cipher.AEAD per
// version (safe for concurrent use) or the parsed private key. Encrypting
// with a cached key is decode base64, seal, encode, with no storage call
// and no lock. Writers of one key (create, rotate, config, trim, delete,
// restore, upsert on encrypt, automatic rotation) serialise on a striped
// per-name mutex, write the new record, then publish a new snapshot; a
// request already holding the previous snapshot finishes with it, which
// orders it before the change. The cache's generation counters keep it
// exact against the host's invalidations (another WASM instance or replica
// changing a key).
//
// # Concurrency across WASM instances
//
// A WASM mount runs several instances of the engine, each with its own
// memory and cache. The per-name locks are sdk/keylock locks, which there
// also take the mount's lock of the name from the host; taking one first
// hands the instance every invalidation other instances caused, so the
// writer re-reads a key another instance changed. Creating, rotating
// (also automatically, on use or periodically), reconfiguring, trimming,
// restoring or deleting a key is therefore serialised across instances
// exactly as within one process, and no version can be lost. The data
// path takes no lock: an encryption on another instance that still holds
// the previous snapshot is ordered before the change, and the instance
// learns of it before its next request. The module declares this
// (ServeOpts.ConcurrentWrites) and the host runs its updates, encrypt
// included, on every instance in parallel.
//
// # Cryptographic choices
//
//   - Ciphertexts are "vault:v<N>:" + base64(nonce | ciphertext | tag),
//     Vault's layout: AES-GCM and ChaCha20-Poly1305 with 12-byte random
//     nonces, XChaCha20-Poly1305 with 24-byte ones; RSA keys encrypt with
//     OAEP (SHA-256). Signatures and HMACs carry the same prefix.
//   - Derived keys use HKDF-SHA256 (RFC 5869) with the version's key as the
//     secret, no salt and the context as info: Vault's "hkdf_sha256" KDF,
//     which Vault gives every derived key it creates today. Vault's legacy
//     "hmac-sha256-counter" KDF is not implemented. Derived Ed25519 keys
//     use 32 derived bytes as the seed, as Vault does.
//   - Convergent encryption (derived keys only) takes its nonce from
//     HMAC-SHA256 of the plaintext under 32 further derived bytes, Vault's
//     convergent version 3. With associated data Ward derives the nonce
//     under a separate key over the associated data too (crypto.go):
//     Vault's nonce ignores it, so one plaintext sealed with two different
//     associated data reuses a GCM nonce. Decryption is unaffected (the
//     nonce travels in the ciphertext).
//   - Each version has its own random 256-bit HMAC key (for hmac keys, the
//     key itself, key_size bytes).
//
// # Semantics chosen where Vault differs or is silent
//
//   - Automatic rotation runs on the host's periodic call (about once a
//     minute) and also on use: the first encrypt, rewrap, datakey, sign or
//     hmac after auto_rotate_period has passed since the newest version
//     rotates the key first, so no output uses an overdue key. Reads never
//     write.
//   - backup/ does not record backup_info on the live key (a read must not
//     write: reads run beside writes in other WASM instances); the backup
//     carries it and the restored key shows it. Backups are Ward's own
//     format; Vault's cannot be restored here, nor Ward's in Vault.
//   - Upserts on encrypt happen only for a create operation (the kernel
//     sends one when the key does not exist and the caller holds the create
//     capability), as in Vault; an update of a missing key is "encryption
//     key not found".
//   - Batches: encrypt and decrypt answer 400 (with the results) when any
//     item failed, 500 when only internal errors did, unless
//     partial_failure_response_code overrides a partial failure; rewrap,
//     sign, verify and hmac answer 200 with per-item errors. That is
//     Vault's behaviour.
package transit
