package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func formatOne(t *testing.T, cfg DeviceConfig, ev *Event) map[string]any {
	t.Helper()
	path := tempLog(t)
	d := newTestFile(t, FileConfig{DeviceConfig: cfg, Path: path})
	if err := d.Log(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestVaultFieldNames(t *testing.T) {
	req := formatOne(t, testDeviceConfig(), &Event{Request: sampleRequest(1)})
	resp := formatOne(t, testDeviceConfig(), &Event{Response: sampleResponse(2)})

	wantKeys := func(where string, m any, keys ...string) {
		t.Helper()
		mm, ok := m.(map[string]any)
		if !ok {
			t.Fatalf("%s: not an object: %v", where, m)
		}
		for _, k := range keys {
			if _, ok := mm[k]; !ok {
				t.Errorf("%s: missing %q in %v", where, k, mm)
			}
		}
	}
	authKeys := []string{"client_token", "accessor", "display_name", "policies", "token_policies", "metadata", "entity_id", "token_type", "token_ttl", "token_issue_time"}
	reqKeys := []string{"id", "operation", "mount_type", "mount_accessor", "mount_point", "client_token", "client_token_accessor", "path", "data", "remote_address", "remote_port", "wrap_ttl", "headers", "namespace"}

	wantKeys("request entry", req, "time", "type", "auth", "request", "policy_conditions", "seq", "prev")
	if req["type"] != "request" {
		t.Errorf("type = %v", req["type"])
	}
	wantKeys("request.auth", req["auth"], authKeys...)
	wantKeys("request.request", req["request"], reqKeys...)
	r := req["request"].(map[string]any)
	if r["remote_address"] != "10.0.0.1" || r["remote_port"] != 53211.0 || r["wrap_ttl"] != 30.0 || r["path"] != "secret/data/app" {
		t.Errorf("request fields: %v", r)
	}
	if a := req["auth"].(map[string]any); a["token_ttl"] != 3600.0 || a["token_issue_time"] != "2026-11-24T09:00:00Z" || a["display_name"] != "userpass-alice" {
		t.Errorf("auth fields: %v", a)
	}
	conds := req["policy_conditions"].([]any)
	wantKeys("policy_conditions[0]", conds[0], "policy", "path", "expression", "result")

	wantKeys("response entry", resp, "time", "type", "auth", "request", "response", "seq", "prev")
	if resp["type"] != "response" {
		t.Errorf("type = %v", resp["type"])
	}
	wantKeys("response.response", resp["response"], "mount_type", "mount_accessor", "mount_point", "auth", "data", "warnings", "secret", "status_code")
	wantKeys("response.response.auth", resp["response"].(map[string]any)["auth"], "client_token", "accessor", "policies", "token_type", "token_ttl")
	if _, ok := resp["policy_conditions"]; ok {
		t.Error("policy_conditions on a response entry")
	}

	// An error and no auth.
	denied := sampleRequest(3)
	denied.Auth, denied.Error = nil, "permission denied"
	m := formatOne(t, testDeviceConfig(), &Event{Request: denied})
	if m["error"] != "permission denied" {
		t.Errorf("error = %v", m["error"])
	}
	if _, ok := m["auth"].(map[string]any); !ok {
		t.Errorf("auth should be an (empty) object, got %v", m["auth"])
	}
}

func TestRedaction(t *testing.T) {
	for _, tc := range []struct {
		name        string
		raw, rawAcc bool
		wantRaw     []string // must appear
	}{
		{name: "default"},
		{name: "raw_accessors", rawAcc: true, wantRaw: []string{"accessor-0001", "minted-accessor-0001"}},
		{name: "log_raw", raw: true, wantRaw: secretsOf(1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tempLog(t)
			cfg := testDeviceConfig()
			cfg.LogRaw, cfg.RawAccessors = tc.raw, tc.rawAcc
			d := newTestFile(t, FileConfig{DeviceConfig: cfg, Path: path})
			ctx := context.Background()
			if err := d.Log(ctx, &Event{Request: sampleRequest(1)}); err != nil {
				t.Fatal(err)
			}
			if err := d.Log(ctx, &Event{Response: sampleResponse(1)}); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(path)
			log := string(b)
			for _, s := range secretsOf(1) {
				want := false
				for _, w := range tc.wantRaw {
					want = want || w == s
				}
				if got := strings.Contains(log, s); got != want {
					t.Errorf("secret %q in log = %v, want %v", s, got, want)
				}
				if !tc.raw && !want && !strings.Contains(log, Hash(testHMACKey, s)) {
					t.Errorf("HMAC of %q not in log", s)
				}
			}
			// Numbers, booleans and non-secret fields are kept.
			for _, s := range []string{`"count":42`, `"ratio":0.5`, `"enabled":true`, `"none":null`, `"number":7`, `"cas":3`, `"version":3`, `"userpass-alice"`, `"secret/data/app"`} {
				if !strings.Contains(log, s) {
					t.Errorf("%s not in log", s)
				}
			}
			mustVerify(t, log)
		})
	}
}

func TestRedactDoesNotModifyInput(t *testing.T) {
	f := newFormatter(testHMACKey, false, false)
	req := sampleRequest(1)
	before, _ := json.Marshal(req.Data)
	if _, err := f.format(&Event{Request: req}, fixedTime); err != nil {
		t.Fatal(err)
	}
	after, _ := json.Marshal(req.Data)
	if string(before) != string(after) {
		t.Fatal("format modified the request data")
	}
}

func TestRedactOddValues(t *testing.T) {
	f := newFormatter(testHMACKey, false, false)
	ch := make(chan int)
	in := map[string]any{
		"bytes":   []byte("byte-secret"),
		"typed":   []map[string]any{{"k": "typed-secret"}},
		"strmap":  map[string]string{"k": "strmap-secret"},
		"strs":    []string{"strs-secret"},
		"raw":     json.RawMessage(`{"k":"raw-secret","n":1}`),
		"badnum":  json.Number("12 secret"),
		"chan":    ch,
		"ptr":     &structValue{Name: "ptr-secret"},
		"float32": float32(1.5),
	}
	self := map[string]any{"k": "cycle-secret"}
	self["self"] = self
	in["cycle"] = self
	e := encoder{f: f}
	e.value(in, 0)
	if !json.Valid(e.buf) {
		t.Fatalf("invalid JSON: %s", e.buf)
	}
	s := string(e.buf)
	if strings.Contains(s, "secret") {
		t.Fatalf("a secret leaked: %s", s)
	}
	if !strings.Contains(s, unloggable) || !strings.Contains(s, `"float32":1.5`) || !strings.Contains(s, `"n":1`) {
		t.Fatalf("unexpected output: %s", s)
	}
}

func TestHash(t *testing.T) {
	d := newTestFile(t, FileConfig{DeviceConfig: testDeviceConfig(), Path: tempLog(t)})
	h := d.Hash("value")
	if h != Hash(testHMACKey, "value") || !strings.HasPrefix(h, "hmac-sha256:") || len(h) != len("hmac-sha256:")+64 {
		t.Fatalf("Hash = %q", h)
	}
	if len(NewKey()) != KeySize {
		t.Fatal("NewKey size")
	}
	if len(NewSigningKey().Seed()) != 32 {
		t.Fatal("NewSigningKey")
	}
	s := PublicKeyString(testPub)
	got, err := ParsePublicKey(" " + s + "\n")
	if err != nil || !got.Equal(testPub) {
		t.Fatalf("ParsePublicKey: %v", err)
	}
	if _, err := ParsePublicKey("bm90IGEga2V5"); err == nil {
		t.Fatal("short key accepted")
	}
}

// In LogRaw mode the encoder must write what encoding/json writes (as
// parsed values): same numbers, strings, escapes and structure.
func TestEncoderMatchesEncodingJSON(t *testing.T) {
	f := newFormatter(testHMACKey, true, false)
	in := map[string]any{
		"s":      "quote\" back\\slash \n\r\t \x01 \x1f <html>&amp; \u2028\u2029 é 😀 \xff\xfe bad",
		"ints":   []any{0, -1, int8(-8), int16(16), int32(-32), int64(1 << 62), uint(1), uint8(8), uint16(16), uint32(32), uint64(1 << 63)},
		"floats": []any{0.0, -0.0, 1.5, 1e-7, 1e21, 123456789.123, float32(0.1), float32(1e-7), 5e-324},
		"nested": map[string]any{"b": []string{"x", "y"}, "a": map[string]string{"z": "w"}, "h": map[string][]string{"k": {"v"}}},
		"num":    json.Number("-12.5e3"),
		"struct": structValue{Name: "n", Number: 3},
		"null":   nil,
		"bool":   false,
	}
	e := encoder{f: f}
	e.value(in, 0)
	want, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	if err := json.Unmarshal(e.buf, &a); err != nil {
		t.Fatalf("%v: %s", err, e.buf)
	}
	json.Unmarshal(want, &b)
	ab, _ := json.Marshal(a)
	bb, _ := json.Marshal(b)
	if string(ab) != string(bb) {
		t.Fatalf("encoder:\n%s\nencoding/json:\n%s", ab, bb)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a", "\"", "\\", "\n", "\x00", "\u2028", "\xff", "é", "<>&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := appendString(nil, s)
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.Encode(s)
		if want := bytes.TrimSuffix(buf.Bytes(), []byte("\n")); !bytes.Equal(got, want) {
			t.Fatalf("appendString(%q) = %s, encoding/json %s", s, got, want)
		}
	})
}

func TestInputsPrintNoSecret(t *testing.T) {
	req, resp := sampleRequest(1), sampleResponse(1)
	cfg := FileConfig{DeviceConfig: testDeviceConfig(), Path: "/var/log/ward.log"}
	for _, s := range []string{
		fmt.Sprintf("%v %+v %#v %s", req, req, *req, req.Auth),
		fmt.Sprintf("%v %#v", resp, resp.Auth),
		fmt.Sprintf("%v %#v %+v", cfg, cfg, cfg.DeviceConfig),
	} {
		for _, secret := range append(secretsOf(1), fmt.Sprintf("%x", testHMACKey[:4]), "7, 7, 7", "[7 7 7") {
			if strings.Contains(s, secret) {
				t.Fatalf("%q printed: %s", secret, s)
			}
		}
	}
}

// A redacted value longer than the HMAC scratch space, and tokens written
// twice in an entry (copied from the first HMAC), hash like Hash.
func TestFormatHMACLongAndRepeated(t *testing.T) {
	f := newFormatter(testHMACKey, false, false)
	long := strings.Repeat("0123456789", 100)
	req := &Request{ID: "r", Operation: "update", Path: "secret/data/x",
		ClientToken: "tok-" + long, ClientTokenAccessor: "acc",
		Auth: &Auth{ClientToken: "tok-" + long, Accessor: "acc"},
		Data: map[string]any{"v": long}}
	b, err := f.format(&Event{Request: req}, fixedTime)
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		Request struct {
			ClientToken         string         `json:"client_token"`
			ClientTokenAccessor string         `json:"client_token_accessor"`
			Data                map[string]any `json:"data"`
		} `json:"request"`
	}
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	tok, acc := Hash(testHMACKey, "tok-"+long), Hash(testHMACKey, "acc")
	if e.Request.ClientToken != tok || e.Request.ClientTokenAccessor != acc || e.Request.Data["v"] != Hash(testHMACKey, long) {
		t.Fatalf("request: %+v", e.Request)
	}
	if !strings.Contains(string(b), `"auth":{"client_token":"`+tok+`","accessor":"`+acc+`"}`) {
		t.Fatalf("auth: %s", b)
	}
}

