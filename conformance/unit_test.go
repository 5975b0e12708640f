package conformance

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"regexp"
	"regexp/syntax"
	"strings"
	"testing"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

func TestSamplePath(t *testing.T) {
	for _, tc := range []struct{ pattern, want string }{
		{"config", "config"},
		{"users/?", "users/"},
		{`users/(?P<username>\w(([\w-.@]+)?\w)?)`, "users/cfprobe1"},
		{"data/(?P<path>.*)", "data/cfprobe1"},
		{`metadata(?:/(?P<path>.*))?`, "metadata/cfprobe1"},
		{`export/(?P<type>\w+)/(?P<name>\w+)(/(?P<version>[0-9]+))?`, "export/cfprobe1/cfprobe1/0"},
		{`random(/(?P<urlsource>[^/]+))?(/(?P<urlbytes>[^/]+))?`, "random/cfprobe1/cfprobe1"},
		{"(?i)Login", "LOGIN"},
		{"a|b", "a"},
	} {
		re, err := syntax.Parse(anchored(tc.pattern), syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := samplePath(re, captureValue, true)
		if !ok || got != tc.want || !regexp.MustCompile(anchored(tc.pattern)).MatchString(got) {
			t.Errorf("samplePath(%q) = %q, %v; want %q", tc.pattern, got, ok, tc.want)
		}
	}
}

// TestAnalyzePathsRouting: a sample reaches its own pattern, not an
// earlier one that also matches it.
func TestAnalyzePathsRouting(t *testing.T) {
	paths := analyzePaths(&logical.Schema{Paths: []logical.PathSchema{
		{Pattern: "keys/?", Operations: []logical.Operation{logical.ListOperation}},
		{Pattern: `keys/(?P<name>\w+)`, Operations: []logical.Operation{logical.ReadOperation}},
		{Pattern: `keys/(?P<name>\w+)/config`, Operations: []logical.Operation{logical.ReadOperation}},
		{Pattern: `(?P<all>.*)`, Operations: []logical.Operation{logical.ReadOperation}},
		{Pattern: `never`, Operations: []logical.Operation{logical.ReadOperation}},
		{Pattern: `(`, Operations: []logical.Operation{logical.ReadOperation}},
	}})
	want := []string{"keys/", "keys/cfprobe1", "keys/cfprobe1/config", "cfprobe1", "", ""}
	for i, p := range paths {
		if p.sample != want[i] {
			t.Errorf("pattern %q: sample %q, want %q", p.ps.Pattern, p.sample, want[i])
		}
	}
	if paths[5].re != nil {
		t.Errorf("a pattern that does not compile has a regexp")
	}
}

func TestUnsupportedOp(t *testing.T) {
	for _, tc := range []struct {
		ops  []logical.Operation
		want logical.Operation
	}{
		{[]logical.Operation{logical.ReadOperation}, logical.ListOperation},
		{[]logical.Operation{logical.ReadOperation, logical.ListOperation, logical.DeleteOperation, logical.PatchOperation}, logical.UpdateOperation},
		// create is served by update, and update by create.
		{[]logical.Operation{logical.ReadOperation, logical.ListOperation, logical.DeleteOperation, logical.PatchOperation, logical.UpdateOperation}, ""},
		{[]logical.Operation{logical.ReadOperation, logical.ListOperation, logical.DeleteOperation, logical.PatchOperation, logical.CreateOperation}, ""},
	} {
		p := &pathInfo{ops: map[logical.Operation]bool{}}
		for _, op := range tc.ops {
			p.ops[op] = true
		}
		got, _ := unsupportedOp(p)
		if got != tc.want {
			t.Errorf("%v: %q, want %q", tc.ops, got, tc.want)
		}
	}
}

func TestOpenAPI(t *testing.T) {
	info := Info{Name: "demo", Version: "1.2.3"}
	good := &logical.Schema{Help: "Demo.", Paths: []logical.PathSchema{
		{Pattern: "users/?", Synopsis: "List.", Operations: []logical.Operation{logical.ListOperation}},
		{Pattern: `users/(?P<name>\w+)`, Synopsis: "A user.", Operations: []logical.Operation{logical.CreateOperation, logical.ReadOperation, logical.UpdateOperation, logical.DeleteOperation, logical.PatchOperation},
			Fields: []logical.FieldInfo{
				{Name: "name", Type: "string"},
				{Name: "ttl", Type: "duration", Default: 0},
				{Name: "max", Type: "int", Default: "60"},
				{Name: "policies", Type: "string-slice", Default: "a,b", Required: true},
				{Name: "mode", Type: "string", AllowedValues: []any{"x", "y"}},
				{Name: "labels", Type: "key-value-pairs"},
			}},
		{Pattern: `random(/(?P<source>[^/]+))?(/(?P<bytes>[^/]+))?`, Synopsis: "Random.", Operations: []logical.Operation{logical.UpdateOperation}},
	}}
	b, err := OpenAPI(info, good, "demo/")
	if err != nil {
		t.Fatalf("OpenAPI: %v\n%s", err, b)
	}
	if v := ValidateOpenAPI(b); len(v) > 0 {
		t.Fatalf("invalid: %v\n%s", v, b)
	}
	var doc struct {
		Paths map[string]map[string]any
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/demo/users/", "/demo/users", "/demo/users/{name}", "/demo/random/{source}/{bytes}", "/demo/random/{source}", "/demo/random"} {
		if doc.Paths[p] == nil {
			t.Errorf("no path %s in %s", p, b)
		}
	}
	if doc.Paths["/demo/random/{bytes}"] != nil {
		t.Errorf("random/{bytes} is not a path of the pattern (random/32 binds source)")
	}

	for _, tc := range []struct {
		schema *logical.Schema
		want   string
	}{
		{&logical.Schema{Paths: []logical.PathSchema{{Pattern: "raw/.*", Operations: []logical.Operation{logical.ReadOperation}}}}, "cannot be expressed"},
		{&logical.Schema{Paths: []logical.PathSchema{{Pattern: "x", Operations: []logical.Operation{logical.UpdateOperation},
			Fields: []logical.FieldInfo{{Name: "f", Type: "unknown"}}}}}, `type "unknown"`},
		{&logical.Schema{Paths: []logical.PathSchema{
			{Pattern: `a/(?P<x>\w+)`, Operations: []logical.Operation{logical.ReadOperation}},
			{Pattern: `a/(?P<y>\w+)`, Operations: []logical.Operation{logical.DeleteOperation}},
		}}, "same hierarchy"},
		{&logical.Schema{Paths: []logical.PathSchema{{Pattern: "x", Operations: []logical.Operation{logical.UpdateOperation},
			Fields: []logical.FieldInfo{{Name: "n", Type: "int", Default: "many"}}}}}, "does not conform"},
		{&logical.Schema{Paths: []logical.PathSchema{{Pattern: "x", Operations: []logical.Operation{logical.UpdateOperation},
			Fields: []logical.FieldInfo{{Name: "b", Type: "bool", AllowedValues: []any{true, "maybe"}}}}}}, "enum value"},
	} {
		b, err := OpenAPI(info, tc.schema, "demo/")
		all := strings.Join(ValidateOpenAPI(b), "; ")
		if err != nil {
			all += "; " + err.Error()
		}
		if !strings.Contains(all, tc.want) {
			t.Errorf("%+v: problems %q, want one with %q", tc.schema.Paths, all, tc.want)
		}
	}
}

func TestValidateOpenAPIRules(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{`{"openapi":"2.0","info":{"title":"t","version":"1"},"paths":{}}`, `"openapi" must be a 3.0.x`},
		{`{"openapi":"3.0.3","info":{"title":"","version":"1"},"paths":{}}`, `"info.title"`},
		{`{"openapi":"3.0.3","info":{"title":"t","version":"1"},"paths":{"x":{}}}`, "does not begin with /"},
		{`{"openapi":"3.0.3","info":{"title":"t","version":"1"},"paths":{"/a/{id}":{"get":{"responses":{"200":{"description":"ok"}}}}}}`, "not declared"},
		{`{"openapi":"3.0.3","info":{"title":"t","version":"1"},"paths":{"/a":{"get":{"responses":{}}}}}`, "no responses"},
		{`{"openapi":"3.0.3","info":{"title":"t","version":"1"},"paths":{"/a":{"get":{"operationId":"x","responses":{"200":{"description":"ok"}}},"delete":{"operationId":"x","responses":{"200":{"description":"ok"}}}}}}`, "operationId"},
		{`{"openapi":"3.0.3","info":{"title":"t","version":"1"},"paths":{"/a":{"parameters":[{"name":"q","in":"path","required":true}],"get":{"responses":{"200":{"description":"ok"}}}}}}`, "does not appear in the path"},
		{`{"openapi":"3.0.3","info":{"title":"t","version":"1"},"paths":{"/a":{"post":{"responses":{"200":{"description":"ok"}},"requestBody":{"content":{"application/json":{"schema":{"type":"array"}}}}}}}}`, "needs items"},
	} {
		if got := strings.Join(ValidateOpenAPI([]byte(tc.doc)), "; "); !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.doc, got, tc.want)
		}
	}
}

