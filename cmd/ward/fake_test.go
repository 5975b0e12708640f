package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// fakeServer is an httptest server answering Vault API routes with canned
// replies and recording every request, so tests can assert what the CLI sent.
type fakeServer struct {
	t   *testing.T
	srv *httptest.Server

	mu     sync.Mutex // protects the fields below
	routes []route
	reqs   []request
}

type route struct {
	method string
	path   string // exact, or a prefix when it ends in "*"
	reply  func(r request) (int, string)
}

// request is what the fake recorded of one call.
type request struct {
	Method      string
	Path        string
	Query       map[string][]string
	Token       string
	ContentType string
	Body        string
}

// JSON decodes the request body.
func (r request) JSON(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.Body), &m); err != nil {
		t.Fatalf("%s %s: body %q is not a JSON object: %v", r.Method, r.Path, r.Body, err)
	}
	return m
}

func newFakeServer(t *testing.T) *fakeServer {
	f := &fakeServer{t: t}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req := request{
		Method:      r.Method,
		Path:        r.URL.Path,
		Query:       r.URL.Query(),
		Token:       r.Header.Get("X-Vault-Token"),
		ContentType: r.Header.Get("Content-Type"),
		Body:        string(body),
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	var match *route
	for i := range f.routes {
		rt := &f.routes[i]
		if rt.method != r.Method {
			continue
		}
		if p, ok := strings.CutSuffix(rt.path, "*"); ok && strings.HasPrefix(r.URL.Path, p) || rt.path == r.URL.Path {
			match = rt
		}
	}
	f.mu.Unlock()

	status, reply := 404, `{"errors":["no handler for route"]}`
	if match != nil {
		status, reply = match.reply(req)
	}
	if reply != "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(status)
	io.WriteString(w, reply)
}

// on registers a canned reply; later registrations win.
func (f *fakeServer) on(method, path string, status int, reply string) {
	f.onFunc(method, path, func(request) (int, string) { return status, reply })
}

func (f *fakeServer) onFunc(method, path string, reply func(request) (int, string)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes = append(f.routes, route{method: method, path: path, reply: reply})
}

// kvMount makes the ui/mounts probe report a KV mount of the given version
// ("" for a mount without options, as KV v1 may report).
func (f *fakeServer) kvMount(mount, version string) {
	options := "null"
	if version != "" {
		options = `{"version":"` + version + `"}`
	}
	f.on("GET", "/v1/sys/internal/ui/mounts/"+mount+"*", 200,
		`{"request_id":"r","data":{"path":"`+mount+`/","type":"kv","options":`+options+`}}`)
}

// requests returns the recorded requests, the ui/mounts probe excluded.
func (f *fakeServer) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []request
	for _, r := range f.reqs {
		if !strings.HasPrefix(r.Path, "/v1/sys/internal/ui/mounts/") {
			out = append(out, r)
		}
	}
	return out
}

func (f *fakeServer) allRequests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.reqs...)
}

// only asserts exactly one (non-probe) request was made and returns it.
func (f *fakeServer) only(method, path string) request {
	f.t.Helper()
	reqs := f.requests()
	if len(reqs) != 1 {
		f.t.Fatalf("want 1 request (%s %s), got %d: %+v", method, path, len(reqs), reqs)
	}
	r := reqs[0]
	if r.Method != method || r.Path != path {
		f.t.Fatalf("request = %s %s, want %s %s", r.Method, r.Path, method, path)
	}
	return r
}

// isolateEnv clears every variable the CLI reads and points HOME at an
// empty directory, so the developer's own settings never leak into a test.
func isolateEnv(t *testing.T) {
	for _, v := range []string{
		"WARD_ADDR", "VAULT_ADDR", "WARD_TOKEN", "VAULT_TOKEN",
		"WARD_CACERT", "VAULT_CACERT", "WARD_SKIP_VERIFY", "VAULT_SKIP_VERIFY",
		"WARD_FORMAT", "VAULT_FORMAT", "VAULT_MAX_RETRIES",
		"WARD_WRAP_TTL", "VAULT_WRAP_TTL",
		"BAO_ADDR", "BAO_TOKEN",
	} {
		t.Setenv(v, "")
	}
	// Tests of failure paths must not wait for retries with back-off.
	t.Setenv("WARD_MAX_RETRIES", "0")
	t.Setenv("HOME", t.TempDir())
}

