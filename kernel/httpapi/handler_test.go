package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wardproject/ward/kernel"
	"github.com/wardproject/ward/kernel/storage"
)

// newTestAPI returns an initialized, unsealed core (no plugin mounts: sys/
// and auth/token/ are in-kernel) behind the HTTP handler.
func newTestAPI(t *testing.T, opts Options) (*httptest.Server, *kernel.Core, string) {
	t.Helper()
	core, err := kernel.New(kernel.Config{Storage: storage.NewInmem()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := core.Initialize(ctx, kernel.InitParams{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.Unseal(ctx, res.Keys[0]); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(core, opts))
	t.Cleanup(func() { srv.Close(); core.Shutdown(ctx) })
	return srv, core, res.RootToken
}

type reply struct {
	status int
	body   map[string]any
	raw    string
}

func call(t *testing.T, srv *httptest.Server, method, path, token, body string, hdr ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, raw: string(b)}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &r.body); err != nil {
			t.Fatalf("%s %s: body is not JSON: %q", method, path, b)
		}
	}
	return r
}

func errorsOf(r reply) []any {
	e, _ := r.body["errors"].([]any)
	return e
}

func TestStatusCodesAndErrorShapes(t *testing.T) {
	srv, _, root := newTestAPI(t, Options{MaxRequestSize: 1024})
	cases := []struct {
		name, method, path, token, body string
		hdr                             []string
		want                            int
		wantErr                         string // substring of errors[0]; "" = no check
	}{
		{"no token", "GET", "/v1/sys/mounts", "", "", nil, 403, "permission denied"},
		{"bad token", "GET", "/v1/sys/mounts", "s.bogus", "", nil, 403, "permission denied"},
		{"bearer token", "GET", "/v1/sys/mounts", "", "", []string{"Authorization", "Bearer " + root}, 200, ""},
		{"unknown mount", "GET", "/v1/nosuch/x", root, "", nil, 404, "no handler for route"},
		{"malformed JSON", "POST", "/v1/sys/mounts/x", root, "{not json", nil, 400, "failed to decode JSON input"},
		{"JSON not an object", "POST", "/v1/sys/mounts/x", root, "[1,2]", nil, 400, "failed to decode JSON input"},
		{"trailing data", "POST", "/v1/sys/mounts/x", root, `{"type":"kv"} {}`, nil, 400, "trailing data"},
		{"too large", "POST", "/v1/sys/mounts/x", root, `{"description":"` + strings.Repeat("a", 2048) + `"}`, nil, 413, "too large"},
		{"PATCH without merge-patch", "PATCH", "/v1/sys/mounts/x", root, "{}", nil, 415, "merge-patch+json"},
		{"unknown method", "TRACE", "/v1/sys/mounts", root, "", nil, 405, ""},
		{"unsupported operation", "DELETE", "/v1/sys/plugins/catalog", root, "", nil, 405, "unsupported operation"},
		{"unsupported path in sys", "GET", "/v1/sys/nonsense", root, "", nil, 404, "unsupported path"},
		{"wrap ttl wraps", "GET", "/v1/sys/mounts", root, "", []string{"X-Vault-Wrap-TTL", "60s"}, 200, ""},
		{"wrap ttl garbage", "GET", "/v1/sys/mounts", root, "", []string{"X-Vault-Wrap-TTL", "soon"}, 400, "X-Vault-Wrap-TTL"},
		{"wrap ttl negative", "GET", "/v1/sys/mounts", root, "", []string{"X-Vault-Wrap-TTL", "-5"}, 400, "negative"},
		{"wrap ttl below 1s", "GET", "/v1/sys/mounts", root, "", []string{"X-Vault-Wrap-TTL", "500ms"}, 400, "at least 1s"},
		{"wrap of nothing is 404", "GET", "/v1/sys/mounts/nothing-here", root, "", []string{"X-Vault-Wrap-TTL", "60"}, 404, ""},
		{"unwrap of garbage", "POST", "/v1/sys/wrapping/unwrap", root, `{"token":"s.nope"}`, nil, 400, "wrapping token is not valid or does not exist"},
		{"wrap without ttl", "POST", "/v1/sys/wrapping/wrap", root, `{"a":"b"}`, nil, 400, "endpoint requires response wrapping to be used"},
		{"empty read is 404", "GET", "/v1/sys/mounts/nothing-here", root, "", nil, 404, ""},
		{"empty list is 404", "LIST", "/v1/sys/plugins/catalog/auth", root, "", nil, 404, ""},
		{"list via GET", "GET", "/v1/sys/plugins/catalog/secret?list=true", root, "", nil, 404, ""},
		{"outside /v1", "GET", "/nothing", root, "", nil, 404, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := call(t, srv, tc.method, tc.path, tc.token, tc.body, tc.hdr...)
			if r.status != tc.want {
				t.Fatalf("status %d, want %d (%s)", r.status, tc.want, r.raw)
			}
			if tc.want >= 400 {
				errs := errorsOf(r)
				if errs == nil {
					t.Fatalf("error response without an errors array: %s", r.raw)
				}
				if tc.wantErr != "" && (len(errs) == 0 || !strings.Contains(errs[0].(string), tc.wantErr)) {
					t.Fatalf("errors %v, want %q", errs, tc.wantErr)
				}
			}
		})
	}
}

