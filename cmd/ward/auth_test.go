package main

import (
	"strings"
	"testing"
)

func TestAuthEnable(t *testing.T) {
	tests := []struct {
		args   []string
		path   string
		body   string
		stdout string
	}{
		{[]string{"userpass"}, "/v1/sys/auth/userpass",
			`{"type":"userpass"}`, "Success! Enabled userpass auth method at: userpass/\n"},
		{[]string{"-path=/ci/", "-description=CI jobs", "-default-lease-ttl=30m", "-max-lease-ttl=2h",
			"-options=k=v", "approle"}, "/v1/sys/auth/ci",
			`{"type":"approle","description":"CI jobs","config":{"default_lease_ttl":"30m","max_lease_ttl":"2h"},
			  "options":{"k":"v"}}`,
			"Success! Enabled approle auth method at: ci/\n"},
		// The kv-v2 alias is a secrets engine matter: an auth type is sent as given.
		{[]string{"kv-v2"}, "/v1/sys/auth/kv-v2", `{"type":"kv-v2"}`, "Success! Enabled kv-v2 auth method at: kv-v2/\n"},
	}
	for _, tt := range tests {
		f := setup(t)
		f.on("POST", tt.path, 204, "")
		r := ward(t, "", append([]string{"auth", "enable"}, tt.args...)...).wantCode(t, 0)
		jsonEqual(t, f.only("POST", tt.path).JSON(t), tt.body)
		if r.stdout != tt.stdout {
			t.Errorf("stdout = %q, want %q", r.stdout, tt.stdout)
		}
	}

	f := setup(t)
	f.on("POST", "/v1/sys/auth/userpass", 400, `{"errors":["path is already in use at userpass/"]}`)
	r := ward(t, "", "auth", "enable", "userpass").wantCode(t, exitRemote)
	if r.stderr != "Error enabling: path is already in use at userpass/\n" {
		t.Errorf("stderr = %q", r.stderr)
	}

	f = setup(t)
	// -version selects a secrets engine version; auth enable has no such flag.
	r = ward(t, "", "auth", "enable", "-version=2", "userpass").wantCode(t, exitLocal)
	if !strings.Contains(r.stderr, "flag provided but not defined: -version") {
		t.Errorf("stderr = %q", r.stderr)
	}
	ward(t, "", "auth", "enable").wantCode(t, exitLocal)
	ward(t, "", "auth", "enable", "-max-lease-ttl=soon", "userpass").wantCode(t, exitLocal)
	if len(f.allRequests()) != 0 {
		t.Errorf("requests sent: %+v", f.allRequests())
	}
}

const authMountsReply = `{"request_id":"r","data":{
 "token/":{"accessor":"auth_token_5f","config":{"default_lease_ttl":0,"max_lease_ttl":0,"force_no_cache":false},
   "description":"token based credentials","local":false,"options":null,"seal_wrap":false,
   "type":"token","uuid":"9a1c","running_plugin_version":"v0.1.0+builtin"},
 "userpass/":{"accessor":"auth_userpass_a2","config":{"default_lease_ttl":1800,"max_lease_ttl":7200,"force_no_cache":false},
   "description":"people","local":true,"options":{},"seal_wrap":false,"type":"userpass","uuid":"77b0",
   "running_plugin_version":"v0.1.0"}}}`

