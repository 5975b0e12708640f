package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const policyText = `path "secret/data/app/*" {
  capabilities = ["read", "list"]
  condition    = "request.path.startsWith(\"secret/data/app/\")"
}
`

func writePolicyFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPolicyList(t *testing.T) {
	f := setup(t)
	f.on("LIST", "/v1/sys/policies/acl", 200,
		`{"request_id":"r","data":{"keys":["root","default","app"],"policies":["root","default","app"]}}`)

	r := ward(t, "", "policy", "list").wantCode(t, 0)
	if r.stdout != "app\ndefault\nroot\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
	if req := f.only("LIST", "/v1/sys/policies/acl"); req.Token != "test-token" {
		t.Errorf("token = %q", req.Token)
	}

	r = ward(t, "", "policy", "list", "-format=json").wantCode(t, 0)
	if strings.Join(strings.Fields(r.stdout), "") != `["root","default","app"]` {
		t.Errorf("json = %q", r.stdout)
	}

	ward(t, "", "policy", "list", "extra").wantCode(t, exitLocal)

	f = setup(t)
	f.on("LIST", "/v1/sys/policies/acl", 403, `{"errors":["permission denied"]}`)
	r = ward(t, "", "policy", "list").wantCode(t, exitRemote)
	if r.stderr != "Error listing policies: permission denied\n" {
		t.Errorf("stderr = %q", r.stderr)
	}
}

func TestPolicyRead(t *testing.T) {
	f := setup(t)
	f.on("GET", "/v1/sys/policies/acl/app", 200,
		`{"request_id":"r","data":{"name":"app","policy":`+jsonQuote(policyText)+`,"version":1}}`)

	// Names are normalized as the server does.
	r := ward(t, "", "policy", "read", " App ").wantCode(t, 0)
	f.only("GET", "/v1/sys/policies/acl/app")
	if r.stdout != policyText {
		t.Errorf("stdout = %q, want %q", r.stdout, policyText)
	}

	out := mustJSON(t, ward(t, "", "policy", "read", "-format=json", "app").wantCode(t, 0).stdout)
	if out["policy"] != policyText || len(out) != 1 {
		t.Errorf("json = %v", out)
	}

	f = setup(t)
	f.on("GET", "/v1/sys/policies/acl/missing", 404, `{"errors":[]}`)
	r = ward(t, "", "policy", "read", "missing").wantCode(t, exitRemote)
	if r.stderr != "No policy named: missing\n" || r.stdout != "" {
		t.Errorf("stderr = %q, stdout = %q", r.stderr, r.stdout)
	}

	ward(t, "", "policy", "read").wantCode(t, exitLocal)
}

func TestPolicyWrite(t *testing.T) {
	// From a file.
	f := setup(t)
	f.on("PUT", "/v1/sys/policies/acl/app", 204, "")
	file := writePolicyFile(t, "app.hcl", policyText)
	r := ward(t, "", "policy", "write", "app", file).wantCode(t, 0)
	req := f.only("PUT", "/v1/sys/policies/acl/app")
	jsonEqual(t, req.JSON(t), `{"policy":`+jsonQuote(policyText)+`}`)
	if r.stdout != "Success! Uploaded policy: app\n" {
		t.Errorf("stdout = %q", r.stdout)
	}

	// From stdin.
	f = setup(t)
	f.on("PUT", "/v1/sys/policies/acl/ops", 204, "")
	r = ward(t, policyText, "policy", "write", "ops", "-").wantCode(t, 0)
	jsonEqual(t, f.only("PUT", "/v1/sys/policies/acl/ops").JSON(t), `{"policy":`+jsonQuote(policyText)+`}`)
	if r.stdout != "Success! Uploaded policy: ops\n" {
		t.Errorf("stdout = %q", r.stdout)
	}

	// The server refuses a bad policy: its message is shown, exit 2.
	f = setup(t)
	msg := `failed to parse policy: line 1: condition: ERROR: <input>:1:14: Syntax error: mismatched input '<EOF>'`
	f.on("PUT", "/v1/sys/policies/acl/bad", 400, `{"errors":[`+jsonQuote(msg)+`]}`)
	r = ward(t, `path "x" { capabilities = ["read"] condition = "request.path +" }`, "policy", "write", "bad", "-").
		wantCode(t, exitRemote)
	if r.stderr != "Error uploading policy: "+msg+"\n" || r.stdout != "" {
		t.Errorf("stderr = %q, stdout = %q", r.stderr, r.stdout)
	}

	// Local errors: no request, exit 1.
	f = setup(t)
	r = ward(t, "", "policy", "write", "app", filepath.Join(t.TempDir(), "nope.hcl")).wantCode(t, exitLocal)
	if !strings.HasPrefix(r.stderr, "Error opening policy file: ") {
		t.Errorf("stderr = %q", r.stderr)
	}
	ward(t, "", "policy", "write", "app").wantCode(t, exitLocal)
	if reqs := f.allRequests(); len(reqs) != 0 {
		t.Errorf("requests sent on local errors: %+v", reqs)
	}
}