// setup isolates the environment and returns a fake server the CLI talks
// to with token "test-token".
func setup(t *testing.T) *fakeServer {
	isolateEnv(t)
	f := newFakeServer(t)
	t.Setenv("WARD_ADDR", f.srv.URL)
	t.Setenv("WARD_TOKEN", "test-token")
	return f
}

// result is one CLI run.
type result struct {
	code   int
	stdout string
	stderr string
}

// ward runs the CLI with args and stdin input, capturing its output.
func ward(t *testing.T, input string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	oldOut, oldErr, oldIn := stdout, stderr, stdin
	stdout, stderr, stdin = &out, &errOut, strings.NewReader(input)
	defer func() { stdout, stderr, stdin = oldOut, oldErr, oldIn }()
	code := run(args)
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

// runCLI runs the CLI with empty stdin (the server tests use it to drive
// the CLI against a real server).
func runCLI(t *testing.T, args ...string) result {
	t.Helper()
	return ward(t, "", args...)
}

// wantCode fails the test when the exit code differs, showing the output.
func (r result) wantCode(t *testing.T, code int) result {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code = %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	return r
}

var columnGap = regexp.MustCompile(`\s{2,}`)

// parseKeyValueTable reads the first "Key  Value" table in out.
func parseKeyValueTable(t *testing.T, out string) map[string]string {
	t.Helper()
	lines := strings.Split(out, "\n")
	start := -1
	for i, l := range lines {
		if columnGap.Split(strings.TrimSpace(l), -1)[0] == "Key" && i+1 < len(lines) &&
			strings.HasPrefix(lines[i+1], "---") {
			start = i + 2
			break
		}
	}
	if start < 0 {
		t.Fatalf("no Key/Value table in output:\n%s", out)
	}
	kv := map[string]string{}
	for _, l := range lines[start:] {
		if strings.TrimSpace(l) == "" {
			break
		}
		parts := columnGap.Split(l, 2)
		v := ""
		if len(parts) == 2 {
			v = parts[1]
		}
		kv[parts[0]] = v
	}
	return kv
}

// parseColumnTable reads a table with a header row and dashes into rows of
// cells keyed by header.
func parseColumnTable(t *testing.T, out string) []map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[1], "--") {
		t.Fatalf("no table in output:\n%s", out)
	}
	// Column starts are where the dashes start.
	var starts []int
	for i := 0; i < len(lines[1]); i++ {
		if lines[1][i] == '-' && (i == 0 || lines[1][i-1] == ' ') {
			starts = append(starts, i)
		}
	}
	cell := func(line string, c int) string {
		if starts[c] >= len(line) {
			return ""
		}
		end := len(line)
		if c+1 < len(starts) && starts[c+1] < end {
			end = starts[c+1]
		}
		return strings.TrimSpace(line[starts[c]:end])
	}
	var header []string
	for c := range starts {
		header = append(header, cell(lines[0], c))
	}
	var rows []map[string]string
	for _, l := range lines[2:] {
		row := map[string]string{}
		for c, h := range header {
			row[h] = cell(l, c)
		}
		rows = append(rows, row)
	}
	return rows
}

func mustJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("output is not a JSON object: %v\n%s", err, s)
	}
	return m
}

// jsonEqual compares a decoded JSON value with the JSON text want.
func jsonEqual(t *testing.T, got any, want string) {
	t.Helper()
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want JSON %s: %v", want, err)
	}
	g, _ := json.Marshal(got)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(g, wb) {
		t.Fatalf("JSON = %s, want %s", g, wb)
	}
}
