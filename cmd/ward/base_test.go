package main

import (
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// deadAddress returns the URL of a port nobody listens on.
func deadAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + l.Addr().String()
	l.Close()
	return addr
}

const lookupSelfReply = `{"data":{"id":"x","policies":["root"],"ttl":0,"creation_ttl":0,"display_name":"token"}}`

func TestAddressPrecedence(t *testing.T) {
	tests := []struct {
		name               string
		flag, ward, vault  bool // which point at the live server; the others at a dead port
		setWard, setVault  bool
		wantCode           int
		wantDefaultAddress bool
	}{
		{name: "WARD_ADDR beats VAULT_ADDR", ward: true, setWard: true, setVault: true},
		{name: "VAULT_ADDR used when WARD_ADDR unset", vault: true, setVault: true},
		{name: "-address beats both", flag: true, setWard: true, setVault: true},
		{name: "default address", wantCode: exitRemote, wantDefaultAddress: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateEnv(t)
			f := newFakeServer(t)
			f.on("GET", "/v1/auth/token/lookup-self", 200, lookupSelfReply)
			dead := deadAddress(t)
			pick := func(live bool) string {
				if live {
					return f.srv.URL
				}
				return dead
			}
			if tt.setWard {
				t.Setenv("WARD_ADDR", pick(tt.ward))
			}
			if tt.setVault {
				t.Setenv("VAULT_ADDR", pick(tt.vault))
			}
			args := []string{"token", "lookup"}
			if tt.flag {
				args = []string{"token", "lookup", "-address=" + f.srv.URL}
			}
			r := ward(t, "", args...).wantCode(t, tt.wantCode)
			if tt.wantDefaultAddress && !strings.Contains(r.stderr, "https://127.0.0.1:8200/v1/auth/token/lookup-self") {
				t.Errorf("stderr = %q, want the default address", r.stderr)
			}
		})
	}
}

