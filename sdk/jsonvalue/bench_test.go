package jsonvalue

import (
	"encoding/base64"
	"testing"
)

// The JSON of a transit encrypt and of a KV v2 read, with this package
// and with encoding/json. Run them in a WASI runtime too (see
// plugins/secrets/transit/guest_bench_test.go): the difference is much
// larger there than natively.

var (
	benchEncryptReq  = []byte(`{"plaintext":"` + base64.StdEncoding.EncodeToString(make([]byte, 1024)) + `"}`)
	benchEncryptResp = map[string]any{"ciphertext": "vault:v1:" + base64.StdEncoding.EncodeToString(make([]byte, 1024+28)), "key_version": 1}
	benchKVReadResp  = map[string]any{
		"data": map[string]any{"user": "app", "password": "0123456789abcdef"},
		"metadata": map[string]any{"version": 3, "created_time": "2026-11-24T10:00:00.123456789Z", "deletion_time": "",
			"destroyed": false, "custom_metadata": nil}}
)

func benchDecode(b *testing.B, dec func([]byte) (map[string]any, error), in []byte) {
	for b.Loop() {
		if _, err := dec(in); err != nil {
			b.Fatal(err)
		}
	}
}

func benchEncode(b *testing.B, v any, html bool) {
	var out []byte
	for b.Loop() {
		var err error
		if out, err = Append(out[:0], v, html); err != nil {
			b.Fatal(err)
		}
	}
}

func benchEncodeStd(b *testing.B, v any) {
	for b.Loop() {
		if _, err := stdEncodeJSON(v, false); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJSONDecodeEncrypt(b *testing.B) {
	b.Run("jsonvalue", func(b *testing.B) { benchDecode(b, DecodeObject, benchEncryptReq) })
	b.Run("encoding-json", func(b *testing.B) { benchDecode(b, stdDecodeJSONMap, benchEncryptReq) })
}

func BenchmarkJSONEncodeEncrypt(b *testing.B) {
	b.Run("jsonvalue", func(b *testing.B) { benchEncode(b, benchEncryptResp, false) })
	b.Run("encoding-json", func(b *testing.B) { benchEncodeStd(b, benchEncryptResp) })
}

func BenchmarkJSONEncodeKVRead(b *testing.B) {
	b.Run("jsonvalue", func(b *testing.B) { benchEncode(b, benchKVReadResp, false) })
	b.Run("encoding-json", func(b *testing.B) { benchEncodeStd(b, benchKVReadResp) })
}