// TestWrapInfo: a wrapped response's entry carries wrap_info with the
// token always HMAC'd and the accessors HMAC'd unless raw accessors.
func TestWrapInfo(t *testing.T) {
	ev := func() *Event {
		r := sampleResponse(4)
		r.Data, r.Auth, r.LeaseID = nil, nil, ""
		r.WrapInfo = &WrapInfo{Token: "s.wrapping-token-0004", Accessor: "wrapping-accessor-0004", TTL: 5 * time.Minute,
			CreationTime: time.Date(2026, 11, 24, 9, 30, 0, 5, time.UTC), CreationPath: "secret/data/app",
			WrappedAccessor: "wrapped-accessor-0004"}
		return &Event{Response: r}
	}
	m := formatOne(t, testDeviceConfig(), ev())
	wi, _ := m["response"].(map[string]any)["wrap_info"].(map[string]any)
	if wi == nil || wi["ttl"] != 300.0 || wi["creation_path"] != "secret/data/app" || wi["creation_time"] != "2026-11-24T09:30:00.000000005Z" {
		t.Fatalf("wrap_info: %v", wi)
	}
	for _, k := range []string{"token", "accessor", "wrapped_accessor"} {
		if v, _ := wi[k].(string); !strings.HasPrefix(v, "hmac-sha256:") {
			t.Errorf("wrap_info.%s = %q, want an HMAC", k, v)
		}
	}
	cfg := testDeviceConfig()
	cfg.RawAccessors = true
	wi = formatOne(t, cfg, ev())["response"].(map[string]any)["wrap_info"].(map[string]any)
	if !strings.HasPrefix(wi["token"].(string), "hmac-sha256:") || wi["accessor"] != "wrapping-accessor-0004" || wi["wrapped_accessor"] != "wrapped-accessor-0004" {
		t.Errorf("raw accessors: %v", wi)
	}
	// Without a wrapped response there is no wrap_info.
	if _, ok := formatOne(t, testDeviceConfig(), &Event{Response: sampleResponse(5)})["response"].(map[string]any)["wrap_info"]; ok {
		t.Error("wrap_info on an unwrapped response")
	}
}
