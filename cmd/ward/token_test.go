package main

import (
	"strings"
	"testing"
)

const tokenCreateReply = `{"request_id":"d056","lease_id":"","renewable":false,"lease_duration":0,"data":null,
 "wrap_info":null,"warnings":null,"auth":{"client_token":"s.GbSo2u","accessor":"lJje4q",
 "policies":["default","ro"],"token_policies":["default","ro"],"metadata":{"team":"ci"},"lease_duration":3600,
 "renewable":true,"entity_id":"","token_type":"service","orphan":false,"mfa_requirement":null,"num_uses":0}}`

func TestTokenCreate(t *testing.T) {
	f := setup(t)
	f.on("POST", "/v1/auth/token/create", 200, tokenCreateReply)

	r := ward(t, "", "token", "create", "-policy=default", "-policy=ro,audit", "-ttl=1h",
		"-explicit-max-ttl=24h", "-display-name=ci", "-metadata=team=ci", "-use-limit=3",
		"-period=30m", "-orphan").wantCode(t, 0)
	jsonEqual(t, f.only("POST", "/v1/auth/token/create").JSON(t), `{
		"policies":["default","ro","audit"],"ttl":"1h","explicit_max_ttl":"24h","period":"30m",
		"display_name":"ci","meta":{"team":"ci"},"num_uses":3,"renewable":true,"no_parent":true,
		"type":"","entity_alias":""}`)
	kv := parseKeyValueTable(t, r.stdout)
	want := map[string]string{"token": "s.GbSo2u", "token_accessor": "lJje4q", "token_duration": "1h",
		"token_renewable": "true", "token_policies": `["default" "ro"]`, "token_meta_team": "ci"}
	for k, v := range want {
		if kv[k] != v {
			t.Errorf("%s = %q, want %q", k, kv[k], v)
		}
	}
}

func TestTokenCreateOutputs(t *testing.T) {
	f := setup(t)
	f.on("POST", "/v1/auth/token/create", 200, tokenCreateReply)

	if r := ward(t, "", "token", "create", "-field=token").wantCode(t, 0); r.stdout != "s.GbSo2u" {
		t.Errorf("-field=token = %q", r.stdout)
	}
	r := ward(t, "", "token", "create", "-format=json", "-renewable=false").wantCode(t, 0)
	out := mustJSON(t, r.stdout)
	if out["auth"].(map[string]any)["client_token"] != "s.GbSo2u" {
		t.Errorf("json = %v", out)
	}
	if body := f.requests()[1].JSON(t); body["renewable"] != false {
		t.Errorf("renewable = %v", body["renewable"])
	}
}

func TestTokenCreateNotRetried(t *testing.T) {
	f := setup(t)
	t.Setenv("WARD_MAX_RETRIES", "2")
	f.on("POST", "/v1/auth/token/create", 503, `{"errors":["busy"]}`)
	ward(t, "", "token", "create").wantCode(t, exitRemote)
	f.only("POST", "/v1/auth/token/create")
}

func TestTokenLookup(t *testing.T) {
	tests := []struct {
		args         []string
		method, path string
		body         string
	}{
		{nil, "GET", "/v1/auth/token/lookup-self", ""},
		{[]string{"s.other"}, "POST", "/v1/auth/token/lookup", `{"token":"s.other"}`},
		{[]string{"-accessor", "acc1"}, "POST", "/v1/auth/token/lookup-accessor", `{"accessor":"acc1"}`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			f := setup(t)
			f.on(tt.method, tt.path, 200, `{"data":{"accessor":"acc1","creation_ttl":2764800,"explicit_max_ttl":0,
			  "display_name":"token","expire_time":null,"policies":["root"],"ttl":0,"period":60}}`)
			r := ward(t, "", append([]string{"token", "lookup"}, tt.args...)...).wantCode(t, 0)
			req := f.only(tt.method, tt.path)
			if tt.body != "" {
				jsonEqual(t, req.JSON(t), tt.body)
			}
			kv := parseKeyValueTable(t, r.stdout)
			if kv["creation_ttl"] != "768h" || kv["ttl"] != "0s" || kv["period"] != "1m" ||
				kv["expire_time"] != "<nil>" || kv["policies"] != "[root]" {
				t.Errorf("table = %v", kv)
			}
		})
	}
	f := setup(t)
	ward(t, "", "token", "lookup", "-accessor").wantCode(t, exitLocal)
	ward(t, "", "token", "lookup", "a", "b").wantCode(t, exitLocal)
	if len(f.allRequests()) != 0 {
		t.Errorf("requests sent")
	}
}

func TestTokenRenew(t *testing.T) {
	tests := []struct {
		args         []string
		method, path string
		body         string
	}{
		{[]string{"-increment=1h"}, "PUT", "/v1/auth/token/renew-self", `{"increment":3600}`},
		{[]string{"s.other"}, "PUT", "/v1/auth/token/renew", `{"token":"s.other","increment":0}`},
		{[]string{"-accessor", "acc1"}, "POST", "/v1/auth/token/renew-accessor", `{"accessor":"acc1","increment":0}`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			f := setup(t)
			f.on(tt.method, tt.path, 200, tokenCreateReply)
			r := ward(t, "", append([]string{"token", "renew"}, tt.args...)...).wantCode(t, 0)
			jsonEqual(t, f.only(tt.method, tt.path).JSON(t), tt.body)
			if parseKeyValueTable(t, r.stdout)["token_duration"] != "1h" {
				t.Errorf("output:\n%s", r.stdout)
			}
		})
	}
}

func TestTokenRevoke(t *testing.T) {
	tests := []struct {
		args         []string
		method, path string
		body         string
	}{
		{[]string{"s.other"}, "PUT", "/v1/auth/token/revoke", `{"token":"s.other"}`},
		{[]string{"-mode=orphan", "s.other"}, "PUT", "/v1/auth/token/revoke-orphan", `{"token":"s.other"}`},
		{[]string{"-accessor", "acc1"}, "POST", "/v1/auth/token/revoke-accessor", `{"accessor":"acc1"}`},
		{[]string{"-self"}, "PUT", "/v1/auth/token/revoke-self", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			f := setup(t)
			f.on(tt.method, tt.path, 204, "")
			r := ward(t, "", append([]string{"token", "revoke"}, tt.args...)...).wantCode(t, 0)
			req := f.only(tt.method, tt.path)
			if tt.body != "" {
				jsonEqual(t, req.JSON(t), tt.body)
			}
			if r.stdout != "Success! Revoked token (if it existed)\n" {
				t.Errorf("stdout = %q", r.stdout)
			}
		})
	}
	f := setup(t)
	for _, args := range [][]string{{}, {"-self", "tok"}, {"-mode=path", "tok"}, {"-accessor", "-mode=orphan", "a"}} {
		r := ward(t, "", append([]string{"token", "revoke"}, args...)...).wantCode(t, exitLocal)
		if strings.Contains(r.stderr, "tok") && !strings.Contains(r.stderr, "token") {
			t.Errorf("stderr echoes the token: %q", r.stderr)
		}
	}
	if len(f.allRequests()) != 0 {
		t.Errorf("requests sent")
	}
}
