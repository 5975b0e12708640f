package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const loginReply = `{"request_id":"r1","lease_id":"","renewable":false,"lease_duration":0,"data":null,
 "wrap_info":null,"warnings":null,"auth":{"client_token":"s.LoginTok","accessor":"acc-9",
 "policies":["default","dev"],"token_policies":["default","dev"],"identity_policies":null,
 "metadata":{"username":"alice"},"lease_duration":2764800,"renewable":true,"entity_id":"",
 "token_type":"service","orphan":true,"mfa_requirement":null,"num_uses":0}}`

const lookupSelfLoginReply = `{"data":{"id":"s.Given","accessor":"acc-1","policies":["default","ops"],
 "identity_policies":["team"],"meta":{"team":"ops"},"ttl":3600,"renewable":true,"display_name":"token"}}`

const successStored = "Success! You are now authenticated. The token information displayed below\n" +
	"is already stored in ~/.ward-token. You do NOT need to run \"ward login\"\n" +
	"again. Future Ward requests will automatically use this token.\n\n"

// loginSetup is setup with no token variable, as on a machine where the
// user has not logged in yet.
func loginSetup(t *testing.T) *fakeServer {
	f := setup(t)
	t.Setenv("WARD_TOKEN", "")
	return f
}

// storedToken returns the content of ~/.ward-token and whether it exists,
// checking it is private to the user.
func storedToken(t *testing.T) (string, bool) {
	t.Helper()
	home, _ := os.UserHomeDir()
	path := filepath.Join(home, ".ward-token")
	fi, err := os.Stat(path)
	if os.IsNotExist(err) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("token file mode = %o, want 600", mode)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Only the token file itself: no temporary file left behind.
	entries, _ := os.ReadDir(home)
	for _, e := range entries {
		if e.Name() != ".ward-token" {
			t.Errorf("unexpected file in HOME: %s", e.Name())
		}
	}
	return string(raw), true
}

func wantNoTokenFile(t *testing.T) {
	t.Helper()
	if _, ok := storedToken(t); ok {
		t.Errorf("token file written")
	}
}

func TestLoginToken(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "tok.txt")
	if err := os.WriteFile(tokenFile, []byte("s.Given\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		args  []string
		input string
	}{
		{"argument", []string{"s.Given"}, ""},
		{"stdin dash", []string{"-"}, "  s.Given\n"},
		{"no argument, stdin not a terminal", nil, "s.Given\nignored\n"},
		{"token=@file", []string{"token=@" + tokenFile}, ""},
		{"explicit method", []string{"-method=token", "s.Given"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := loginSetup(t)
			f.on("GET", "/v1/auth/token/lookup-self", 200, lookupSelfLoginReply)
			r := ward(t, tt.input, append([]string{"login"}, tt.args...)...).wantCode(t, 0)
			if req := f.only("GET", "/v1/auth/token/lookup-self"); req.Token != "s.Given" {
				t.Errorf("lookup-self sent with token %q", req.Token)
			}
			if tok, ok := storedToken(t); !ok || tok != "s.Given" {
				t.Errorf("stored token = %q, %v", tok, ok)
			}
			if !strings.HasPrefix(r.stdout, successStored) {
				t.Errorf("stdout does not start with the success text:\n%s", r.stdout)
			}
			kv := parseKeyValueTable(t, r.stdout)
			want := map[string]string{"token": "s.Given", "token_accessor": "acc-1", "token_duration": "1h",
				"token_renewable": "true", "token_policies": `["default" "ops"]`, "identity_policies": `["team"]`,
				"policies": `["default" "ops" "team"]`, "token_meta_team": "ops"}
			for k, v := range want {
				if kv[k] != v {
					t.Errorf("%s = %q, want %q", k, kv[k], v)
				}
			}
			if tt.args == nil && !strings.Contains(r.stderr, "Token (will be hidden): ") {
				t.Errorf("no prompt on stderr: %q", r.stderr)
			}
		})
	}
}

