package config

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestParseVaultStyleConfig(t *testing.T) {
	c, err := Parse(`
listener "tcp" {
  address       = "0.0.0.0:8200"
  tls_cert_file = "/etc/ward/tls.crt"
  tls_key_file  = "/etc/ward/tls.key"
  telemetry { unauthenticated_metrics_access = true }
}
listener "tcp" {
  address     = "127.0.0.1:8201"
  tls_disable = true
}
storage "pebble" { path = "/var/lib/ward" }
api_addr          = "https://ward.example:8200"
cluster_addr      = "https://ward.example:8201"
plugin_directory  = "/etc/ward/plugins"
default_lease_ttl = "1h"
max_lease_ttl     = 86400
log_level         = "debug"
log_format        = "json"
reported_version  = "1.16.2"
ui                = true
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Listeners) != 2 || !c.Listeners[0].UnauthenticatedMetricsAccess || c.Listeners[1].Address != "127.0.0.1:8201" {
		t.Errorf("listeners: %+v", c.Listeners)
	}
	if c.Storage.Type != "pebble" || c.Storage.Path != "/var/lib/ward" || c.PluginDirectory != "/etc/ward/plugins" {
		t.Errorf("storage/plugins: %+v %q", c.Storage, c.PluginDirectory)
	}
	if c.DefaultLeaseTTL != time.Hour || c.MaxLeaseTTL != 24*time.Hour || c.LogFormat != "json" || c.ReportedVersion != "1.16.2" {
		t.Errorf("scalars: %+v", c)
	}
	if len(c.Ignored) != 1 || c.Ignored[0] != "ui" {
		t.Errorf("ignored: %v", c.Ignored)
	}
}

func TestParseJSON(t *testing.T) {
	c, err := Parse(`{"listener": {"tcp": {"address": "127.0.0.1:8200", "tls_disable": true}}, "storage": {"pebble": {"path": "/d"}}}`)
	if err != nil || c.Storage.Path != "/d" || !c.Listeners[0].TLSDisable {
		t.Fatalf("%+v %v", c, err)
	}
}

func TestParseErrors(t *testing.T) {
	cases := map[string]string{
		`seal "pkcs11" {}`: `lib (the PKCS#11 module path) is required`,
		`seal "awskms" {}`: `unsupported seal type "awskms"`,
		`seal "pkcs11" { lib = "/l" slot = "0" key_label = "k" hmac_key_label = "h" }`: `unsupported key "hmac_key_label"`,
		`storage "consul" { path = "/x" }`:                                             `unsupported storage type "consul"`,
		`storage "raft" { path = "/x" retry_join { leader_api_addr = "a" } }`:          `unsupported key "retry_join"`,
		`storage "pebble" { path = "/x" node_id = "a" }`:                               `unsupported key "node_id"`,
		`listener "unix" { address = "/s" }`:                                           `unsupported listener type "unix"`,
		`listener "tcp" { address = "0.0.0.0:8200" tls_disable = true }`:               "only allowed on a loopback address",
		`listener "tcp" { address = "127.0.0.1:8200" }`:                                "tls_cert_file and tls_key_file are required",
		`listener "tcp" { address = "127.0.0.1:8200" tls_disable = true bogus = 1 }`:   `unsupported key "bogus"`,
		`log_level = "loud"`: "log_level",
		`log_format = "xml"`: "log_format",
		`default_lease_ttl = "2h"
max_lease_ttl = "1h"`: "must not exceed",
		`reported_version = "latest"`: "not a semantic version",
		`max_lease_ttl = "forever"`:   "max_lease_ttl",
		`storage "pebble" { path = "/a" }
storage "pebble" { path = "/b" }`: "only one storage",
		`listener "tcp" "extra" {}`: "exactly one type label",
		`{not hcl`:                  "",
	}
	for text, want := range cases {
		_, err := Parse(text)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want error containing %q", text, err, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(`listener "tcp" { address = "127.0.0.1:8200" tls_disable = true }`)
	f.Add(`storage "pebble" { path = "/x" }`)
	f.Add(`{"listener": {"tcp": {"address": "x"}}}`)
	f.Fuzz(func(t *testing.T, text string) {
		_, _ = Parse(text) // must not panic
	})
}

func TestAuditStanzas(t *testing.T) {
	c, err := Parse(`
storage "pebble" { path = "/tmp/x" }
unsafe_allow_api_audit_creation = true
audit "file" "main" {
  description = "local log"
  options {
    file_path = "/var/log/ward/audit.log"
    log_raw   = false
    mode      = 0640
  }
}
audit "socket" "siem" {
  options = {
    address     = "127.0.0.1:9090"
    socket_type = "tcp"
  }
}
`)
	if err != nil {
		t.Fatal(err)
	}
	if !c.UnsafeAllowAPIAuditCreation || len(c.Audits) != 2 {
		t.Fatalf("parsed %+v", c)
	}
	a := c.Audits[0]
	if a.Type != "file" || a.Path != "main" || a.Description != "local log" ||
		a.Options["file_path"] != "/var/log/ward/audit.log" || a.Options["log_raw"] != "false" || a.Options["mode"] != "0640" {
		t.Fatalf("file stanza %+v", a)
	}
	if s := c.Audits[1]; s.Type != "socket" || s.Options["address"] != "127.0.0.1:9090" {
		t.Fatalf("socket stanza %+v", s)
	}
	for _, bad := range []string{
		`audit "file" { options { file_path = "x" } }`,
		`audit "file" "a/b" { options { file_path = "x" } }`,
		`audit "file" "a" { path = "x" }`,
		`audit "file" "a" { options { file_path = "x" } }
audit "file" "a" { options { file_path = "y" } }`,
	} {
		if _, err := Parse(`storage "pebble" { path = "/tmp/x" }` + "\n" + bad); err == nil {
			t.Errorf("accepted: %s", bad)
		}
	}
}

func TestParseSeals(t *testing.T) {
	c, err := Parse(`
storage "pebble" { path = "/d" }
seal "pkcs11" {
  lib          = "/usr/lib/softhsm/libsofthsm2.so"
  token_label  = "ward"
  pin          = "1234"
  key_label    = "ward-root"
  mechanism    = "rsa-oaep"
  rsa_oaep_hash = "sha1"
  generate_key = "true"
}
seal "pkcs11" {
  lib       = "/usr/lib/softhsm/libsofthsm2.so"
  slot      = 3
  key_label = "old-key"
  disabled  = true
}
`)
	if err != nil {
		t.Fatal(err)
	}
	a, d := c.ActiveSeal(), c.SealMigrateFrom()
	if a == nil || a.PKCS11 == nil || a.PKCS11.TokenLabel != "ward" || a.PKCS11.PIN != "1234" || !a.PKCS11.GenerateKey || a.PKCS11.Mechanism != "rsa-oaep" {
		t.Fatalf("active seal: %+v", a)
	}
	if d == nil || d.PKCS11.Slot == nil || *d.PKCS11.Slot != 3 || d.PKCS11.KeyLabel != "old-key" {
		t.Fatalf("disabled seal: %+v", d)
	}
	if s := fmt.Sprintf("%v %+v %#v", *a.PKCS11, *a.PKCS11, *a.PKCS11); strings.Contains(s, "1234") {
		t.Fatalf("the PIN is printed: %s", s)
	}
	for text, want := range map[string]string{
		`seal "pkcs11" { lib = "/l" slot = 1 token_label = "t" key_label = "k" }`:      "only one of slot and token_label",
		`seal "pkcs11" { lib = "/l" slot = 1 key_label = "k" } seal "shamir" {}`:       "only one seal stanza may be enabled",
		`seal "shamir" { disabled = "true" }`:                                          "a disabled shamir seal needs",
		`seal "pkcs11" { lib = "/l" slot = "x" key_label = "k" }`:                      "slot must be a slot number",
		`seal "pkcs11" { lib = "/l" slot = 1 key_label = "k" generate_key = "maybe" }`: "generate_key must be true or false",
	} {
		if _, err := Parse(text); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", text, err, want)
		}
	}
	// Migration away from an HSM to Shamir: only a disabled stanza.
	c, err = Parse(`seal "pkcs11" { lib = "/l" slot = 0 key_label = "k" disabled = "true" }`)
	if err != nil || c.ActiveSeal() != nil || c.SealMigrateFrom() == nil {
		t.Fatalf("disabled only: %+v %v", c, err)
	}
}
