package barrier

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/wardproject/ward/kernel/storage"
)

// TestSealZeroesKeys checks that Seal zeroes the key slices it held.
func TestSealZeroesKeys(t *testing.T) {
	ctx := context.Background()
	b := New(storage.NewInmem())
	root := bytes.Repeat([]byte{0xab}, KeySize)
	if err := b.Initialize(ctx, root); err != nil {
		t.Fatal(err)
	}
	if err := b.Unseal(ctx, root); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := b.Rotate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	held := [][]byte{b.rootKey}
	var terms []*termKey
	for _, tk := range b.terms {
		held = append(held, tk.key)
		terms = append(terms, tk)
	}
	if len(held) != 4 {
		t.Fatalf("holding %d keys, want root + 3 terms", len(held))
	}
	for _, k := range held {
		if len(k) != KeySize || bytes.Equal(k, make([]byte, KeySize)) {
			t.Fatal("a held key is already zero or the wrong size")
		}
	}
	b.Seal()
	for i, k := range held {
		if !bytes.Equal(k, make([]byte, KeySize)) {
			t.Errorf("key %d not zeroed after Seal", i)
		}
	}
	for _, tk := range terms {
		if tk.aead != nil || tk.key != nil {
			t.Errorf("term %d still references its key or AEAD", tk.term)
		}
	}
	if b.rootKey != nil || b.rootAEAD != nil || b.terms != nil || b.active != nil {
		t.Error("barrier still references key state after Seal")
	}
	if !bytes.Equal(root, bytes.Repeat([]byte{0xab}, KeySize)) {
		t.Error("Seal zeroed the caller's root key slice")
	}
}

func TestKeyStatusUsesClock(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	b := New(storage.NewInmem())
	b.now = func() time.Time { return now }
	root := bytes.Repeat([]byte{1}, KeySize)
	if err := b.Initialize(ctx, root); err != nil {
		t.Fatal(err)
	}
	if err := b.Unseal(ctx, root); err != nil {
		t.Fatal(err)
	}
	if _, installed, _ := b.KeyStatus(); !installed.Equal(now) {
		t.Fatalf("installed = %v, want %v", installed, now)
	}
	now = now.Add(time.Hour)
	if _, err := b.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if term, installed, _ := b.KeyStatus(); term != 2 || !installed.Equal(now) {
		t.Fatalf("after Rotate KeyStatus = %d, %v; want 2, %v", term, installed, now)
	}
}

func TestEncodeKeyringFitsItsBuffer(t *testing.T) {
	var keys []*termKey
	for i := range 50 {
		keys = append(keys, &termKey{
			term:      math.MaxUint32 - uint32(i),
			key:       bytes.Repeat([]byte{0xff}, KeySize),
			installed: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.FixedZone("x", -14*3600)),
		})
		out := encodeKeyring(math.MaxUint32, keys)
		if len(out) > keyringCap(len(keys)) {
			t.Fatalf("%d keys: encoded %d bytes, buffer holds %d", len(keys), len(out), keyringCap(len(keys)))
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON: %s", out)
		}
	}
}

func TestKeyringRoundTrip(t *testing.T) {
	now := time.Date(2026, 5, 6, 7, 8, 9, 10, time.UTC)
	keys := []*termKey{
		{term: 1, key: bytes.Repeat([]byte{1}, KeySize), installed: now},
		{term: 2, key: bytes.Repeat([]byte{2}, KeySize), installed: now.Add(time.Second)},
	}
	active, terms, err := decodeKeyring(encodeKeyring(2, keys))
	if err != nil {
		t.Fatal(err)
	}
	if active != 2 || len(terms) != 2 {
		t.Fatalf("active %d, %d terms", active, len(terms))
	}
	for _, k := range keys {
		got := terms[k.term]
		if !bytes.Equal(got.key, k.key) || !got.installed.Equal(k.installed) || got.aead == nil {
			t.Fatalf("term %d did not round-trip", k.term)
		}
	}
}

func TestDecodeKeyringRejects(t *testing.T) {
	key := `"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="`
	tests := map[string]string{
		"not json":          `{`,
		"wrong version":     `{"version":2,"active_term":1,"keys":[{"term":1,"key":` + key + `}]}`,
		"no active key":     `{"version":1,"active_term":2,"keys":[{"term":1,"key":` + key + `}]}`,
		"term zero":         `{"version":1,"active_term":0,"keys":[{"term":0,"key":` + key + `}]}`,
		"short key":         `{"version":1,"active_term":1,"keys":[{"term":1,"key":"AQE="}]}`,
		"duplicate term":    `{"version":1,"active_term":1,"keys":[{"term":1,"key":` + key + `},{"term":1,"key":` + key + `}]}`,
		"term after active": `{"version":1,"active_term":1,"keys":[{"term":1,"key":` + key + `},{"term":2,"key":` + key + `}]}`,
	}
	for name, in := range tests {
		if _, _, err := decodeKeyring([]byte(in)); err == nil {
			t.Errorf("%s: decoded", name)
		} else if bytes.Contains([]byte(err.Error()), []byte("AQEB")) {
			t.Errorf("%s: error quotes key material: %v", name, err)
		}
	}
}

