// Package seal owns the unseal key and the unseal process: it turns key
// shares typed in by operators into the barrier's root key.
//
// The Shamir seal generates a random 32-byte unseal key and a random 32-byte
// root key at initialisation, splits the unseal key into shares with Shamir's
// secret sharing over GF(2^8) (github.com/openbao/openbao/sdk/v2/helper/shamir;
// a 1-of-1 configuration hands out the unseal key itself, as Vault does) and
// stores the root key encrypted under the unseal key. Unsealing collects
// shares until the threshold is reached, combines them, decrypts the root key
// and hands it to the barrier. The unseal key itself is never stored.
//
// # Physical layout (plaintext, outside the barrier)
//
//	seal/config     JSON Config: {"type":"shamir","secret_shares":5,"secret_threshold":3}
//	seal/root-key   [version 0x01][12-byte random nonce][AES-256-GCM sealed root key]
//	                under the unseal key, AAD "seal/root-key"
//
// Initialize writes both records in the same atomic batch as the barrier's
// keyring, so a crash never leaves a half-initialised store.
//
// # What this package must never do
//
// It must never store or log the unseal key, a share or the root key, nor put
// them in an error. It zeroes the shares it collected and every combined or
// decrypted key as soon as it is done with them. As with the barrier, that is
// best effort: the Shamir library and crypto/aes make internal copies (the
// polynomial coefficients, the AES key schedule) that no API lets us zero;
// they become garbage when the call returns.
//
// # Concurrency
//
// A Shamir is safe for concurrent use. One mutex serialises unseal attempts;
// it is held across an attempt's few storage reads, which happen only while
// the server is sealed and never on a request path.
package seal
