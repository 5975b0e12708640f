package main

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPluginConformanceBuiltin runs `ward plugin conformance` on the kv
// builtin as the server runs it (this test binary re-executed as `ward
// plugin exec kv`, with the real builtin table): the report passes, in
// JSON and JUnit XML. The conformance package's tests run every
// first-party plugin, without the race detector.
func TestPluginConformanceBuiltin(t *testing.T) {
	isolateEnv(t)
	junit := filepath.Join(t.TempDir(), "report.xml")
	r := ward(t, "", "plugin", "conformance", "-json", "-junit="+junit, "kv").wantCode(t, exitOK)
	var rep struct {
		Passed bool
		Plugin struct {
			Name         string
			Capabilities []string
		}
		Counts struct{ Pass, Fail, Skip, Blocked int }
		Checks []struct{ ID, Status string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("-json output: %v\n%s", err, r.stdout)
	}
	if !rep.Passed || rep.Plugin.Name != "kv" || len(rep.Plugin.Capabilities) != 1 || rep.Plugin.Capabilities[0] != "kv" ||
		rep.Counts.Fail != 0 || rep.Counts.Pass < 18 {
		t.Errorf("report: %s", r.stdout)
	}
	b, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	var suites struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Suites   []struct {
			Cases []struct {
				Name    string `xml:"name,attr"`
				Skipped *struct {
					Message string `xml:"message,attr"`
				} `xml:"skipped"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b, &suites); err != nil {
		t.Fatalf("-junit file: %v\n%s", err, b)
	}
	if suites.Tests != len(rep.Checks) || suites.Failures != 0 || len(suites.Suites) != 1 ||
		suites.Suites[0].Cases[0].Name != "core.handshake" {
		t.Errorf("junit: %s", b)
	}

}

// TestPluginConformanceErrors: usage errors are local errors (1); a
// plugin that does not speak the protocol does not conform (2).
func TestPluginConformanceErrors(t *testing.T) {
	isolateEnv(t)
	for _, args := range [][]string{
		{},
		{"a", "b"},
		{"-type=widget", "kv"},
		{"no-such-plugin"},
		{"-env=NOEQUALS", "kv"},
		{"-fixture=/nonexistent/fixture.json", "kv"},
	} {
		r := ward(t, "", append([]string{"plugin", "conformance"}, args...)...)
		if r.code != exitLocal || r.stderr == "" {
			t.Errorf("%v: code %d, stderr %q", args, r.code, r.stderr)
		}
	}
	// A file that is not a plugin: the handshake fails, everything else is blocked.
	notPlugin := filepath.Join(t.TempDir(), "not-a-plugin")
	if err := os.WriteFile(notPlugin, []byte("#!/bin/sh\necho hello\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := ward(t, "", "plugin", "conformance", "-timeout=2s", notPlugin).wantCode(t, exitNonConformant)
	if !strings.Contains(r.stdout, "FAIL    core.handshake") || !strings.Contains(r.stdout, "BLOCKED") {
		t.Errorf("not a plugin:\n%s", r.stdout)
	}
	if h := ward(t, "", "plugin", "conformance", "-h"); !strings.Contains(h.stdout+h.stderr, "Usage: ward plugin conformance") {
		t.Errorf("help: %+v", h)
	}
}
