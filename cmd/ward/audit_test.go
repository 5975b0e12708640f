package main

import (
	"strings"
	"testing"
)

const auditListReply = `{"request_id":"r","data":{
 "file/":{"type":"file","description":"main log","options":{"file_path":"/var/log/ward/audit.log","mode":"0600"},
   "local":false,"path":"file/","declared_in_config":true},
 "collector/":{"type":"socket","description":"","options":{"address":"10.0.0.5:9090"},
   "local":false,"path":"collector/","declared_in_config":false}}}`

func TestAuditList(t *testing.T) {
	f := setup(t)
	f.on("GET", "/v1/sys/audit", 200, auditListReply)

	r := ward(t, "", "audit", "list").wantCode(t, 0)
	if f.only("GET", "/v1/sys/audit").Token != "test-token" {
		t.Errorf("token not sent")
	}
	rows := parseColumnTable(t, r.stdout)
	if len(rows) != 2 || rows[0]["Path"] != "collector/" || rows[0]["Type"] != "socket" ||
		rows[1]["Path"] != "file/" || rows[1]["Type"] != "file" || rows[1]["Description"] != "main log" {
		t.Errorf("rows = %v", rows)
	}

	rows = parseColumnTable(t, ward(t, "", "audit", "list", "-detailed").wantCode(t, 0).stdout)
	file := rows[1]
	if file["Options"] != "file_path=/var/log/ward/audit.log mode=0600" || file["Replication"] != "replicated" ||
		file["Declared In Config"] != "true" || rows[0]["Declared In Config"] != "false" {
		t.Errorf("detailed rows = %v", rows)
	}

	out := mustJSON(t, ward(t, "", "audit", "list", "-format=json").wantCode(t, 0).stdout)
	if len(out) != 2 {
		t.Errorf("json = %v", out)
	}
	jsonEqual(t, out["file/"].(map[string]any)["options"], `{"file_path":"/var/log/ward/audit.log","mode":"0600"}`)

	// No device: Vault's message and exit code 2 (JSON prints {}).
	f = setup(t)
	f.on("GET", "/v1/sys/audit", 200, `{"request_id":"r","data":{}}`)
	r = ward(t, "", "audit", "list").wantCode(t, exitRemote)
	if r.stdout != "No audit devices are enabled.\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
	if got := strings.TrimSpace(ward(t, "", "audit", "list", "-format=json").wantCode(t, 0).stdout); got != "{}" {
		t.Errorf("json = %q", got)
	}

	f = setup(t)
	f.on("GET", "/v1/sys/audit", 403, `{"errors":["permission denied"]}`)
	r = ward(t, "", "audit", "list").wantCode(t, exitRemote)
	if r.stderr != "Error listing audit devices: permission denied\n" {
		t.Errorf("stderr = %q", r.stderr)
	}
	ward(t, "", "audit", "list", "extra").wantCode(t, exitLocal)
}

func TestAuditEnable(t *testing.T) {
	tests := []struct {
		args   []string
		stdin  string
		path   string
		body   string
		stdout string
	}{
		{[]string{"file", "file_path=/var/log/audit.log"}, "", "/v1/sys/audit/file",
			`{"type":"file","options":{"file_path":"/var/log/audit.log"}}`,
			"Success! Enabled the file audit device at: file/\n"},
		{[]string{"-path=/main/", "-description=Main log", "file", "file_path=/var/log/audit.log", "fsync=true", "mode=0640"},
			"", "/v1/sys/audit/main",
			`{"type":"file","description":"Main log","options":{"file_path":"/var/log/audit.log","fsync":"true","mode":"0640"}}`,
			"Success! Enabled the file audit device at: main/\n"},
		{[]string{"-path=collector", "socket", "address=-"}, "10.0.0.5:9090", "/v1/sys/audit/collector",
			`{"type":"socket","options":{"address":"10.0.0.5:9090"}}`,
			"Success! Enabled the socket audit device at: collector/\n"},
		{[]string{"file", "-"}, `{"file_path":"stdout","checkpoint_every":100,"log_raw":false}`, "/v1/sys/audit/file",
			`{"type":"file","options":{"file_path":"stdout","checkpoint_every":"100","log_raw":"false"}}`,
			"Success! Enabled the file audit device at: file/\n"},
	}
	for _, tt := range tests {
		f := setup(t)
		f.on("PUT", tt.path, 204, "")
		r := ward(t, tt.stdin, append([]string{"audit", "enable"}, tt.args...)...).wantCode(t, 0)
		req := f.only("PUT", tt.path)
		jsonEqual(t, req.JSON(t), tt.body)
		if req.Token != "test-token" {
			t.Errorf("token = %q", req.Token)
		}
		if r.stdout != tt.stdout {
			t.Errorf("stdout = %q, want %q", r.stdout, tt.stdout)
		}
	}

	f := setup(t)
	f.on("PUT", "/v1/sys/audit/file", 400, `{"errors":["audit devices can only be declared in the server configuration"]}`)
	r := ward(t, "", "audit", "enable", "file", "file_path=/tmp/a.log").wantCode(t, exitRemote)
	if r.stderr != "Error enabling audit device: audit devices can only be declared in the server configuration\n" {
		t.Errorf("stderr = %q", r.stderr)
	}

	f = setup(t)
	r = ward(t, "", "audit", "enable").wantCode(t, exitLocal)
	if !strings.Contains(r.stderr, "audit type missing") {
		t.Errorf("stderr = %q", r.stderr)
	}
	r = ward(t, "", "audit", "enable", "file", "file_path=/a", "file_path=/b").wantCode(t, exitLocal)
	if !strings.Contains(r.stderr, "file_path is given more than once") {
		t.Errorf("stderr = %q", r.stderr)
	}
	ward(t, "", "audit", "enable", "file", "notkv").wantCode(t, exitLocal)
	ward(t, "", "audit", "enable", "file", "-path=x").wantCode(t, exitLocal) // flag after the type
	if len(f.allRequests()) != 0 {
		t.Errorf("requests sent: %+v", f.allRequests())
	}
}