func TestTokenPrecedence(t *testing.T) {
	tests := []struct {
		name       string
		ward       string
		vault      string
		file       string
		wantHeader string
	}{
		{"WARD_TOKEN beats VAULT_TOKEN and file", "ward-tok", "vault-tok", "file-tok", "ward-tok"},
		{"VAULT_TOKEN beats file", "", "vault-tok", "file-tok", "vault-tok"},
		{"token file, whitespace trimmed", "", "", "file-tok\n", "file-tok"},
		{"no token at all", "", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateEnv(t)
			f := newFakeServer(t)
			f.on("GET", "/v1/auth/token/lookup-self", 200, lookupSelfReply)
			t.Setenv("WARD_ADDR", f.srv.URL)
			t.Setenv("WARD_TOKEN", tt.ward)
			t.Setenv("VAULT_TOKEN", tt.vault)
			if tt.file != "" {
				home, _ := os.UserHomeDir()
				if err := os.WriteFile(filepath.Join(home, ".ward-token"), []byte(tt.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			ward(t, "", "token", "lookup").wantCode(t, 0)
			if got := f.only("GET", "/v1/auth/token/lookup-self").Token; got != tt.wantHeader {
				t.Errorf("X-Vault-Token = %q, want %q", got, tt.wantHeader)
			}
		})
	}
}

func TestBaoVariablesIgnored(t *testing.T) {
	f := setup(t)
	f.on("GET", "/v1/auth/token/lookup-self", 200, lookupSelfReply)
	t.Setenv("BAO_ADDR", deadAddress(t))
	t.Setenv("BAO_TOKEN", "bao-token")
	ward(t, "", "token", "lookup").wantCode(t, 0)
	if got := f.only("GET", "/v1/auth/token/lookup-self").Token; got != "test-token" {
		t.Errorf("token = %q: the OpenBao client read BAO_TOKEN", got)
	}
}

func TestFormatFromEnvironment(t *testing.T) {
	f := setup(t)
	f.on("GET", "/v1/auth/token/lookup-self", 200, lookupSelfReply)
	t.Setenv("VAULT_FORMAT", "json")
	r := ward(t, "", "token", "lookup").wantCode(t, 0)
	mustJSON(t, r.stdout)
	t.Setenv("WARD_FORMAT", "table")
	r = ward(t, "", "token", "lookup").wantCode(t, 0)
	parseKeyValueTable(t, r.stdout)

	r = ward(t, "", "token", "lookup", "-format=yaml").wantCode(t, exitLocal)
	if !strings.Contains(r.stderr, "Invalid output format: yaml") {
		t.Errorf("stderr = %q", r.stderr)
	}
}

func TestTLS(t *testing.T) {
	isolateEnv(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"type":"shamir","initialized":true,"sealed":false,"t":1,"n":1,"version":"0.1.0"}`))
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the rejected handshakes are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("WARD_ADDR", srv.URL)

	t.Run("unknown CA fails", func(t *testing.T) {
		r := ward(t, "", "status").wantCode(t, exitLocal) // status: 1 on error
		if !strings.Contains(r.stderr, "certificate") {
			t.Errorf("stderr = %q", r.stderr)
		}
	})
	t.Run("-ca-cert", func(t *testing.T) {
		ward(t, "", "status", "-ca-cert="+caFile).wantCode(t, 0)
	})
	t.Run("WARD_CACERT beats VAULT_CACERT", func(t *testing.T) {
		t.Setenv("WARD_CACERT", caFile)
		t.Setenv("VAULT_CACERT", "/nonexistent.pem")
		ward(t, "", "status").wantCode(t, 0)
	})
	t.Run("VAULT_CACERT", func(t *testing.T) {
		t.Setenv("VAULT_CACERT", caFile)
		ward(t, "", "status").wantCode(t, 0)
	})
	t.Run("-tls-skip-verify", func(t *testing.T) {
		ward(t, "", "status", "-tls-skip-verify").wantCode(t, 0)
	})
	t.Run("VAULT_SKIP_VERIFY", func(t *testing.T) {
		t.Setenv("VAULT_SKIP_VERIFY", "true")
		ward(t, "", "status").wantCode(t, 0)
	})
	t.Run("missing CA file is a local error", func(t *testing.T) {
		r := ward(t, "", "read", "-ca-cert=/nonexistent.pem", "sys/health").wantCode(t, exitLocal)
		if !strings.HasPrefix(r.stderr, "Error initializing client:") {
			t.Errorf("stderr = %q", r.stderr)
		}
	})
}

func TestErrorMessagesAndExitCodes(t *testing.T) {
	f := setup(t)
	f.on("GET", "/v1/secret/denied", 403, `{"errors":["permission denied"]}`)
	f.on("GET", "/v1/secret/multi", 400, `{"errors":["first problem","second problem"]}`)
	f.on("GET", "/v1/secret/html", 502, `<html>bad gateway</html>`)

	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"server message", []string{"read", "secret/denied"}, exitRemote,
			"Error reading secret/denied: permission denied\n"},
		{"several messages", []string{"read", "secret/multi"}, exitRemote,
			"Error reading secret/multi:\n* first problem\n* second problem\n"},
		{"non-JSON error body", []string{"read", "secret/html"}, exitRemote,
			"Error reading secret/html: HTTP 502: <html>bad gateway</html>\n"},
		{"too many arguments", []string{"read"}, exitLocal, "Not enough arguments (expected 1 or more, got 0)\n"},
		{"unknown flag", []string{"status", "-bogus"}, exitLocal,
			"flag provided but not defined: -bogus\nRun 'ward status -h' for usage.\n"},
		{"unknown command", []string{"frobnicate"}, 127, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ward(t, "", tt.args...).wantCode(t, tt.code)
			if tt.stderr != "" && r.stderr != tt.stderr {
				t.Errorf("stderr = %q, want %q", r.stderr, tt.stderr)
			}
		})
	}

	t.Run("unreachable server", func(t *testing.T) {
		t.Setenv("WARD_ADDR", deadAddress(t))
		r := ward(t, "", "read", "secret/x").wantCode(t, exitRemote)
		if !strings.Contains(r.stderr, "connection refused") {
			t.Errorf("stderr = %q", r.stderr)
		}
	})
}

func TestTokensNeverInErrors(t *testing.T) {
	f := setup(t)
	t.Setenv("WARD_TOKEN", "s.super-secret-root")
	f.on("POST", "/v1/auth/token/lookup", 403, `{"errors":["permission denied"]}`)
	r := ward(t, "", "token", "lookup", "s.looked-up-secret").wantCode(t, exitRemote)
	for _, secret := range []string{"super-secret-root", "looked-up-secret"} {
		if strings.Contains(r.stderr+r.stdout, secret) {
			t.Errorf("output contains %q:\nstdout: %s\nstderr: %s", secret, r.stdout, r.stderr)
		}
	}
}

func TestHelpAndSynopsisForEveryCommand(t *testing.T) {
	names := make([]string, 0)
	for name := range commands() {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		cmd, _ := commands()[name]()
		if strings.TrimSpace(cmd.Synopsis()) == "" {
			t.Errorf("%q has no synopsis", name)
		}
		if !strings.HasPrefix(strings.TrimSpace(cmd.Help()), "Usage: ward ") {
			t.Errorf("%q help does not start with its usage:\n%s", name, cmd.Help())
		}
	}

	r := ward(t, "", "kv", "get", "-h").wantCode(t, 0)
	for _, want := range []string{"Usage: ward kv get", "-version=<int>", "-mount=<string>", "-address=<string>", "-field=<string>"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("kv get -h lacks %q:\n%s", want, r.stdout)
		}
	}
	r = ward(t, "", "kv")
	if !strings.Contains(r.stderr, "Subcommands:") || !strings.Contains(r.stderr, "metadata") {
		t.Errorf("`ward kv` does not list subcommands:\n%s", r.stderr)
	}
	r = ward(t, "", "-h").wantCode(t, 0)
	if strings.Contains(r.stdout, "exec") {
		t.Errorf("internal `plugin exec` is listed in help:\n%s", r.stdout)
	}
}

func TestVersion(t *testing.T) {
	isolateEnv(t)
	old := version
	version = "9.8.7"
	defer func() { version = old }()
	if r := ward(t, "", "version").wantCode(t, 0); r.stdout != "Ward v9.8.7\n" {
		t.Errorf("version = %q", r.stdout)
	}
	if r := ward(t, "", "-version").wantCode(t, 0); r.stdout != "Ward v9.8.7\n" {
		t.Errorf("-version = %q", r.stdout)
	}
}