func TestParseFixture(t *testing.T) {
	env := map[string]string{"HOST": `db"1`, "PORT": "5432"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	f, err := ParseFixture([]byte(`{"config":{"version":"2"},
		"setup":[{"operation":"update","path":"config/x","data":{"url":"${HOST}:${PORT}","n":1}}],
		"leasing":{"issue":{"operation":"read","path":"creds/x"}}}`), lookup)
	if err != nil {
		t.Fatal(err)
	}
	if f.Setup[0].Data["url"] != `db"1:5432` || f.Config["version"] != "2" || f.Leasing.Issue.Path != "creds/x" {
		t.Errorf("fixture: %+v", f)
	}
	if _, err := ParseFixture([]byte(`{"setup":[{"operation":"update","path":"${NOPE}"}]}`), lookup); err == nil || !strings.Contains(err.Error(), "NOPE") {
		t.Errorf("missing variable: %v", err)
	}
	if _, err := ParseFixture([]byte(`{"setpu":[]}`), lookup); err == nil {
		t.Errorf("unknown field accepted")
	}
	if _, err := ParseFixture([]byte(`{"login":{"request":{"operation":"login","path":"x"}}}`), lookup); err == nil {
		t.Errorf("unknown operation accepted")
	}
	for _, name := range []string{"kv", "userpass", "approle", "jwt", "database"} {
		b, err := builtinFixtures.ReadFile("fixtures/" + name + ".json")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseFixture(b, func(string) (string, bool) { return "x", true }); err != nil {
			t.Errorf("fixtures/%s.json: %v", name, err)
		}
	}
}

func sampleReport() *Report {
	return &Report{Suite: SuiteName, Version: Version, Transport: "go-plugin", Source: "./p",
		Plugin:   &Info{Name: "p", Type: logical.TypeSecret, Version: "1.0.0", SDKVersion: "1.0.0", Capabilities: []string{"kv"}},
		Profiles: []Profile{ProfileCore, ProfileKV}, Started: time.Unix(1700000000, 0), Duration: time.Second,
		Results: []Result{
			{ID: "core.handshake", Profile: ProfileCore, Since: "1.0.0", Description: "handshake", Status: StatusPass, Notes: []string{"a note"}},
			{ID: "core.unknown-path", Profile: ProfileCore, Since: "1.0.0", Description: "unknown path", Status: StatusFail,
				Failures: []Failure{{Message: "did not answer not found <&>", Request: &RequestInfo{Mount: "m/", Operation: "read", Path: "zz"},
					Expected: "error code 2", Actual: "no response"}}},
			{ID: "kv.list", Profile: ProfileKV, Since: "1.0.0", Description: "list", Status: StatusBlocked, Reason: "no mount"},
			{ID: "leasing.issue", Profile: ProfileLeasing, Since: "1.0.0", Description: "issue", Status: StatusSkip, Reason: "capability not declared"},
		}}
}

func TestReportWriters(t *testing.T) {
	rep := sampleReport()
	if rep.Passed() || !slicesEqual(rep.Failed(), []string{"core.unknown-path"}) {
		t.Errorf("Passed %v, Failed %v", rep.Passed(), rep.Failed())
	}
	if c := rep.Counts(); c != (Counts{Pass: 1, Fail: 1, Skip: 1, Blocked: 1}) {
		t.Errorf("counts %+v", c)
	}

	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"FAIL    core.unknown-path", `request:  read "zz" on mount m/`, "expected: error code 2",
		"actual:   no response", "BLOCKED kv.list", "blocked: no mount", "skip: capability not declared", "note: a note",
		"FAIL: 1 passed, 1 failed, 1 blocked, 1 skipped"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}

	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var decoded struct {
		Passed bool
		Counts Counts
		Checks []Result
		Plugin Info
	}
	if err := json.Unmarshal(js.Bytes(), &decoded); err != nil {
		t.Fatal(err)
	}
	if decoded.Passed || decoded.Counts.Fail != 1 || len(decoded.Checks) != 4 || decoded.Checks[1].Failures[0].Request.Path != "zz" ||
		decoded.Plugin.Name != "p" {
		t.Errorf("json: %s", js.String())
	}

	var x bytes.Buffer
	if err := rep.WriteJUnit(&x); err != nil {
		t.Fatal(err)
	}
	var suites struct {
		Tests int `xml:"tests,attr"`
		Suite struct {
			Cases []struct {
				Name      string `xml:"name,attr"`
				Classname string `xml:"classname,attr"`
				Failure   *struct {
					Message string `xml:"message,attr"`
					Body    string `xml:",chardata"`
				} `xml:"failure"`
				Error   *struct{} `xml:"error"`
				Skipped *struct{} `xml:"skipped"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(x.Bytes(), &suites); err != nil {
		t.Fatalf("%v\n%s", err, x.String())
	}
	cs := suites.Suite.Cases
	if suites.Tests != 4 || len(cs) != 4 || cs[1].Failure == nil || cs[1].Failure.Message != "did not answer not found <&>" ||
		!strings.Contains(cs[1].Failure.Body, "expected: error code 2") || cs[2].Error == nil || cs[3].Skipped == nil ||
		cs[0].Classname != "conformance.core" {
		t.Errorf("junit:\n%s", x.String())
	}

	// A skipped check of a declared profile is not a pass.
	rep.Results = []Result{{ID: "kv.list", Profile: ProfileKV, Status: StatusSkip}}
	if rep.Passed() {
		t.Errorf("a skip inside a declared profile passed")
	}
	rep.Results = []Result{{ID: "core.handshake", Profile: ProfileCore, Status: StatusPass},
		{ID: "leasing.issue", Profile: ProfileLeasing, Status: StatusSkip}}
	if !rep.Passed() {
		t.Errorf("a skip of an undeclared profile failed the report")
	}
}

func slicesEqual(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

func TestAbiMarkers(t *testing.T) {
	// A module with two function exports: ward_abi_v1 and ward_abi_v2.
	exp := func(name string) []byte { return append(append([]byte{byte(len(name))}, name...), 0, 0) }
	body := append([]byte{2}, append(exp("ward_abi_v1"), exp("ward_abi_v2")...)...)
	bin := append([]byte("\x00asm\x01\x00\x00\x00"), 7, byte(len(body)))
	bin = append(bin, body...)
	ms, err := abiMarkers(bin)
	if err != nil || len(ms) != 2 || ms[0] != 1 || ms[1] != 2 {
		t.Errorf("markers %v, %v", ms, err)
	}
	if _, err := abiMarkers(bin[:len(bin)-3]); err == nil {
		t.Errorf("truncated module accepted")
	}
}
