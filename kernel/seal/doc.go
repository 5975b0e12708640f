// Package seal owns the keys that open the barrier and the ways operators
// and HSMs provide them: it turns key shares typed in by operators, or a
// key held by an HSM, into the barrier's root key.
//
// # Seals
//
// The Shamir seal generates a random 32-byte unseal key and a random
// 32-byte root key at initialisation, splits the unseal key into shares
// with Shamir's secret sharing over GF(2^8)
// (github.com/openbao/openbao/sdk/v2/helper/shamir; a 1-of-1 configuration
// hands out the unseal key itself, as Vault does) and stores the root key
// encrypted under the unseal key. Unsealing collects shares until the
// threshold is reached, combines them, decrypts the root key and hands it
// to the barrier. The unseal key itself is never stored.
//
// An auto-unseal seal has an Access: a key the server uses but never holds
// as bytes. PKCS11 is the one implementation (an HSM key through a
// PKCS#11 module, github.com/miekg/pkcs11; AES-GCM or RSA-OAEP, envelope
// encryption so the HSM only encrypts 32-byte data keys). The Access
// encrypts the root key, so the server unseals at start with no operator
// (AutoUnseal). Operators hold recovery keys instead of unseal keys: shares
// of a random recovery key stored encrypted by the Access. They prove a
// quorum for root token generation and rekeys, unseal after an explicit
// seal, and migrate the seal. The Access also seal-wraps the barrier's
// keyring and the kernel's sensitive entries (barrier.SealWrapper).
//
// # Physical layout (outside the barrier)
//
//	seal/config        JSON Config: {"type":"shamir","secret_shares":5,"secret_threshold":3}
//	                   or {"type":"pkcs11","secret_shares":1,"secret_threshold":1,
//	                       "recovery_shares":5,"recovery_threshold":3}
//	seal/root-key      Shamir: [version 0x01][12-byte nonce][AES-256-GCM root key]
//	                   under the unseal key, AAD "seal/root-key"
//	                   pkcs11: the Access's blob (JSON, see pkcs11Blob), AAD "seal/root-key"
//	seal/recovery-key  pkcs11 only: the Access's blob of the recovery key,
//	                   AAD "seal/recovery-key"
//
// Initialize writes these records in the same atomic batch as the
// barrier's keyring; Rekey, RotateRootKey and Migrate write theirs in the
// same batch as the keyring they re-encrypt or rewrap (barrier.Reseal).
// Whatever crashes, storage is entirely under the old keys or entirely
// under the new ones. A rekey's new shares exist only in the response
// that carries them; PrepareRekey and CommitRekey let the kernel store
// them only after operators have entered a threshold of them back
// (Vault's require_verification), so that a lost response cannot leave
// storage under keys nobody holds.
//
// # Migration
//
// Migrate moves storage from one seal to another while unsealing (Vault's
// `operator unseal -migrate`): Shamir → HSM (the unseal key becomes the
// recovery key, so operators keep their shares), HSM → Shamir (the
// recovery key becomes the unseal key) and HSM → HSM. The root key does
// not change, so no data is re-encrypted; only the seal records, the
// keyring and the seal-wrapped entries are rewritten.
//
// # What this package must never do
//
// It must never store or log the unseal key, the recovery key, a share, the
// root key or an HSM PIN, nor put them in an error. It zeroes the shares it
// collected and every combined or decrypted key as soon as it is done with
// them. As with the barrier, that is best effort: the Shamir library and
// crypto/aes make internal copies (the polynomial coefficients, the AES key
// schedule) that no API lets us zero; they become garbage when the call
// returns. An Access must never create a key while unsealing: a key that
// disappeared from the HSM is an error, never silently replaced.
//
// # Concurrency
//
// A Seal is safe for concurrent use. One mutex serialises unseal attempts;
// it is held across an attempt's few storage reads and HSM calls, which
// happen only while the server is sealed and never on a request path.
// Another serialises the writers of seal records. A PKCS11 pools its HSM
// sessions (at most MaxSessions in use); PKCS#11 modules are loaded once
// per process and shared. A PKCS11 never logs in again with a PIN the
// token refused (tokens lock the PIN after a few failures).
package seal