func TestAuditDisable(t *testing.T) {
	f := setup(t)
	f.on("DELETE", "/v1/sys/audit/file", 204, "")
	r := ward(t, "", "audit", "disable", "file/").wantCode(t, 0)
	f.only("DELETE", "/v1/sys/audit/file")
	if r.stdout != "Success! Disabled audit device (if it was enabled) at: file/\n" {
		t.Errorf("stdout = %q", r.stdout)
	}

	f = setup(t)
	f.on("DELETE", "/v1/sys/audit/file", 400, `{"errors":["audit device \"file/\" is declared in the server configuration; remove it there"]}`)
	r = ward(t, "", "audit", "disable", "file").wantCode(t, exitRemote)
	if !strings.HasPrefix(r.stderr, "Error disabling audit device: audit device \"file/\" is declared") {
		t.Errorf("stderr = %q", r.stderr)
	}
	ward(t, "", "audit", "disable").wantCode(t, exitLocal)
	ward(t, "", "audit", "disable", "/").wantCode(t, exitLocal)
}

func TestAuditHash(t *testing.T) {
	const hash = "hmac-sha256:2a0b1c"
	tests := []struct {
		args  []string
		stdin string
		input string
	}{
		{[]string{"file", "s3cret"}, "", "s3cret"},
		// From stdin (kept out of the shell history): one trailing newline
		// is removed, other white space kept.
		{[]string{"file/", "-"}, " s3cret \n", " s3cret "},
		{[]string{"file", "-"}, "line1\nline2\r\n", "line1\nline2"},
		{[]string{"file", "-"}, "no-newline", "no-newline"},
	}
	for _, tt := range tests {
		f := setup(t)
		f.on("POST", "/v1/sys/audit-hash/file", 200, `{"request_id":"r","data":{"hash":"`+hash+`"}}`)
		r := ward(t, tt.stdin, append([]string{"audit", "hash"}, tt.args...)...).wantCode(t, 0)
		got := f.only("POST", "/v1/sys/audit-hash/file").JSON(t)
		if got["input"] != tt.input || len(got) != 1 {
			t.Errorf("%v: body = %v, want input %q", tt.args, got, tt.input)
		}
		if r.stdout != hash+"\n" {
			t.Errorf("stdout = %q", r.stdout)
		}
		if strings.Contains(r.stderr, "s3cret") {
			t.Errorf("the input was echoed: %q", r.stderr)
		}
	}

	f := setup(t)
	f.on("POST", "/v1/sys/audit-hash/file", 200, `{"request_id":"r","data":{"hash":"`+hash+`"}}`)
	out := mustJSON(t, ward(t, "", "audit", "hash", "-format=json", "file", "x").wantCode(t, 0).stdout)
	jsonEqual(t, out, `{"hash":"`+hash+`"}`)

	f = setup(t)
	f.on("POST", "/v1/sys/audit-hash/nope", 400, `{"errors":["no audit device at \"nope/\""]}`)
	r := ward(t, "", "audit", "hash", "nope", "s3cret").wantCode(t, exitRemote)
	if r.stderr != "Error hashing: no audit device at \"nope/\"\n" || strings.Contains(r.stderr, "s3cret") {
		t.Errorf("stderr = %q", r.stderr)
	}

	f = setup(t)
	ward(t, "", "audit", "hash", "file").wantCode(t, exitLocal)
	ward(t, "", "audit", "hash", "file", "a", "b").wantCode(t, exitLocal)
	ward(t, "", "audit", "hash", "file", "-").wantCode(t, exitLocal) // empty stdin
	if len(f.allRequests()) != 0 {
		t.Errorf("requests sent: %+v", f.allRequests())
	}
}