func TestEnvelopeAndLegacyMountsShape(t *testing.T) {
	srv, _, root := newTestAPI(t, Options{})
	r := call(t, srv, "GET", "/v1/sys/mounts", root, "")
	if r.status != 200 {
		t.Fatal(r.raw)
	}
	for _, k := range []string{"request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info", "warnings", "auth"} {
		if _, ok := r.body[k]; !ok {
			t.Errorf("envelope lacks %q", k)
		}
	}
	if r.body["sys/"] == nil || r.body["data"].(map[string]any)["sys/"] == nil {
		t.Errorf("sys/mounts must list mounts both in data and at the top level: %s", r.raw)
	}
	// A token create lifts the auth block into the envelope.
	r = call(t, srv, "POST", "/v1/auth/token/create", root, `{"policies":["default"],"ttl":"1h"}`)
	auth, _ := r.body["auth"].(map[string]any)
	if r.status != 200 || auth == nil || auth["client_token"] == "" || r.body["data"] != nil {
		t.Fatalf("token create envelope: %s", r.raw)
	}
}

func TestHealthCodes(t *testing.T) {
	srv, core, _ := newTestAPI(t, Options{})
	cases := []struct {
		query string
		want  int
	}{
		{"", 200},
		{"?activecode=299", 299},
		{"?standbyok=true&perfstandbyok=true&drsecondarycode=299&haunhealhty=299", 200},
		{"?activecode=abc", 400},
		{"?activecode=1", 400},
		{"?sealedcode=600", 400},
	}
	for _, tc := range cases {
		if r := call(t, srv, "GET", "/v1/sys/health"+tc.query, "", ""); r.status != tc.want {
			t.Errorf("health%s = %d, want %d", tc.query, r.status, tc.want)
		}
	}
	if err := core.Seal(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := call(t, srv, "GET", "/v1/sys/health", "", ""); r.status != 503 || r.body["sealed"] != true {
		t.Errorf("sealed health = %d %s", r.status, r.raw)
	}
	if r := call(t, srv, "GET", "/v1/sys/health?sealedcode=200", "", ""); r.status != 200 {
		t.Errorf("sealedcode ignored: %d", r.status)
	}
	if r := call(t, srv, "HEAD", "/v1/sys/health", "", ""); r.status != 503 || r.raw != "" {
		t.Errorf("HEAD health = %d %q", r.status, r.raw)
	}
	if r := call(t, srv, "GET", "/v1/sys/mounts", "x", ""); r.status != 503 || !strings.Contains(r.raw, "Vault is sealed") {
		t.Errorf("request while sealed = %d %s", r.status, r.raw)
	}
}

func TestUninitializedServer(t *testing.T) {
	core, err := kernel.New(kernel.Config{Storage: storage.NewInmem()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(core, Options{}))
	defer srv.Close()
	if r := call(t, srv, "GET", "/v1/sys/health", "", ""); r.status != 501 || r.body["initialized"] != false {
		t.Errorf("uninitialized health = %d %s", r.status, r.raw)
	}
	if r := call(t, srv, "GET", "/v1/sys/init", "", ""); r.status != 200 || r.body["initialized"] != false {
		t.Errorf("sys/init = %d %s", r.status, r.raw)
	}
	if r := call(t, srv, "PUT", "/v1/sys/unseal", "", `{"key":"00"}`); r.status != 400 {
		t.Errorf("unseal before init = %d %s", r.status, r.raw)
	}
	if r := call(t, srv, "PUT", "/v1/sys/init", "", `{"secret_shares":3,"secret_threshold":5}`); r.status != 400 {
		t.Errorf("init with threshold > shares = %d %s", r.status, r.raw)
	}
	r := call(t, srv, "PUT", "/v1/sys/init", "", `{"secret_shares":3,"secret_threshold":2}`)
	if r.status != 200 || len(r.body["keys"].([]any)) != 3 || r.body["root_token"] == "" {
		t.Fatalf("init = %d %s", r.status, r.raw)
	}
	if r := call(t, srv, "PUT", "/v1/sys/unseal", "", `{"key":"not-hex-or-base64!"}`); r.status != 400 {
		t.Errorf("garbage key = %d %s", r.status, r.raw)
	}
	key := r.body["keys_base64"].([]any)[0].(string)
	if r := call(t, srv, "PUT", "/v1/sys/unseal", "", `{"key":"`+key+`"}`); r.status != 200 || r.body["progress"] != float64(1) {
		t.Errorf("unseal progress = %d %s", r.status, r.raw)
	}
	if r := call(t, srv, "PUT", "/v1/sys/unseal", "", `{"reset":true}`); r.status != 200 || r.body["progress"] != float64(0) {
		t.Errorf("unseal reset = %d %s", r.status, r.raw)
	}
}

func TestMetricsNeedATokenUnlessConfigured(t *testing.T) {
	srv, _, root := newTestAPI(t, Options{})
	if r := call(t, srv, "GET", "/v1/sys/metrics", "", ""); r.status != 403 {
		t.Errorf("metrics without token = %d", r.status)
	}
	call(t, srv, "GET", "/v1/sys/mounts", root, "") // one request to count
	req, _ := http.NewRequest("GET", srv.URL+"/v1/sys/metrics?format=prometheus", nil)
	req.Header.Set("X-Vault-Token", root)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "ward_core_sealed 0") || !strings.Contains(string(b), `ward_requests_total{code="2xx",mount="sys/",operation="read"} 1`) {
		t.Errorf("metrics = %d:\n%s", resp.StatusCode, b)
	}
	open, _, _ := newTestAPI(t, Options{UnauthenticatedMetrics: true})
	resp, err = http.Get(open.URL + "/v1/sys/metrics")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("unauthenticated metrics = %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
}

// FuzzDecodeBody feeds arbitrary bodies to a write endpoint: the server must
// answer a status below 500 (never crash, never a 5xx for bad input).
func FuzzDecodeBody(f *testing.F) {
	for _, s := range []string{`{}`, `{"type":"kv"}`, `{not json`, `[]`, `null`, `{"config":{"default_lease_ttl":"x"}}`, `{"options":{"version":3}}`} {
		f.Add(s)
	}
	core, err := kernel.New(kernel.Config{Storage: storage.NewInmem()})
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	res, _ := core.Initialize(ctx, kernel.InitParams{SecretShares: 1, SecretThreshold: 1})
	core.Unseal(ctx, res.Keys[0])
	h := New(core, Options{})
	f.Fuzz(func(t *testing.T, body string) {
		for _, path := range []string{"/v1/sys/mounts/fuzz/tune", "/v1/auth/token/create", "/v1/sys/plugins/reload/backend"} {
			req := httptest.NewRequest("POST", path, strings.NewReader(body))
			req.Header.Set("X-Vault-Token", res.RootToken)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code >= 500 {
				t.Fatalf("%s with %q: %d %s", path, body, w.Code, w.Body.String())
			}
		}
	})
}

func TestAuthMethodsList(t *testing.T) {
	srv, _, root := newTestAPI(t, Options{})
	r := call(t, srv, "GET", "/v1/sys/auth", root, "")
	tok, _ := r.body["data"].(map[string]any)["token/"].(map[string]any)
	if r.status != 200 || tok == nil || tok["type"] != "token" || r.body["token/"] == nil {
		t.Fatalf("sys/auth: %d %s", r.status, r.raw)
	}
	if r := call(t, srv, "POST", "/v1/sys/auth/userpass", root, `{"type":"userpass"}`); r.status != 400 {
		t.Fatalf("enable an auth method: %d %s", r.status, r.raw)
	}
	if r := call(t, srv, "DELETE", "/v1/sys/auth/token", root, ""); r.status != 400 {
		t.Fatalf("disable token: %d %s", r.status, r.raw)
	}
}

// TestWrappedEnvelopeAndUnwrap: a wrapped response carries only wrap_info
// (no data, no top-level copies); unwrapping with the wrapping token as
// X-Vault-Token returns the original envelope, once.
func TestWrappedEnvelopeAndUnwrap(t *testing.T) {
	srv, _, root := newTestAPI(t, Options{})
	r := call(t, srv, "GET", "/v1/sys/mounts", root, "", "X-Vault-Wrap-TTL", "5m")
	if r.status != 200 || r.body["data"] != nil || r.body["auth"] != nil || r.body["sys/"] != nil {
		t.Fatalf("wrapped envelope: %s", r.raw)
	}
	wi, _ := r.body["wrap_info"].(map[string]any)
	tok, _ := wi["token"].(string)
	if tok == "" || wi["accessor"] == "" || wi["ttl"] != 300.0 || wi["creation_path"] != "sys/mounts" || wi["creation_time"] == "" {
		t.Fatalf("wrap_info: %s", r.raw)
	}
	if _, ok := wi["wrapped_accessor"]; ok {
		t.Errorf("wrapped_accessor must be omitted when nothing is wrapped with an accessor: %s", r.raw)
	}
	u := call(t, srv, "POST", "/v1/sys/wrapping/unwrap", tok, "")
	data, _ := u.body["data"].(map[string]any)
	if u.status != 200 || data["sys/"] == nil || u.body["request_id"] == "" || u.body["wrap_info"] != nil {
		t.Fatalf("unwrap: %d %s", u.status, u.raw)
	}
	again := call(t, srv, "POST", "/v1/sys/wrapping/unwrap", tok, "")
	if again.status != 400 || !strings.Contains(again.raw, "wrapping token is not valid or does not exist") {
		t.Fatalf("second unwrap: %d %s", again.status, again.raw)
	}
	// A wrapped token create reports the new token's accessor.
	r = call(t, srv, "POST", "/v1/auth/token/create", root, `{"policies":["default"]}`, "X-Vault-Wrap-TTL", "60")
	wi, _ = r.body["wrap_info"].(map[string]any)
	if r.status != 200 || wi["wrapped_accessor"] == nil || wi["wrapped_accessor"] == "" || r.body["auth"] != nil {
		t.Fatalf("wrapped token create: %s", r.raw)
	}
	u = call(t, srv, "POST", "/v1/sys/wrapping/unwrap", root, `{"token":"`+wi["token"].(string)+`"}`)
	auth, _ := u.body["auth"].(map[string]any)
	if u.status != 200 || auth == nil || auth["accessor"] != wi["wrapped_accessor"] || auth["client_token"] == "" {
		t.Fatalf("unwrapped token create: %s", u.raw)
	}
}
