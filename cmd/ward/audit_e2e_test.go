package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardproject/ward/kernel/config"
)

// TestAuditCommandsAgainstServer drives the audit commands against a real
// server whose configuration declares a file device, then verifies the
// log that device wrote (its key and anchor fetched with -device).
func TestAuditCommandsAgainstServer(t *testing.T) {
	isolateEnv(t)
	logPath := filepath.Join(t.TempDir(), "audit.log")
	dev := config.Audit{Type: "file", Path: "main", Options: map[string]string{"file_path": logPath, "checkpoint_every": "5"}}
	ts := startServer(t, serverOpts{audits: []config.Audit{dev}, apiAudit: true})
	_, rootTok := ts.initUnseal(1, 1)
	t.Setenv("WARD_ADDR", ts.addr)
	t.Setenv("WARD_TOKEN", rootTok)

	rows := parseColumnTable(t, runCLI(t, "audit", "list", "-detailed").wantCode(t, 0).stdout)
	if len(rows) != 1 || rows[0]["Path"] != "main/" || rows[0]["Type"] != "file" || rows[0]["Declared In Config"] != "true" ||
		!strings.Contains(rows[0]["Options"], "file_path="+logPath) {
		t.Fatalf("rows = %v", rows)
	}

	// The root token as the device writes it: every request carries it.
	hash := strings.TrimSpace(ward(t, rootTok+"\n", "audit", "hash", "main", "-").wantCode(t, 0).stdout)
	if !strings.HasPrefix(hash, "hmac-sha256:") {
		t.Fatalf("hash = %q", hash)
	}
	if log := readLogLines(t, logPath); !strings.Contains(strings.Join(log, "\n"), `"client_token":"`+hash+`"`) {
		t.Errorf("the log has no entry with client_token %s", hash)
	}

	// A second device through the API (allowed here), then removed.
	second := filepath.Join(t.TempDir(), "second.log")
	runCLI(t, "audit", "enable", "-path=second", "-description=spare", "file", "file_path="+second).wantCode(t, 0)
	runCLI(t, "audit", "verify", "-device=second", second).wantCode(t, 0)
	r := runCLI(t, "audit", "disable", "second").wantCode(t, 0)
	if r.stdout != "Success! Disabled audit device (if it was enabled) at: second/\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
	// The declared device cannot be disabled through the API.
	runCLI(t, "audit", "disable", "main").wantCode(t, exitRemote)

	r = runCLI(t, "audit", "verify", "-device=main", logPath).wantCode(t, 0)
	kv := parseKeyValueTable(t, r.stdout)
	if !strings.HasPrefix(kv["anchor"], "seq ") || !strings.HasSuffix(kv["anchor"], "(from the server)") || kv["first_seq"] != "1" {
		t.Errorf("table = %v", kv)
	}

	// A log cut right after its last checkpoint but one fails against the
	// server's anchor (at least its last checkpoint).
	lines := readLogLines(t, logPath)
	var cps []int
	for i, l := range lines {
		if strings.HasPrefix(l, `{"type":"checkpoint"`) {
			cps = append(cps, i+1)
		}
	}
	if len(cps) < 2 {
		t.Fatalf("%d checkpoints", len(cps))
	}
	cut := cps[len(cps)-2]
	truncated := writeLogLines(t, lines[:cut])
	wantBadLine(t, runCLI(t, "audit", "verify", "-device=main", truncated), truncated, cut+1, "truncated")
}
