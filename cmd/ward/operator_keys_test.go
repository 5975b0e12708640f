package main

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/cli"
)

// operatorCommands are the key management commands (the command table in
// main.go lists them as "operator rotate", ...).
var operatorCommands = map[string]func() cli.Command{
	"rotate":        func() cli.Command { return &operatorRotateCommand{} },
	"key-status":    func() cli.Command { return &operatorKeyStatusCommand{} },
	"rekey":         func() cli.Command { return &operatorRekeyCommand{} },
	"generate-root": func() cli.Command { return &operatorGenerateRootCommand{} },
}

// op runs `ward operator <name> args...` with input on stdin.
func op(t *testing.T, input, name string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	oldOut, oldErr, oldIn := stdout, stderr, stdin
	stdout, stderr, stdin = &out, &errOut, strings.NewReader(input)
	defer func() { stdout, stderr, stdin = oldOut, oldErr, oldIn }()
	code := operatorCommands[name]().Run(args)
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

var keyLine = regexp.MustCompile(`(?m)^Key \d+: (\S+)$`)

func TestOperatorKeyCommands(t *testing.T) {
	isolateEnv(t)
	ts := startServer(t, serverOpts{})
	keys, rootToken := ts.initUnseal(3, 2)
	t.Setenv("WARD_ADDR", ts.addr)
	t.Setenv("WARD_TOKEN", rootToken)

	kv := parseKeyValueTable(t, op(t, "", "key-status").wantCode(t, 0).stdout)
	if kv["Key Term"] != "1" || kv["Install Time"] == "" {
		t.Fatalf("key-status: %v", kv)
	}
	r := op(t, "", "rotate", "-reencrypt").wantCode(t, 0)
	if !strings.HasPrefix(r.stdout, "Success! Rotated key") || parseKeyValueTable(t, r.stdout)["Key Term"] != "2" {
		t.Fatalf("rotate:\n%s", r.stdout)
	}
	if out := mustJSON(t, op(t, "", "key-status", "-format=json").wantCode(t, 0).stdout); out["term"] != float64(2) {
		t.Fatalf("key-status json: %v", out)
	}

	// Rekey to 3 shares, 2 needed; the current key comes from stdin.
	op(t, "", "rekey").wantCode(t, exitLocal) // none in progress
	r = op(t, "", "rekey", "-init", "-key-shares=3", "-key-threshold=2").wantCode(t, 0)
	if st := parseKeyValueTable(t, r.stdout); st["Started"] != "true" || st["Rekey Progress"] != "0/2" || st["New Shares"] != "3" {
		t.Fatalf("rekey -init:\n%s", r.stdout)
	}
	r = op(t, keys[0]+"\n", "rekey").wantCode(t, 0)
	if strings.Contains(r.stdout+r.stderr, keys[0]) || parseKeyValueTable(t, r.stdout)["Rekey Progress"] != "1/2" {
		t.Fatalf("rekey 1:\n%s\n%s", r.stdout, r.stderr)
	}
	r = op(t, "", "rekey", keys[1]).wantCode(t, 0)
	newKeys := keyLine.FindAllStringSubmatch(r.stdout, -1)
	if len(newKeys) != 3 || !strings.Contains(r.stdout, "key threshold of 2") {
		t.Fatalf("rekey done:\n%s", r.stdout)
	}
	root := ts.client(rootToken)
	if err := root.Sys().Seal(); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{newKeys[2][1], newKeys[0][1]} {
		if _, err := root.Sys().Unseal(k); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := root.Sys().SealStatus(); st.Sealed {
		t.Fatal("new keys did not unseal")
	}

	// Generate a root token with no token at all.
	t.Setenv("WARD_TOKEN", "")
	if otp := strings.TrimSpace(op(t, "", "generate-root", "-generate-otp").wantCode(t, 0).stdout); len(otp) != 26 {
		t.Fatalf("-generate-otp: %q", otp)
	}
	st := parseKeyValueTable(t, op(t, "", "generate-root", "-init").wantCode(t, 0).stdout)
	otp := st["OTP"]
	if st["Started"] != "true" || len(otp) != 26 || st["Progress"] != "0/2" {
		t.Fatalf("generate-root -init: %v", st)
	}
	op(t, "", "generate-root", newKeys[1][1]).wantCode(t, 0)
	st = parseKeyValueTable(t, op(t, newKeys[2][1]+"\n", "generate-root").wantCode(t, 0).stdout)
	if st["Complete"] != "true" || st["Encoded Token"] == "" {
		t.Fatalf("generate-root done: %v", st)
	}
	dec := parseKeyValueTable(t, op(t, "", "generate-root", "-decode="+st["Encoded Token"], "-otp="+otp).wantCode(t, 0).stdout)
	self, err := ts.client(dec["Root Token"]).Auth().Token().LookupSelf()
	if err != nil {
		t.Fatalf("decoded root token: %v", err)
	}
	if p, _ := self.TokenPolicies(); len(p) != 1 || p[0] != "root" {
		t.Fatalf("policies %v", p)
	}
	op(t, "", "generate-root", "-pgp-key=x").wantCode(t, exitLocal)
	op(t, "", "generate-root", "-decode=abc").wantCode(t, exitLocal)
}

// TestOperatorRekeyVerify: `rekey -init -verify` hands out new keys that
// are stored only once a threshold of them is entered back with
// `rekey -verify`; the old keys work until then.
func TestOperatorRekeyVerify(t *testing.T) {
	isolateEnv(t)
	ts := startServer(t, serverOpts{})
	keys, rootToken := ts.initUnseal(3, 2)
	t.Setenv("WARD_ADDR", ts.addr)
	t.Setenv("WARD_TOKEN", rootToken)

	r := op(t, "", "rekey", "-init", "-verify", "-key-shares=3", "-key-threshold=2").wantCode(t, 0)
	if st := parseKeyValueTable(t, r.stdout); st["Verification Required"] != "true" {
		t.Fatalf("rekey -init -verify:\n%s", r.stdout)
	}
	op(t, "", "rekey", keys[0]).wantCode(t, 0)
	r = op(t, "", "rekey", keys[1]).wantCode(t, 0)
	newKeys := keyLine.FindAllStringSubmatch(r.stdout, -1)
	if len(newKeys) != 3 || !strings.Contains(r.stdout, "NOT in use yet") || strings.Contains(r.stdout, "no longer work") {
		t.Fatalf("rekey done:\n%s", r.stdout)
	}
	root := ts.client(rootToken)
	sealAndUnseal := func(ks ...string) error {
		t.Helper()
		if st, _ := root.Sys().SealStatus(); !st.Sealed {
			if err := root.Sys().Seal(); err != nil {
				t.Fatal(err)
			}
		}
		root.Sys().ResetUnsealProcess()
		var err error
		for _, k := range ks {
			if _, err = root.Sys().Unseal(k); err != nil {
				break
			}
		}
		if st, _ := root.Sys().SealStatus(); err == nil && st.Sealed {
			err = errors.New("still sealed")
		}
		return err
	}
	// Verification: progress, restart, completion.
	r = op(t, newKeys[0][1]+"\n", "rekey", "-verify").wantCode(t, 0)
	if st := parseKeyValueTable(t, r.stdout); st["Verification Progress"] != "1/2" || strings.Contains(r.stdout, newKeys[0][1]) {
		t.Fatalf("verify 1:\n%s", r.stdout)
	}
	op(t, "", "rekey", "-verify", "-cancel").wantCode(t, 0)
	if st := parseKeyValueTable(t, op(t, "", "rekey", "-verify", "-status").wantCode(t, 0).stdout); st["Verification Progress"] != "0/2" || st["Started"] != "true" {
		t.Fatalf("after -verify -cancel: %v", st)
	}
	op(t, "", "rekey", "-verify", newKeys[2][1]).wantCode(t, 0)
	r = op(t, "", "rekey", "-verify", newKeys[1][1]).wantCode(t, 0)
	if !strings.HasPrefix(r.stdout, "Success! Rekey verified") {
		t.Fatalf("verify done:\n%s", r.stdout)
	}
	if err := sealAndUnseal(keys[0], keys[2]); err == nil {
		t.Fatal("the old keys still unseal after the verified rekey")
	}
	if err := sealAndUnseal(newKeys[0][1], newKeys[2][1]); err != nil {
		t.Fatalf("the new keys do not unseal: %v", err)
	}
	op(t, "", "rekey", "-verify").wantCode(t, exitRemote) // nothing to verify
}
