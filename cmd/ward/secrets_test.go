package main

import (
	"testing"
)

func TestSecretsEnable(t *testing.T) {
	tests := []struct {
		args   []string
		path   string
		body   string
		stdout string
	}{
		{[]string{"-path=secret", "-version=2", "kv"}, "/v1/sys/mounts/secret",
			`{"type":"kv","options":{"version":"2"}}`, "Success! Enabled the kv secrets engine at: secret/\n"},
		{[]string{"kv-v2"}, "/v1/sys/mounts/kv",
			`{"type":"kv","options":{"version":"2"}}`, "Success! Enabled the kv secrets engine at: kv/\n"},
		{[]string{"-description=Encryption", "-default-lease-ttl=3600", "-max-lease-ttl=7d", "transit"},
			"/v1/sys/mounts/transit",
			`{"type":"transit","description":"Encryption","config":{"default_lease_ttl":"1h","max_lease_ttl":"168h"}}`,
			"Success! Enabled the transit secrets engine at: transit/\n"},
	}
	for _, tt := range tests {
		f := setup(t)
		f.on("POST", tt.path, 204, "")
		r := ward(t, "", append([]string{"secrets", "enable"}, tt.args...)...).wantCode(t, 0)
		jsonEqual(t, f.only("POST", tt.path).JSON(t), tt.body)
		if r.stdout != tt.stdout {
			t.Errorf("stdout = %q, want %q", r.stdout, tt.stdout)
		}
	}

	f := setup(t)
	f.on("POST", "/v1/sys/mounts/kv1", 400, `{"errors":["path is already in use at kv1/"]}`)
	r := ward(t, "", "secrets", "enable", "-path=kv1", "kv").wantCode(t, exitRemote)
	if r.stderr != "Error enabling: path is already in use at kv1/\n" {
		t.Errorf("stderr = %q", r.stderr)
	}
	ward(t, "", "secrets", "enable", "-default-lease-ttl=soon", "kv").wantCode(t, exitLocal)
}

func TestSecretsDisable(t *testing.T) {
	f := setup(t)
	f.on("DELETE", "/v1/sys/mounts/kv1", 204, "")
	r := ward(t, "", "secrets", "disable", "kv1/").wantCode(t, 0)
	f.only("DELETE", "/v1/sys/mounts/kv1")
	if r.stdout != "Success! Disabled the secrets engine (if it existed) at: kv1/\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
}

const mountsReply = `{"request_id":"r","data":{
 "sys/":{"accessor":"system_c5","config":{"default_lease_ttl":0,"max_lease_ttl":0,"force_no_cache":false},
   "description":"system endpoints used for control, policy and debugging","local":false,"options":null,
   "seal_wrap":true,"type":"system","uuid":"5fb3","running_plugin_version":"v0.1.0+builtin"},
 "secret/":{"accessor":"kv_10","config":{"default_lease_ttl":3600,"max_lease_ttl":0,"force_no_cache":false},
   "description":"key/value secret storage","local":false,"options":{"version":"2"},"seal_wrap":false,
   "type":"kv","uuid":"3784","running_plugin_version":"v0.1.0+builtin"},
 "cubbyhole/":{"accessor":"cubbyhole_68","config":{"default_lease_ttl":0,"max_lease_ttl":0},
   "description":"per-token private secret storage","local":true,"options":null,"seal_wrap":false,
   "type":"cubbyhole","uuid":"020f"}}}`

func TestSecretsList(t *testing.T) {
	f := setup(t)
	f.on("GET", "/v1/sys/mounts", 200, mountsReply)

	rows := parseColumnTable(t, ward(t, "", "secrets", "list").wantCode(t, 0).stdout)
	if len(rows) != 3 || rows[0]["Path"] != "cubbyhole/" || rows[1]["Path"] != "secret/" ||
		rows[1]["Plugin"] != "kv" || rows[1]["Accessor"] != "kv_10" || rows[1]["Description"] != "key/value secret storage" {
		t.Errorf("rows = %v", rows)
	}

	rows = parseColumnTable(t, ward(t, "", "secrets", "list", "-detailed").wantCode(t, 0).stdout)
	secret := rows[1]
	if secret["Default TTL"] != "1h" || secret["Max TTL"] != "system" || secret["Options"] != "map[version:2]" ||
		secret["Replication"] != "replicated" || rows[0]["Replication"] != "local" || secret["UUID"] != "3784" {
		t.Errorf("detailed row = %v", secret)
	}

	out := mustJSON(t, ward(t, "", "secrets", "list", "-format=json").wantCode(t, 0).stdout)
	if _, ok := out["secret/"]; !ok || len(out) != 3 {
		t.Errorf("json = %v", out)
	}
}

func TestSecretsTune(t *testing.T) {
	f := setup(t)
	f.on("POST", "/v1/sys/mounts/transit/tune", 204, "")
	r := ward(t, "", "secrets", "tune", "-max-lease-ttl=24h", "-description=", "transit").wantCode(t, 0)
	jsonEqual(t, f.only("POST", "/v1/sys/mounts/transit/tune").JSON(t), `{"max_lease_ttl":"24h","description":""}`)
	if r.stdout != "Success! Tuned the secrets engine at: transit/\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
	ward(t, "", "secrets", "tune", "transit").wantCode(t, exitLocal)
}
