package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	testHMACKey    = bytes.Repeat([]byte{7}, 32)
	testSigningKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	testPub        = testSigningKey.Public().(ed25519.PublicKey)
)

var fixedTime = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

func testDeviceConfig() DeviceConfig {
	return DeviceConfig{HMACKey: testHMACKey, SigningKey: testSigningKey}
}

// fakeClock is a settable clock; each call advances it by step.
type fakeClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC), step: time.Millisecond}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.step)
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// secretOf returns the secret values sampleRequest(i) carries, none of
// which may appear in a redacted log.
func secretsOf(i int) []string {
	return []string{
		fmt.Sprintf("token-s.%04d", i),
		fmt.Sprintf("accessor-%04d", i),
		fmt.Sprintf("password-%04d", i),
		fmt.Sprintf("nested-secret-%04d", i),
		fmt.Sprintf("deep-list-secret-%04d", i),
		fmt.Sprintf("meta-secret-%04d", i),
		fmt.Sprintf("header-secret-%04d", i),
		fmt.Sprintf("response-secret-%04d", i),
		fmt.Sprintf("minted-token-%04d", i),
		fmt.Sprintf("minted-accessor-%04d", i),
		fmt.Sprintf("struct-secret-%04d", i),
	}
}

type structValue struct {
	Name   string `json:"name"`
	Number int    `json:"number"`
}

func sampleRequest(i int) *Request {
	return &Request{
		ID:                  fmt.Sprintf("req-%d", i),
		Operation:           "update",
		Path:                "secret/data/app",
		MountPoint:          "secret/",
		MountType:           "kv",
		MountAccessor:       "kv_1234",
		ClientToken:         fmt.Sprintf("token-s.%04d", i),
		ClientTokenAccessor: fmt.Sprintf("accessor-%04d", i),
		Auth: &Auth{
			ClientToken:   fmt.Sprintf("token-s.%04d", i),
			Accessor:      fmt.Sprintf("accessor-%04d", i),
			DisplayName:   "userpass-alice",
			Policies:      []string{"default", "app"},
			TokenPolicies: []string{"default", "app"},
			Metadata:      map[string]string{"note": fmt.Sprintf("meta-secret-%04d", i)},
			EntityID:      "entity-1",
			TokenType:     "service",
			TTL:           time.Hour,
			IssueTime:     time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC),
		},
		Data: map[string]any{
			"data": map[string]any{
				"password": fmt.Sprintf("password-%04d", i),
				"nested":   map[string]any{"deeper": map[string]any{"v": fmt.Sprintf("nested-secret-%04d", i)}},
				"list":     []any{1, true, []any{fmt.Sprintf("deep-list-secret-%04d", i)}},
				"count":    42,
				"ratio":    0.5,
				"enabled":  true,
				"none":     nil,
				"struct":   structValue{Name: fmt.Sprintf("struct-secret-%04d", i), Number: 7},
			},
			"options": map[string]any{"cas": json.Number("3")},
		},
		RemoteAddr: "10.0.0.1:53211",
		WrapTTL:    30 * time.Second,
		Headers:    map[string][]string{"X-Custom": {fmt.Sprintf("header-secret-%04d", i)}},
		PolicyConditions: []Condition{
			{Policy: "app", Pattern: "secret/data/*", Expression: `request.remote_addr.startsWith("10.")`, Result: true},
		},
	}
}

func sampleResponse(i int) *Response {
	return &Response{
		Request:    sampleRequest(i),
		StatusCode: 200,
		Data:       map[string]any{"data": map[string]any{"value": fmt.Sprintf("response-secret-%04d", i)}, "version": 3},
		Auth: &Auth{
			ClientToken: fmt.Sprintf("minted-token-%04d", i),
			Accessor:    fmt.Sprintf("minted-accessor-%04d", i),
			Policies:    []string{"default"},
			TokenType:   "service",
			TTL:         time.Hour,
		},
		Warnings: []string{"a warning"},
		LeaseID:  "secret/creds/abc",
	}
}

func newTestFile(t testing.TB, cfg FileConfig) *FileDevice {
	t.Helper()
	d, err := NewFileDevice(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func logN(t testing.TB, d Device, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		var ev *Event
		if i%2 == 0 {
			ev = &Event{Request: sampleRequest(i)}
		} else {
			ev = &Event{Response: sampleResponse(i)}
		}
		if err := d.Log(context.Background(), ev); err != nil {
			t.Fatalf("Log %d: %v", i, err)
		}
	}
}

func readLines(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func joinLines(lines []string) string { return strings.Join(lines, "\n") + "\n" }

func mustVerify(t testing.TB, log string) *VerifyResult {
	t.Helper()
	res, err := Verify(strings.NewReader(log), testPub)
	if err != nil {
		t.Fatalf("Verify: %v (result %+v)", err, res)
	}
	return res
}

func tempLog(t testing.TB) string { return filepath.Join(t.TempDir(), "audit.log") }