func TestPolicyDelete(t *testing.T) {
	f := setup(t)
	f.on("DELETE", "/v1/sys/policies/acl/app", 204, "")
	r := ward(t, "", "policy", "delete", "app").wantCode(t, 0)
	f.only("DELETE", "/v1/sys/policies/acl/app")
	if r.stdout != "Success! Deleted policy: app\n" {
		t.Errorf("stdout = %q", r.stdout)
	}

	f = setup(t)
	f.on("DELETE", "/v1/sys/policies/acl/default", 400, `{"errors":["cannot delete the default policy"]}`)
	r = ward(t, "", "policy", "delete", "default").wantCode(t, exitRemote)
	if r.stderr != "Error deleting default: cannot delete the default policy\n" {
		t.Errorf("stderr = %q", r.stderr)
	}
}

func TestPolicyFmt(t *testing.T) {
	f := setup(t)
	messy := "path \"secret/*\" {\ncapabilities = [\"read\",\"list\"]\n      condition = \"request.path != \\\"\\\"\"\n}\n# deny the rest\npath \"sys/*\"{ capabilities=[\"deny\"] }\n"
	want := `path "secret/*" {
  capabilities = ["read", "list"]
  condition    = "request.path != \"\""
}

# deny the rest
path "sys/*" {
  capabilities = ["deny"]
}
`
	file := writePolicyFile(t, "p.hcl", messy)
	r := ward(t, "", "policy", "fmt", file).wantCode(t, 0)
	if r.stdout != "Success! Formatted policy: "+file+"\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
	got, _ := os.ReadFile(file)
	if string(got) != want {
		t.Errorf("formatted:\n%s\nwant:\n%s", got, want)
	}
	// Formatting is stable.
	ward(t, "", "policy", "fmt", file).wantCode(t, 0)
	if again, _ := os.ReadFile(file); string(again) != want {
		t.Errorf("second fmt changed the file:\n%s", again)
	}

	// A file that does not parse is refused and left as it was.
	broken := "path \"x\" {\n  capabilities = [\"read\"\n"
	file = writePolicyFile(t, "broken.hcl", broken)
	r = ward(t, "", "policy", "fmt", file).wantCode(t, exitLocal)
	if !strings.HasPrefix(r.stderr, "Error parsing policy "+file+": ") {
		t.Errorf("stderr = %q", r.stderr)
	}
	if got, _ := os.ReadFile(file); string(got) != broken {
		t.Errorf("broken file changed: %q", got)
	}

	ward(t, "", "policy", "fmt", filepath.Join(t.TempDir(), "none.hcl")).wantCode(t, exitLocal)
	ward(t, "", "policy", "fmt").wantCode(t, exitLocal)
	// fmt is local: it never reaches the server.
	if reqs := f.allRequests(); len(reqs) != 0 {
		t.Errorf("fmt sent requests: %+v", reqs)
	}
}

func TestPolicyHelp(t *testing.T) {
	isolateEnv(t)
	r := ward(t, "", "policy")
	for _, sub := range []string{"Subcommands:", "list", "read", "write", "delete", "fmt"} {
		if !strings.Contains(r.stderr, sub) {
			t.Errorf("`ward policy` lacks %q:\n%s", sub, r.stderr)
		}
	}
	r = ward(t, "", "policy", "write", "-h").wantCode(t, 0)
	if !strings.Contains(r.stdout, "Usage: ward policy write [options] NAME PATH") ||
		!strings.Contains(r.stdout, "-address=<string>") {
		t.Errorf("policy write -h:\n%s", r.stdout)
	}
	r = ward(t, "", "policy", "fmt", "-h").wantCode(t, 0)
	if !strings.Contains(r.stdout, "Usage: ward policy fmt") || strings.Contains(r.stdout, "-address") {
		t.Errorf("policy fmt -h:\n%s", r.stdout)
	}
}

// TestPolicyCLIAgainstServer drives the policy commands against a real
// in-process server.
func TestPolicyCLIAgainstServer(t *testing.T) {
	ts, _ := devServer(t, serverOpts{})
	isolateEnv(t)
	t.Setenv("VAULT_ADDR", ts.addr)
	t.Setenv("VAULT_TOKEN", "root")

	file := writePolicyFile(t, "app.hcl", policyText)
	if r := ward(t, "", "policy", "write", "app", file).wantCode(t, 0); r.stdout != "Success! Uploaded policy: app\n" {
		t.Errorf("write: %q", r.stdout)
	}
	if r := ward(t, "", "policy", "read", "app").wantCode(t, 0); r.stdout != policyText {
		t.Errorf("read back %q, want %q", r.stdout, policyText)
	}
	names := strings.Split(strings.TrimSpace(ward(t, "", "policy", "list").wantCode(t, 0).stdout), "\n")
	if !contains(names, "app") || !contains(names, "default") {
		t.Errorf("list = %q", names)
	}

	bad := `path "x" { capabilities = ["read"] condition = "request.path +" }`
	r := ward(t, bad, "policy", "write", "bad", "-").wantCode(t, exitRemote)
	if !strings.HasPrefix(r.stderr, "Error uploading policy: ") || !strings.Contains(r.stderr, "condition") {
		t.Errorf("bad policy: %q", r.stderr)
	}
	ward(t, "", "policy", "read", "bad").wantCode(t, exitRemote)

	if r := ward(t, "", "policy", "delete", "app").wantCode(t, 0); r.stdout != "Success! Deleted policy: app\n" {
		t.Errorf("delete: %q", r.stdout)
	}
	if r := ward(t, "", "policy", "read", "app").wantCode(t, exitRemote); r.stderr != "No policy named: app\n" {
		t.Errorf("read after delete: %q", r.stderr)
	}
}

// jsonQuote quotes s as a JSON string.
func jsonQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