func TestLoginTokenErrors(t *testing.T) {
	f := loginSetup(t)
	f.on("GET", "/v1/auth/token/lookup-self", 403, `{"errors":["permission denied"]}`)
	r := ward(t, "", "login", "s.Bad-Secret").wantCode(t, exitRemote)
	if r.stderr != "Error authenticating: permission denied\n" {
		t.Errorf("stderr = %q", r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, "Bad-Secret") {
		t.Errorf("output echoes the token")
	}
	wantNoTokenFile(t)

	f = loginSetup(t)
	for _, tt := range []struct {
		args   []string
		input  string
		stderr string
	}{
		{[]string{"a", "b"}, "", "Too many arguments (expected 0 to 1, got 2)\n"},
		{nil, "\n", "Token (will be hidden): \nNo token provided\n"},
		{[]string{"-path=other", "s.x"}, "", "-path does not apply to -method=token\n"},
		{[]string{"-method=github"}, "", ""},
		{[]string{"-token-only", "-format=yaml", "s.x"}, "", ""},
	} {
		r := ward(t, tt.input, append([]string{"login"}, tt.args...)...).wantCode(t, exitLocal)
		if tt.stderr != "" && r.stderr != tt.stderr {
			t.Errorf("%v: stderr = %q, want %q", tt.args, r.stderr, tt.stderr)
		}
	}
	if len(f.allRequests()) != 0 {
		t.Errorf("requests sent: %+v", f.allRequests())
	}
	wantNoTokenFile(t)
}

func TestLoginMethods(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		input string
		path  string
		body  string
	}{
		{"userpass", []string{"-method=userpass", "username=alice", "password=pw"}, "",
			"/v1/auth/userpass/login/alice", `{"password":"pw"}`},
		{"userpass prompted password", []string{"-method=userpass", "username=alice"}, "p w\n",
			"/v1/auth/userpass/login/alice", `{"password":"p w"}`},
		{"userpass password from stdin, as given", []string{"-method=userpass", "username=alice", "password=-"}, "pw\n",
			"/v1/auth/userpass/login/alice", `{"password":"pw\n"}`},
		{"userpass at another path", []string{"-method=userpass", "-path=/corp/", "username=alice", "password=pw"}, "",
			"/v1/auth/corp/login/alice", `{"password":"pw"}`},
		{"approle", []string{"-method=approle", "role_id=r-1", "secret_id=-"}, "s-1\n",
			"/v1/auth/approle/login", `{"role_id":"r-1","secret_id":"s-1"}`},
		{"approle without secret_id", []string{"-method=APPROLE", "role_id=r-1"}, "",
			"/v1/auth/approle/login", `{"role_id":"r-1"}`},
		{"jwt", []string{"-method=jwt", "-path=ci", "role=deploy", "jwt=eyJ.x.y"}, "",
			"/v1/auth/ci/login", `{"role":"deploy","jwt":"eyJ.x.y"}`},
		{"extra parameters passed through", []string{"-method=jwt", "jwt=eyJ.x.y", "-"}, `{"aud":"ward"}`,
			"/v1/auth/jwt/login", `{"jwt":"eyJ.x.y","aud":"ward"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := setup(t) // WARD_TOKEN=test-token: it must not be sent, and is warned about
			f.on("PUT", tt.path, 200, loginReply)
			r := ward(t, tt.input, append([]string{"login"}, tt.args...)...).wantCode(t, 0)
			req := f.only("PUT", tt.path)
			jsonEqual(t, req.JSON(t), tt.body)
			if req.Token != "" {
				t.Errorf("login sent token %q", req.Token)
			}
			if tok, ok := storedToken(t); !ok || tok != "s.LoginTok" {
				t.Errorf("stored token = %q, %v", tok, ok)
			}
			if !strings.HasPrefix(r.stdout, successStored) {
				t.Errorf("stdout does not start with the success text:\n%s", r.stdout)
			}
			kv := parseKeyValueTable(t, r.stdout)
			want := map[string]string{"token": "s.LoginTok", "token_accessor": "acc-9", "token_duration": "768h",
				"token_renewable": "true", "token_policies": `["default" "dev"]`, "identity_policies": "[]",
				"policies": `["default" "dev"]`, "token_meta_username": "alice"}
			for k, v := range want {
				if kv[k] != v {
					t.Errorf("%s = %q, want %q", k, kv[k], v)
				}
			}
			if !strings.Contains(r.stderr, "WARNING! The WARD_TOKEN environment variable is set!") {
				t.Errorf("no WARD_TOKEN warning: %q", r.stderr)
			}
			if strings.Contains(r.stdout+r.stderr, "pw") || strings.Contains(r.stdout+r.stderr, "s-1") {
				t.Errorf("output contains a credential:\n%s\n%s", r.stdout, r.stderr)
			}
		})
	}
}

func TestLoginIdentifiersTrimmed(t *testing.T) {
	f := loginSetup(t)
	f.on("PUT", "/v1/auth/approle/login", 200, loginReply)
	dir := t.TempDir()
	for name, content := range map[string]string{"role": "r-1\n", "secret": "s-1\r\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ward(t, "", "login", "-method=approle", "role_id=@"+filepath.Join(dir, "role"),
		"secret_id=@"+filepath.Join(dir, "secret")).wantCode(t, 0)
	jsonEqual(t, f.only("PUT", "/v1/auth/approle/login").JSON(t), `{"role_id":"r-1","secret_id":"s-1"}`)
}

func TestLoginOutputs(t *testing.T) {
	t.Run("-no-store", func(t *testing.T) {
		f := setup(t)
		f.on("PUT", "/v1/auth/userpass/login/alice", 200, loginReply)
		r := ward(t, "", "login", "-no-store", "-method=userpass", "username=alice", "password=pw").wantCode(t, 0)
		wantNoTokenFile(t)
		if !strings.HasPrefix(r.stdout, "Success! You are now authenticated.\n\nKey ") {
			t.Errorf("stdout:\n%s", r.stdout)
		}
		if parseKeyValueTable(t, r.stdout)["token"] != "s.LoginTok" {
			t.Errorf("stdout:\n%s", r.stdout)
		}
		if !strings.Contains(r.stderr, "The token was not stored") || strings.Contains(r.stderr, "WARNING!") {
			t.Errorf("stderr = %q", r.stderr)
		}
	})
	t.Run("-token-only", func(t *testing.T) {
		f := setup(t)
		f.on("PUT", "/v1/auth/userpass/login/alice", 200, loginReply)
		r := ward(t, "", "login", "-token-only", "-method=userpass", "username=alice", "password=pw").wantCode(t, 0)
		wantNoTokenFile(t)
		if r.stdout != "s.LoginTok" || r.stderr != "" {
			t.Errorf("stdout = %q, stderr = %q", r.stdout, r.stderr)
		}
	})
	t.Run("-token-only with the token method", func(t *testing.T) {
		f := loginSetup(t)
		f.on("GET", "/v1/auth/token/lookup-self", 200, lookupSelfLoginReply)
		r := ward(t, "", "login", "-token-only", "s.Given").wantCode(t, 0)
		f.only("GET", "/v1/auth/token/lookup-self")
		wantNoTokenFile(t)
		if r.stdout != "s.Given" {
			t.Errorf("stdout = %q", r.stdout)
		}
	})
	t.Run("-field", func(t *testing.T) {
		f := loginSetup(t)
		f.on("PUT", "/v1/auth/userpass/login/alice", 200, loginReply)
		r := ward(t, "", "login", "-field=token_accessor", "-method=userpass", "username=alice", "password=pw").
			wantCode(t, 0)
		if r.stdout != "acc-9" {
			t.Errorf("stdout = %q", r.stdout)
		}
		if tok, _ := storedToken(t); tok != "s.LoginTok" {
			t.Errorf("stored token = %q", tok)
		}
	})
	t.Run("-format=json", func(t *testing.T) {
		f := loginSetup(t)
		f.on("PUT", "/v1/auth/userpass/login/alice", 200, loginReply)
		r := ward(t, "", "login", "-format=json", "-method=userpass", "username=alice", "password=pw").wantCode(t, 0)
		out := mustJSON(t, r.stdout)
		auth, _ := out["auth"].(map[string]any)
		if auth["client_token"] != "s.LoginTok" || auth["accessor"] != "acc-9" {
			t.Errorf("json = %v", out)
		}
		if tok, _ := storedToken(t); tok != "s.LoginTok" {
			t.Errorf("stored token = %q", tok)
		}
		if r.stderr != "" {
			t.Errorf("stderr = %q", r.stderr)
		}
	})
	t.Run("VAULT_TOKEN warning", func(t *testing.T) {
		f := loginSetup(t)
		t.Setenv("VAULT_TOKEN", "s.vault")
		f.on("PUT", "/v1/auth/userpass/login/alice", 200, loginReply)
		r := ward(t, "", "login", "-method=userpass", "username=alice", "password=pw").wantCode(t, 0)
		if !strings.Contains(r.stderr, "WARNING! The VAULT_TOKEN environment variable is set!") ||
			strings.Contains(r.stderr, "s.vault") {
			t.Errorf("stderr = %q", r.stderr)
		}
		if f.only("PUT", "/v1/auth/userpass/login/alice").Token != "" {
			t.Errorf("VAULT_TOKEN sent with the login")
		}
	})
}

func TestLoginStoresAtomically(t *testing.T) {
	f := loginSetup(t)
	f.on("PUT", "/v1/auth/userpass/login/alice", 200, loginReply)
	f.on("GET", "/v1/auth/token/lookup-self", 200, lookupSelfLoginReply)
	home, _ := os.UserHomeDir()
	path := filepath.Join(home, ".ward-token")
	if err := os.WriteFile(path, []byte("s.old-token\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The old token file is not needed to log in, and is replaced.
	ward(t, "", "login", "-method=userpass", "username=alice", "password=pw").wantCode(t, 0)
	if req := f.only("PUT", "/v1/auth/userpass/login/alice"); req.Token != "" {
		t.Errorf("login sent the stored token %q", req.Token)
	}
	if tok, _ := storedToken(t); tok != "s.LoginTok" {
		t.Errorf("stored token = %q", tok)
	}
	// Later commands use the stored token.
	ward(t, "", "token", "lookup").wantCode(t, 0)
	if got := f.requests()[1].Token; got != "s.LoginTok" {
		t.Errorf("next command sent token %q", got)
	}
}

func TestLoginStoreFailure(t *testing.T) {
	f := loginSetup(t)
	f.on("PUT", "/v1/auth/userpass/login/alice", 200, loginReply)
	// HOME is a file: nothing can be created under it.
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", notADir)
	r := ward(t, "", "login", "-method=userpass", "username=alice", "password=pw").wantCode(t, exitLocal)
	if !strings.HasPrefix(r.stderr, "Error storing token: ") || strings.Contains(r.stderr, "s.LoginTok") {
		t.Errorf("stderr = %q", r.stderr)
	}
	// The token is not lost: it is shown for the user's records.
	if parseKeyValueTable(t, r.stdout)["token"] != "s.LoginTok" {
		t.Errorf("stdout:\n%s", r.stdout)
	}
}

func TestLoginErrors(t *testing.T) {
	t.Run("rejected credentials", func(t *testing.T) {
		f := loginSetup(t)
		f.on("PUT", "/v1/auth/userpass/login/alice", 400, `{"errors":["invalid username or password"]}`)
		r := ward(t, "", "login", "-method=userpass", "username=alice", "password=hunter2").wantCode(t, exitRemote)
		if r.stderr != "Error authenticating: invalid username or password\n" || r.stdout != "" {
			t.Errorf("stdout = %q, stderr = %q", r.stdout, r.stderr)
		}
		wantNoTokenFile(t)
	})
	t.Run("not retried", func(t *testing.T) {
		f := loginSetup(t)
		t.Setenv("WARD_MAX_RETRIES", "2")
		f.on("PUT", "/v1/auth/approle/login", 503, `{"errors":["busy"]}`)
		ward(t, "", "login", "-method=approle", "role_id=r", "secret_id=once").wantCode(t, exitRemote)
		f.only("PUT", "/v1/auth/approle/login")
	})
	t.Run("reply without auth", func(t *testing.T) {
		f := loginSetup(t)
		f.on("PUT", "/v1/auth/jwt/login", 200, `{"data":{"x":1}}`)
		r := ward(t, "", "login", "-method=jwt", "jwt=a.b.c").wantCode(t, exitRemote)
		if r.stderr != "Error authenticating: the server's reply has no auth information\n" {
			t.Errorf("stderr = %q", r.stderr)
		}
		wantNoTokenFile(t)
	})
	t.Run("local errors", func(t *testing.T) {
		f := loginSetup(t)
		for _, tt := range []struct {
			args   []string
			input  string
			stderr string
		}{
			{[]string{"-method=userpass", "password=hunter2"}, "",
				"Missing username: the userpass method needs username=…\n"},
			{[]string{"-method=userpass", "username=a/../b", "password=hunter2"}, "",
				"Invalid username: it cannot contain \"/\" or be \".\" or \"..\"\n"},
			{[]string{"-method=userpass", "username=.."}, "", ""},
			{[]string{"-method=userpass", "username=alice"}, "",
				"Password (will be hidden): \nNo password provided\n"},
			{[]string{"-method=userpass", "username=alice"}, "\n", "Password (will be hidden): \nNo password provided\n"},
			{[]string{"-method=userpass", "hunter2"}, "", "Failed to parse K=V data: argument 1: expected key=value\n"},
			{[]string{"-method=approle", "secret_id=hunter2"}, "", "Missing role_id: the approle method needs role_id=…\n"},
			{[]string{"-method=approle", "role_id=a", "role_id=b"}, "", "role_id must be a single string value\n"},
			{[]string{"-method=jwt", "role=r"}, "", "Missing jwt: the jwt method needs jwt=…\n"},
			{[]string{"-method=ldap", "username=u"}, "", ""},
		} {
			r := ward(t, tt.input, append([]string{"login"}, tt.args...)...).wantCode(t, exitLocal)
			if tt.stderr != "" && r.stderr != tt.stderr {
				t.Errorf("%v: stderr = %q, want %q", tt.args, r.stderr, tt.stderr)
			}
			if strings.Contains(r.stdout+r.stderr, "hunter2") {
				t.Errorf("%v: output contains the password: %q", tt.args, r.stderr)
			}
		}
		if len(f.allRequests()) != 0 {
			t.Errorf("requests sent: %+v", f.allRequests())
		}
		wantNoTokenFile(t)
	})
}
