package seal

import (
	"context"

	"github.com/wardproject/ward/kernel/barrier"
)

// Access is the key of an auto-unseal seal: a key the server uses but never
// holds as bytes (an HSM key). The seal encrypts the root key and the
// recovery key with it, and the barrier seal-wraps its keyring and the
// kernel's sensitive entries with it. PKCS11 is the implementation; tests
// may provide others.
//
// Implementations must be safe for concurrent use, bind every blob to its
// additional data, and never put a plaintext, a PIN or key material in an
// error.
type Access interface {
	// Type is the seal type stored in seal/config, e.g. "pkcs11".
	Type() string
	// KeyID identifies the key (the HSM key label). It is recorded in
	// every blob, so that a seal can tell whether a stored root key is
	// its own when deciding whether a migration is pending.
	KeyID() string
	// Init makes sure the key exists, creating it if the configuration
	// allows it. The seal calls it at initialisation and when migrating
	// to this seal, never when unsealing: a key that disappeared must not
	// be silently replaced by a new one.
	Init(ctx context.Context) error
	// Encrypt returns a blob that only Decrypt with the same key and aad
	// opens.
	Encrypt(ctx context.Context, plaintext, aad []byte) ([]byte, error)
	// Decrypt opens a blob made by Encrypt. It returns an error wrapping
	// ErrSealDecrypt if the key does not open it.
	Decrypt(ctx context.Context, blob, aad []byte) ([]byte, error)
	// BlobKeyID returns the KeyID recorded in a blob, without the HSM.
	BlobKeyID(blob []byte) (string, error)
	// Close releases the connection to the HSM.
	Close() error
}

// Wrapper adapts an Access to the barrier's seal wrapper; nil for nil.
func Wrapper(a Access) barrier.SealWrapper {
	if a == nil {
		return nil
	}
	return accessWrapper{a}
}

type accessWrapper struct{ a Access }

func (w accessWrapper) SealWrap(ctx context.Context, plaintext, aad []byte) ([]byte, error) {
	return w.a.Encrypt(ctx, plaintext, aad)
}

func (w accessWrapper) SealUnwrap(ctx context.Context, blob, aad []byte) ([]byte, error) {
	return w.a.Decrypt(ctx, blob, aad)
}
