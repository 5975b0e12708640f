package main

import (
	"strings"
	"testing"
)

const sum = "d3f0a8b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9"

func TestPluginRegister(t *testing.T) {
	f := setup(t)
	f.on("PUT", "/v1/sys/plugins/catalog/secret/my-plugin", 204, "")
	r := ward(t, "", "plugin", "register", "-sha256="+sum, "-command=my-plugin-v2",
		"-args=--log-level=debug", "-args=a,b", "-env=MODE=prod", "-env=LIST=x,y", "-version=v1.2.0",
		"secret", "my-plugin").wantCode(t, 0)
	jsonEqual(t, f.only("PUT", "/v1/sys/plugins/catalog/secret/my-plugin").JSON(t), `{
		"sha256":"`+sum+`","command":"my-plugin-v2","args":["--log-level=debug","a,b"],
		"env":["MODE=prod","LIST=x,y"],"version":"v1.2.0"}`)
	if r.stdout != "Success! Registered plugin: my-plugin\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
}

func TestPluginRegisterDefaultsAndValidation(t *testing.T) {
	f := setup(t)
	f.on("PUT", "/v1/sys/plugins/catalog/auth/my-auth", 204, "")
	ward(t, "", "plugin", "register", "-sha256="+sum, "auth", "my-auth").wantCode(t, 0)
	jsonEqual(t, f.only("PUT", "/v1/sys/plugins/catalog/auth/my-auth").JSON(t),
		`{"sha256":"`+sum+`","command":"my-auth"}`)

	for _, args := range [][]string{
		{"secret", "p"},                   // no -sha256
		{"-sha256=xyz", "secret", "p"},    // not hex
		{"-sha256=" + sum, "p"},           // TYPE missing
		{"-sha256=" + sum, "widget", "p"}, // unknown type
		{"-sha256=" + sum, "-env=NOEQUALS", "secret", "p"},
	} {
		ward(t, "", append([]string{"plugin", "register"}, args...)...).wantCode(t, exitLocal)
	}
	if n := len(f.allRequests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

const catalogReply = `{"data":{"auth":["userpass"],"secret":["kv","transit"],"detailed":[
 {"name":"userpass","type":"auth","version":"v0.1.0+builtin","builtin":true,"deprecation_status":"supported"},
 {"name":"transit","type":"secret","version":"v0.1.0+builtin","builtin":true,"deprecation_status":"supported"},
 {"name":"kv","type":"secret","version":"v0.1.0+builtin","builtin":true,"deprecation_status":"supported"}]}}`

func TestPluginList(t *testing.T) {
	f := setup(t)
	f.on("GET", "/v1/sys/plugins/catalog", 200, catalogReply)

	rows := parseColumnTable(t, ward(t, "", "plugin", "list").wantCode(t, 0).stdout)
	if len(rows) != 3 || rows[0]["Name"] != "userpass" || rows[0]["Type"] != "auth" ||
		rows[1]["Name"] != "kv" || rows[1]["Version"] != "v0.1.0+builtin" {
		t.Errorf("rows = %v", rows)
	}
	rows = parseColumnTable(t, ward(t, "", "plugin", "list", "-detailed", "secret").wantCode(t, 0).stdout)
	if len(rows) != 2 || rows[0]["Name"] != "kv" || rows[0]["Builtin"] != "true" || rows[0]["Type"] != "" {
		t.Errorf("secret rows = %v", rows)
	}
	out := mustJSON(t, ward(t, "", "plugin", "list", "-format=json", "auth").wantCode(t, 0).stdout)
	jsonEqual(t, out, `{"auth":["userpass"],"detailed":[{"name":"userpass","type":"auth",
		"version":"v0.1.0+builtin","builtin":true,"deprecation_status":"supported"}]}`)
}

func TestPluginListWithoutDetails(t *testing.T) {
	f := setup(t)
	f.on("GET", "/v1/sys/plugins/catalog", 200, `{"data":{"auth":["userpass"],"secret":["transit","kv"]}}`)
	rows := parseColumnTable(t, ward(t, "", "plugin", "list").wantCode(t, 0).stdout)
	if len(rows) != 3 || rows[1]["Name"] != "kv" || rows[2]["Name"] != "transit" {
		t.Errorf("rows = %v", rows)
	}
}

func TestPluginInfo(t *testing.T) {
	f := setup(t)
	f.on("GET", "/v1/sys/plugins/catalog/secret/my-plugin", 200, `{"data":{"name":"my-plugin",
	  "command":"my-plugin","args":["-x"],"sha256":"`+sum+`","builtin":false,"version":"v1.2.0"}}`)

	kv := parseKeyValueTable(t, ward(t, "", "plugin", "info", "secret", "my-plugin").wantCode(t, 0).stdout)
	if kv["command"] != "my-plugin" || kv["sha256"] != sum || kv["args"] != "[-x]" || kv["builtin"] != "false" {
		t.Errorf("table = %v", kv)
	}
	if r := ward(t, "", "plugin", "info", "-field=sha256", "secret", "my-plugin").wantCode(t, 0); r.stdout != sum {
		t.Errorf("field = %q", r.stdout)
	}
	ward(t, "", "plugin", "info", "-version=v1.2.0", "secret", "my-plugin").wantCode(t, 0)
	if q := f.requests()[2].Query["version"]; len(q) != 1 || q[0] != "v1.2.0" {
		t.Errorf("version query = %v", q)
	}
	r := ward(t, "", "plugin", "info", "secret", "absent").wantCode(t, exitRemote)
	if !strings.Contains(r.stderr, `No value found for plugin "absent"`) {
		t.Errorf("stderr = %q", r.stderr)
	}
}

func TestPluginDeregister(t *testing.T) {
	f := setup(t)
	f.on("DELETE", "/v1/sys/plugins/catalog/secret/my-plugin", 204, "")
	r := ward(t, "", "plugin", "deregister", "-version=v1.2.0", "secret", "my-plugin").wantCode(t, 0)
	req := f.only("DELETE", "/v1/sys/plugins/catalog/secret/my-plugin")
	if q := req.Query["version"]; len(q) != 1 || q[0] != "v1.2.0" {
		t.Errorf("query = %v", req.Query)
	}
	if r.stdout != "Success! Deregistered plugin (if it was registered): my-plugin\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
}

func TestPluginReload(t *testing.T) {
	tests := []struct {
		args   []string
		body   string
		stdout string
	}{
		{[]string{"-plugin=my-plugin"}, `{"plugin":"my-plugin"}`, "Success! Reloaded plugin: my-plugin\n"},
		{[]string{"-mounts=app1/,app2/", "-mounts=app3/"}, `{"mounts":["app1/","app2/","app3/"]}`,
			"Success! Reloaded mounts: [app1/ app2/ app3/]\n"},
	}
	for _, tt := range tests {
		f := setup(t)
		f.on("PUT", "/v1/sys/plugins/reload/backend", 200, `{"data":{}}`)
		r := ward(t, "", append([]string{"plugin", "reload"}, tt.args...)...).wantCode(t, 0)
		jsonEqual(t, f.only("PUT", "/v1/sys/plugins/reload/backend").JSON(t), tt.body)
		if r.stdout != tt.stdout {
			t.Errorf("stdout = %q, want %q", r.stdout, tt.stdout)
		}
	}
	f := setup(t)
	ward(t, "", "plugin", "reload").wantCode(t, exitLocal)
	ward(t, "", "plugin", "reload", "-plugin=p", "-mounts=a").wantCode(t, exitLocal)
	if len(f.allRequests()) != 0 {
		t.Errorf("requests sent")
	}
}