func TestAuthList(t *testing.T) {
	f := setup(t)
	f.on("GET", "/v1/sys/auth", 200, authMountsReply)

	rows := parseColumnTable(t, ward(t, "", "auth", "list").wantCode(t, 0).stdout)
	if len(rows) != 2 || rows[0]["Path"] != "token/" || rows[1]["Path"] != "userpass/" ||
		rows[1]["Plugin"] != "userpass" || rows[1]["Accessor"] != "auth_userpass_a2" || rows[1]["Description"] != "people" {
		t.Errorf("rows = %v", rows)
	}

	rows = parseColumnTable(t, ward(t, "", "auth", "list", "-detailed").wantCode(t, 0).stdout)
	up := rows[1]
	if up["Default TTL"] != "30m" || up["Max TTL"] != "2h" || up["Replication"] != "local" ||
		rows[0]["Default TTL"] != "system" || up["UUID"] != "77b0" || up["Running Version"] != "v0.1.0" {
		t.Errorf("detailed rows = %v", rows)
	}

	out := mustJSON(t, ward(t, "", "auth", "list", "-format=json").wantCode(t, 0).stdout)
	if _, ok := out["userpass/"]; !ok || len(out) != 2 {
		t.Errorf("json = %v", out)
	}
	for _, r := range f.requests() {
		if r.Method != "GET" || r.Path != "/v1/sys/auth" {
			t.Errorf("unexpected request %s %s", r.Method, r.Path)
		}
	}
}

func TestAuthDisableAndTune(t *testing.T) {
	f := setup(t)
	f.on("DELETE", "/v1/sys/auth/userpass", 204, "")
	r := ward(t, "", "auth", "disable", "userpass/").wantCode(t, 0)
	f.only("DELETE", "/v1/sys/auth/userpass")
	if r.stdout != "Success! Disabled the auth method (if it existed) at: userpass/\n" {
		t.Errorf("stdout = %q", r.stdout)
	}

	f = setup(t)
	f.on("POST", "/v1/sys/auth/userpass/tune", 204, "")
	r = ward(t, "", "auth", "tune", "-default-lease-ttl=1h", "-max-lease-ttl=1d", "-description=people", "userpass").
		wantCode(t, 0)
	jsonEqual(t, f.only("POST", "/v1/sys/auth/userpass/tune").JSON(t),
		`{"default_lease_ttl":"1h","max_lease_ttl":"24h","description":"people"}`)
	if r.stdout != "Success! Tuned the auth method at: userpass/\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
	ward(t, "", "auth", "tune", "userpass").wantCode(t, exitLocal)
}

// TestMountKinds runs the commands both mount tables share against each,
// checking the API base and the noun in every message.
func TestMountKinds(t *testing.T) {
	kinds := []struct {
		group, api, noun, nouns string
	}{
		{"secrets", "/v1/sys/mounts", "secrets engine", "secrets engines"},
		{"auth", "/v1/sys/auth", "auth method", "auth methods"},
	}
	for _, k := range kinds {
		t.Run(k.group, func(t *testing.T) {
			f := setup(t)
			f.on("DELETE", k.api+"/m1", 403, `{"errors":["permission denied"]}`)
			f.on("POST", k.api+"/m1/tune", 400, `{"errors":["bad ttl"]}`)
			f.on("GET", k.api, 500, `{"errors":["storage down"]}`)

			tests := []struct {
				args   []string
				stderr string
			}{
				{[]string{"disable", "m1"}, "Error disabling " + k.noun + " at m1/: permission denied\n"},
				{[]string{"tune", "-max-lease-ttl=1h", "m1"}, "Error tuning " + k.noun + " m1/: bad ttl\n"},
				{[]string{"list"}, "Error listing " + k.nouns + ": storage down\n"},
			}
			for _, tt := range tests {
				r := ward(t, "", append([]string{k.group}, tt.args...)...).wantCode(t, exitRemote)
				if r.stderr != tt.stderr {
					t.Errorf("%v: stderr = %q, want %q", tt.args, r.stderr, tt.stderr)
				}
			}
			for _, sub := range []string{"enable", "disable", "list", "tune"} {
				cmd, _ := commands()[k.group+" "+sub]()
				if !strings.HasPrefix(cmd.Help(), "Usage: ward "+k.group+" "+sub) {
					t.Errorf("%s %s help:\n%s", k.group, sub, cmd.Help())
				}
				if !strings.Contains(cmd.Synopsis(), k.noun) {
					t.Errorf("%s %s synopsis %q lacks %q", k.group, sub, cmd.Synopsis(), k.noun)
				}
			}
		})
	}
}
