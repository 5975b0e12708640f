package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openbao/openbao/api/v2"

	"github.com/wardproject/ward/kernel/audit"
	"github.com/wardproject/ward/kernel/config"
)

func fileAudit(path string) config.Audit {
	return config.Audit{Type: "file", Path: "main", Options: map[string]string{"file_path": path}}
}

// auditLines decodes the entries (not checkpoints) of an audit log.
func auditLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("audit line is not JSON: %v", err)
		}
		if m["type"] == "request" || m["type"] == "response" {
			out = append(out, m)
		}
	}
	return out
}

// TestAuditEveryRequestClassAndNoRawSecrets: sys, token, KV through a
// plugin, a login, a denied request and a 404 each leave a request and a
// response entry, and no secret or token appears raw in the log.
func TestAuditEveryRequestClassAndNoRawSecrets(t *testing.T) {
	ctx := context.Background()
	logPath := filepath.Join(t.TempDir(), "audit.log")
	ts := startServer(t, serverOpts{audits: []config.Audit{fileAudit(logPath)}})
	_, rootTok := ts.initUnseal(1, 1)
	root := ts.client(rootTok)

	const kvSecret, password = "kv-value-7f3a91c2", "pw-value-d41e8b07"
	if err := root.Sys().Mount("secret", &api.MountInput{Type: "kv-v2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.KVv2("secret").Put(ctx, "app/db", map[string]any{"password": kvSecret}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.KVv2("secret").Get(ctx, "app/db"); err != nil {
		t.Fatal(err)
	}
	enableAuth(t, root, "userpass", "userpass", api.AuthConfigInput{})
	if _, err := root.Logical().Write("auth/userpass/users/ada", map[string]any{"password": password}); err != nil {
		t.Fatal(err)
	}
	a, err := login(t, ts, "auth/userpass/login/ada", map[string]any{"password": password})
	if err != nil {
		t.Fatal(err)
	}
	ada := ts.client(a.ClientToken)
	if _, err := ada.Auth().Token().LookupSelf(); err != nil {
		t.Fatal(err)
	}
	if _, err := ada.KVv2("secret").Get(ctx, "app/db"); statusOf(t, err) != 403 {
		t.Fatalf("denied read: %v", err)
	}
	// The client turns a 404 into (nil, nil).
	if s, err := root.Logical().Read("nowhere/at/all"); s != nil || err != nil {
		t.Fatalf("read of an unmounted path: %v %v", s, err)
	}

	entries := auditLines(t, logPath)
	seen := map[string]map[string]bool{} // path -> type -> seen
	var deniedWithError, notFound bool
	for _, e := range entries {
		req, _ := e["request"].(map[string]any)
		p, _ := req["path"].(string)
		if seen[p] == nil {
			seen[p] = map[string]bool{}
		}
		seen[p][e["type"].(string)] = true
		errText, _ := e["error"].(string)
		if p == "secret/data/app/db" && e["type"] == "response" && strings.Contains(errText, "permission denied") {
			deniedWithError = true
		}
		if p == "nowhere/at/all" && e["type"] == "response" {
			notFound = strings.Contains(errText, "no handler for route")
		}
	}
	for _, p := range []string{"sys/mounts/secret", "secret/data/app/db", "auth/userpass/login/ada",
		"auth/token/lookup-self", "nowhere/at/all"} {
		if !seen[p]["request"] || !seen[p]["response"] {
			t.Errorf("%s: request/response entries %v", p, seen[p])
		}
	}
	if !deniedWithError || !notFound {
		t.Errorf("denied entry with error: %v, 404 entry with error: %v", deniedWithError, notFound)
	}

	raw, _ := os.ReadFile(logPath)
	for name, secret := range map[string]string{"KV value": kvSecret, "password": password,
		"root token": rootTok, "login token": a.ClientToken} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the %s appears raw in the audit log", name)
		}
	}
	// sys/audit-hash finds the KV value's HMAC in the log.
	h, err := root.Logical().Write("sys/audit-hash/main", map[string]any{"input": kvSecret})
	if err != nil {
		t.Fatal(err)
	}
	if hv, _ := h.Data["hash"].(string); hv == "" || !bytes.Contains(raw, []byte(hv)) {
		t.Fatalf("audit-hash %v not found in the log", h.Data)
	}
	// The log verifies with the device's public key (after a checkpoint).
	vk, err := root.Logical().Read("sys/audit/main/verify-key")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := audit.ParsePublicKey(vk.Data["public_key"].(string))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := audit.VerifyLog(f, audit.VerifyOptions{PublicKey: pub}); err != nil {
		t.Fatalf("verify: %v", err)
	}
	// API creation is off unless the configuration allows it.
	if _, err := root.Logical().Write("sys/audit/other", map[string]any{"type": "file",
		"options": map[string]any{"file_path": logPath + ".2"}}); err == nil || statusOf(t, err) != 400 {
		t.Fatalf("API audit creation without the unsafe flag: %v", err)
	}
	if _, err := root.Logical().Delete("sys/audit/main"); err == nil || statusOf(t, err) != 400 {
		t.Fatalf("disabling a declared device through the API: %v", err)
	}
}

