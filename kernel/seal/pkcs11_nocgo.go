//go:build !cgo

package seal

import (
	"context"

	"fmt"
)

// PKCS11 is the PKCS#11 seal's Access. This build has no cgo, which the
// PKCS#11 client library needs: every operation fails.
type PKCS11 struct{ cfg PKCS11Config }

var errNoCgo = fmt.Errorf("%w: pkcs11 seal: this ward binary was built without cgo (CGO_ENABLED=0) and cannot load PKCS#11 modules", ErrSealUnavailable)

// NewPKCS11 validates cfg and returns an Access whose operations fail.
func NewPKCS11(cfg PKCS11Config) (*PKCS11, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &PKCS11{cfg: cfg}, nil
}

// Format prints the configuration without the PIN.
func (p *PKCS11) Format(f fmt.State, verb rune) { p.cfg.Format(f, verb) }

func (p *PKCS11) Type() string                   { return TypePKCS11 }
func (p *PKCS11) KeyID() string                  { return p.cfg.KeyLabel }
func (p *PKCS11) Init(ctx context.Context) error { return errNoCgo }
func (p *PKCS11) Encrypt(context.Context, []byte, []byte) ([]byte, error) {
	return nil, errNoCgo
}
func (p *PKCS11) Decrypt(context.Context, []byte, []byte) ([]byte, error) {
	return nil, errNoCgo
}
func (p *PKCS11) BlobKeyID(blob []byte) (string, error) {
	b, err := parsePKCS11Blob(blob)
	if err != nil {
		return "", err
	}
	return b.KeyID, nil
}
func (p *PKCS11) Close() error { return nil }
