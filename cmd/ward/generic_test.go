package main

import (
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	f := setup(t)
	f.on("GET", "/v1/transit/keys/k1", 200, `{"request_id":"r","lease_duration":2764800,"renewable":false,
	  "data":{"name":"k1","latest_version":1,"auto_rotate_period":3600,"keys":{"1":1795495140}}}`)

	r := ward(t, "", "read", "transit/keys/k1", "version=2").wantCode(t, 0)
	req := f.only("GET", "/v1/transit/keys/k1")
	if v := req.Query["version"]; len(v) != 1 || v[0] != "2" {
		t.Errorf("query = %v", req.Query)
	}
	kv := parseKeyValueTable(t, r.stdout)
	want := map[string]string{"refresh_interval": "768h", "name": "k1", "auto_rotate_period": "1h",
		"latest_version": "1", "keys": "map[1:1795495140]"}
	for k, v := range want {
		if kv[k] != v {
			t.Errorf("%s = %q, want %q", k, kv[k], v)
		}
	}

	r = ward(t, "", "read", "-field=name", "transit/keys/k1").wantCode(t, 0)
	if r.stdout != "k1" {
		t.Errorf("field = %q", r.stdout)
	}
	r = ward(t, "", "read", "-format=json", "/transit/keys/k1/").wantCode(t, 0)
	if out := mustJSON(t, r.stdout); out["lease_duration"] != float64(2764800) {
		t.Errorf("json = %v", out)
	}

	r = ward(t, "", "read", "secret/nothing").wantCode(t, exitRemote)
	if r.stderr != "No value found at secret/nothing\n" {
		t.Errorf("stderr = %q", r.stderr)
	}
}

func TestWrite(t *testing.T) {
	t.Run("data", func(t *testing.T) {
		f := setup(t)
		f.on("PUT", "/v1/sys/policies/acl/ro", 204, "")
		r := ward(t, `path "secret/*" { capabilities = ["read"] }`, "write", "sys/policies/acl/ro", "policy=-").wantCode(t, 0)
		jsonEqual(t, f.only("PUT", "/v1/sys/policies/acl/ro").JSON(t),
			`{"policy":"path \"secret/*\" { capabilities = [\"read\"] }"}`)
		if r.stdout != "Success! Data written to: sys/policies/acl/ro\n" {
			t.Errorf("stdout = %q", r.stdout)
		}
	})
	t.Run("no data needs -force", func(t *testing.T) {
		f := setup(t)
		f.on("PUT", "/v1/transit/keys/k1", 200, `{"data":{"name":"k1","type":"aes256-gcm96"}}`)
		r := ward(t, "", "write", "transit/keys/k1").wantCode(t, exitLocal)
		if r.stderr != "Must supply data or use -force\n" {
			t.Errorf("stderr = %q", r.stderr)
		}
		r = ward(t, "", "write", "-force", "transit/keys/k1").wantCode(t, 0)
		jsonEqual(t, f.only("PUT", "/v1/transit/keys/k1").JSON(t), `{}`)
		if parseKeyValueTable(t, r.stdout)["type"] != "aes256-gcm96" {
			t.Errorf("stdout:\n%s", r.stdout)
		}
	})
	t.Run("token auth reply", func(t *testing.T) {
		f := setup(t)
		f.on("PUT", "/v1/auth/userpass/login/alice", 200, `{"auth":{"client_token":"s.alice","accessor":"acc",
		  "policies":["default","ro"],"token_policies":["default","ro"],"metadata":{"username":"alice"},
		  "lease_duration":2764800,"renewable":true}}`)
		r := ward(t, "", "write", "auth/userpass/login/alice", "password=pw").wantCode(t, 0)
		kv := parseKeyValueTable(t, r.stdout)
		if kv["token"] != "s.alice" || kv["token_duration"] != "768h" || kv["token_meta_username"] != "alice" ||
			kv["token_policies"] != `["default" "ro"]` {
			t.Errorf("table = %v", kv)
		}
		r = ward(t, "", "write", "-field=token", "auth/userpass/login/alice", "password=pw").wantCode(t, 0)
		if r.stdout != "s.alice" {
			t.Errorf("field = %q", r.stdout)
		}
	})
}

func TestList(t *testing.T) {
	f := setup(t)
	f.on("LIST", "/v1/sys/policies/acl", 200, `{"data":{"keys":["root","default","ro"]}}`)
	r := ward(t, "", "list", "sys/policies/acl").wantCode(t, 0)
	f.only("LIST", "/v1/sys/policies/acl")
	if rows := parseColumnTable(t, r.stdout); len(rows) != 3 || rows[0]["Keys"] != "default" {
		t.Errorf("rows = %v", rows)
	}
	r = ward(t, "", "list", "sys/none").wantCode(t, exitRemote)
	if !strings.Contains(r.stderr, "No value found at sys/none") {
		t.Errorf("stderr = %q", r.stderr)
	}
}

func TestDelete(t *testing.T) {
	f := setup(t)
	f.on("DELETE", "/v1/secret/data/app/db", 204, "")
	r := ward(t, "", "delete", "secret/data/app/db", "versions=1").wantCode(t, 0)
	req := f.only("DELETE", "/v1/secret/data/app/db")
	if req.Query["versions"][0] != "1" {
		t.Errorf("query = %v", req.Query)
	}
	if r.stdout != "Success! Data deleted (if it existed) at: secret/data/app/db\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
}