// TestAuditFailsClosed: when the only device cannot write, a KV write is
// refused and not stored; once the device recovers, writes succeed again
// without a restart.
func TestAuditFailsClosed(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "logs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "audit.log")
	ts := startServer(t, serverOpts{audits: []config.Audit{fileAudit(logPath)}})
	_, rootTok := ts.initUnseal(1, 1)
	root := ts.client(rootTok)
	if err := root.Sys().Mount("secret", &api.MountInput{Type: "kv-v2"}); err != nil {
		t.Fatal(err)
	}

	// The log directory goes away and the device reopens: it cannot write.
	if err := os.Rename(dir, dir+".old"); err != nil {
		t.Fatal(err)
	}
	if err := ts.srv.core.ReopenAudit(); err == nil {
		t.Fatal("reopen at a missing directory succeeded")
	}
	_, err := root.KVv2("secret").Put(ctx, "lost", map[string]any{"v": "must-not-be-stored"})
	if err == nil || statusOf(t, err) != 500 {
		t.Fatalf("write with a broken audit device: %v", err)
	}

	// The directory comes back: the next request works, no restart.
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := root.KVv2("secret").Put(ctx, "kept", map[string]any{"v": "ok"}); err != nil {
		t.Fatalf("write after the device recovered: %v", err)
	}
	if _, err := root.KVv2("secret").Get(ctx, "lost"); err == nil {
		t.Fatal("the refused write was stored")
	}
}

// TestAuditSocketFailsClosed: the only device is a socket nobody listens
// on: writes are refused; once a collector listens, they succeed.
func TestAuditSocketFailsClosed(t *testing.T) {
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ts := startServer(t, serverOpts{audits: []config.Audit{{Type: "socket", Path: "siem",
		Options: map[string]string{"address": addr, "socket_type": "tcp"}}}})
	_, rootTok := ts.initUnseal(1, 1)
	root := ts.client(rootTok)
	if err := root.Sys().Mount("secret", &api.MountInput{Type: "kv-v2"}); err == nil || statusOf(t, err) != 500 {
		t.Fatalf("request with the only audit device unreachable: %v", err)
	}

	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = bufio.NewReader(c).WriteTo(devNull{}) }()
		}
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := root.Sys().Mount("secret", &api.MountInput{Type: "kv-v2"})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the socket device did not recover: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := root.KVv2("secret").Put(ctx, "x", map[string]any{"v": 1}); err != nil {
		t.Fatal(err)
	}
}

type devNull struct{}

func (devNull) Write(p []byte) (int, error) { return len(p), nil }

// TestAuditChainSpansRestart: the chain continues across a restart, and
// the whole file verifies against the device's key.
func TestAuditChainSpansRestart(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(t.TempDir(), "audit.log")
	dev := fileAudit(logPath)
	dev.Options["checkpoint_every"] = "5"
	ts := startServer(t, serverOpts{dataDir: dir, audits: []config.Audit{dev}})
	keys, rootTok := ts.initUnseal(1, 1)
	root := ts.client(rootTok)
	for i := 0; i < 6; i++ {
		if _, err := root.Auth().Token().LookupSelf(); err != nil {
			t.Fatal(err)
		}
	}
	ts.stop()

	ts = startServer(t, serverOpts{dataDir: dir, audits: []config.Audit{dev}})
	if _, err := ts.client("").Sys().Unseal(keys[0]); err != nil {
		t.Fatal(err)
	}
	root = ts.client(rootTok)
	for i := 0; i < 6; i++ {
		if _, err := root.Auth().Token().LookupSelf(); err != nil {
			t.Fatal(err)
		}
	}
	vk, err := root.Logical().Read("sys/audit/main/verify-key")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := audit.ParsePublicKey(vk.Data["public_key"].(string))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := audit.VerifyLog(f, audit.VerifyOptions{PublicKey: pub})
	if err != nil {
		t.Fatalf("a log spanning a restart does not verify: %v", err)
	}
	if res.FirstSeq != 1 || res.Checkpoints < 4 || res.Entries < 24 {
		t.Fatalf("verify result %+v", res)
	}
}
