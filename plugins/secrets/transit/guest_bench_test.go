//go:build wasip1

package transit

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// Guest-side cost breakdown of an encrypt request, for performance work
// on the WASM build. Run inside a WASI runtime, for example:
//
//	go build -o /tmp/bin/wazero github.com/tetratelabs/wazero/cmd/wazero
//	GOWASIRUNTIME=wazero PATH=/tmp/bin:$PATH GOOS=wasip1 GOARCH=wasm \
//	  go test -exec "$(go env GOROOT)/lib/wasm/go_wasip1_wasm_exec" \
//	  -run XXX -bench 'Guest|Encrypt1KiB' ./plugins/secrets/transit/
//
// BenchmarkEncrypt1KiB there is the handler alone (no transport, no JSON).

func BenchmarkGuestAESGCMSeal1KiB(b *testing.B) {
	block, _ := aes.NewCipher(make([]byte, 32))
	aead, _ := cipher.NewGCM(block)
	benchSeal(b, aead)
}

func BenchmarkGuestChaCha20Poly1305Seal1KiB(b *testing.B) {
	aead, _ := chacha20poly1305.New(make([]byte, 32))
	benchSeal(b, aead)
}

func benchSeal(b *testing.B, aead cipher.AEAD) {
	pt, nonce := make([]byte, 1024), make([]byte, aead.NonceSize())
	out := make([]byte, 0, 2048)
	b.SetBytes(1024)
	for b.Loop() {
		out = aead.Seal(out[:0], nonce, pt, nil)
	}
}

// BenchmarkGuestBase64 decodes a 1 KiB plaintext and encodes its ciphertext.
func BenchmarkGuestBase64(b *testing.B) {
	s := base64.StdEncoding.EncodeToString(make([]byte, 1024))
	for b.Loop() {
		d, _ := base64.StdEncoding.DecodeString(s)
		_ = base64.StdEncoding.EncodeToString(append(d, make([]byte, 28)...))
	}
}

// BenchmarkGuestJSON is what the SDK's transport does around the handler:
// decode the request data, encode the response data (encoding/json).
func BenchmarkGuestJSON(b *testing.B) {
	req, _ := json.Marshal(map[string]any{"plaintext": base64.StdEncoding.EncodeToString(make([]byte, 1024))})
	for b.Loop() {
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(req))
		dec.UseNumber()
		_ = dec.Decode(&m)
		var out bytes.Buffer
		_ = json.NewEncoder(&out).Encode(map[string]any{"ciphertext": m["plaintext"], "key_version": 1})
	}
}