// TestHotPathAllocations pins the allocation budget of Get and Put: the
// physical key string and the one value buffer (the inmem backend's own
// copies are counted too).
func TestHotPathAllocations(t *testing.T) {
	ctx := context.Background()
	b := New(storage.NewInmem())
	root := bytes.Repeat([]byte{1}, KeySize)
	if err := b.Initialize(ctx, root); err != nil {
		t.Fatal(err)
	}
	if err := b.Unseal(ctx, root); err != nil {
		t.Fatal(err)
	}
	value := bytes.Repeat([]byte("v"), 256)
	key := "logical/abc/key"
	put := testing.AllocsPerRun(100, func() { _ = b.Put(ctx, key, value) })
	get := testing.AllocsPerRun(100, func() { _, _ = b.Get(ctx, key) })
	// Put: physical key + record; the backend copies the record (1) and
	// builds its batch (2). Get: physical key; the backend's copy is the
	// buffer we decrypt in place.
	if put > 5 || get > 2 {
		t.Fatalf("allocations: Put %v, Get %v", put, get)
	}
	t.Logf("allocations: Put %v, Get %v", put, get)
}

func TestFormatRedacts(t *testing.T) {
	ctx := context.Background()
	b := New(storage.NewInmem())
	root := bytes.Repeat([]byte{0x5a}, KeySize) // "ZZZZ..."
	if err := b.Initialize(ctx, root); err != nil {
		t.Fatal(err)
	}
	if err := b.Unseal(ctx, root); err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		out := fmt.Sprintf(verb, b)
		if bytes.Contains([]byte(out), []byte("ZZZZ")) || bytes.Contains([]byte(out), []byte("5a5a")) || bytes.Contains([]byte(out), []byte("90, 90")) {
			t.Errorf("%s prints the root key: %s", verb, out)
		}
	}
}

// FuzzGetRecord plants arbitrary bytes as a stored entry: Get must never
// panic, and must reject anything it did not write.
func FuzzGetRecord(f *testing.F) {
	ctx := context.Background()
	phys := storage.NewInmem()
	b := New(phys)
	root := bytes.Repeat([]byte{7}, KeySize)
	if err := b.Initialize(ctx, root); err != nil {
		f.Fatal(err)
	}
	if err := b.Unseal(ctx, root); err != nil {
		f.Fatal(err)
	}
	if err := b.Put(ctx, "k", []byte("seed")); err != nil {
		f.Fatal(err)
	}
	valid, _ := phys.Get(ctx, "data/k")
	f.Add(valid)
	f.Add([]byte{1, 0, 0, 0, 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		if err := phys.Put(ctx, "data/fuzz", raw); err != nil {
			t.Fatal(err)
		}
		if v, err := b.Get(ctx, "fuzz"); err == nil {
			t.Fatalf("accepted a record not written for this key: %q", v)
		}
	})
}

// FuzzDecodeKeyring feeds arbitrary keyring plaintext to the decoder.
func FuzzDecodeKeyring(f *testing.F) {
	f.Add(encodeKeyring(1, []*termKey{{term: 1, key: make([]byte, KeySize), installed: time.Unix(0, 0)}}))
	f.Add([]byte(`{"version":1,"active_term":1,"keys":[]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		active, terms, err := decodeKeyring(in)
		if err != nil {
			return
		}
		if terms[active] == nil {
			t.Fatal("decoded keyring has no active key")
		}
		for term, tk := range terms {
			if term == rootTerm || len(tk.key) != KeySize || tk.aead == nil || term > active {
				t.Fatalf("decoded an invalid term %d", term)
			}
		}
	})
}

// tagWrapper is a SealWrapper that only tags its blobs: enough to see
// whether a value went through it.
type tagWrapper struct{}

func (tagWrapper) SealWrap(_ context.Context, pt, aad []byte) ([]byte, error) {
	return append([]byte("wrapped:"), pt...), nil
}

func (tagWrapper) SealUnwrap(_ context.Context, blob, aad []byte) ([]byte, error) {
	return bytes.TrimPrefix(blob, []byte("wrapped:")), nil
}

// TestBatchWrapsAfterWrapperAppears: a Batch whose values were left
// unwrapped (no wrapper yet) while a Reseal installed a wrapper must wrap
// them before writing, as Put does: a seal-wrapped prefix never gets an
// unwrapped record once the barrier has a wrapper.
func TestBatchWrapsAfterWrapperAppears(t *testing.T) {
	ctx := context.Background()
	phys := storage.NewInmem()
	b := New(phys)
	b.SetSealWrap(nil, "sys/token/salt")
	root := bytes.Repeat([]byte{2}, KeySize)
	if err := b.Initialize(ctx, root); err != nil {
		t.Fatal(err)
	}
	if err := b.Unseal(ctx, root); err != nil {
		t.Fatal(err)
	}
	// Hold writeMu as Reseal does while it installs the wrapper; the Batch
	// wraps nothing (no wrapper yet) and waits for writeMu.
	b.writeMu.Lock()
	done := make(chan error, 1)
	go func() {
		done <- b.Batch(ctx, []storage.Op{{Kind: storage.OpPut, Key: "sys/token/salt", Value: []byte("salt")}})
	}()
	time.Sleep(100 * time.Millisecond)
	b.mu.Lock()
	b.wrapper = tagWrapper{}
	b.mu.Unlock()
	b.writeMu.Unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	raw, _ := phys.Get(ctx, "data/sys/token/salt")
	if raw[0] != sealWrappedVersion {
		t.Fatalf("record version %d: written unwrapped under a seal wrapper", raw[0])
	}
	if v, err := b.Get(ctx, "sys/token/salt"); err != nil || string(v) != "salt" {
		t.Fatalf("Get = %q, %v", v, err)
	}
}
