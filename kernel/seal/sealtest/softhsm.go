//go:build cgo

// Package sealtest creates throwaway SoftHSM2 tokens for tests of the
// PKCS#11 seal. Each test gets its own token directory and SOFTHSM2_CONF
// (the system token directory is never touched), removed when the test
// ends. SoftHSM2 missing is a test failure, not a skip: `make setup`
// (scripts/setup.sh) installs it.
//
// SoftHSM2 reads SOFTHSM2_CONF when the module is initialised, and the
// seal initialises it once per process while any seal uses it: tests that
// use this package must not run in parallel, and must close every seal
// (server) before the next test starts.
package sealtest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/wardproject/ward/kernel/seal"
)

// libPaths are where Debian and others install the SoftHSM2 module.
var libPaths = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
	"/usr/lib64/pkcs11/libsofthsm2.so",
}

// SoftHSM is a private SoftHSM2 token directory.
type SoftHSM struct {
	// Lib is the module path, Dir the token directory.
	Lib, Dir string
	util     string
}

// New prepares a private token directory and points SOFTHSM2_CONF at it
// for the rest of the test. It fails the test if SoftHSM2 is not
// installed.
func New(t testing.TB) *SoftHSM {
	t.Helper()
	lib := os.Getenv("WARD_TEST_SOFTHSM_LIB")
	if lib == "" {
		for _, p := range libPaths {
			if _, err := os.Stat(p); err == nil {
				lib = p
				break
			}
		}
	}
	util, err := exec.LookPath("softhsm2-util")
	if lib == "" || err != nil {
		t.Fatal("SoftHSM2 is not installed (no libsofthsm2.so or softhsm2-util): run `make setup` " +
			"(scripts/setup.sh installs Debian's softhsm2 package); the PKCS#11 seal tests need it")
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	text := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	return &SoftHSM{Lib: lib, Dir: tokens, util: util}
}

// InitToken creates a token with the label and returns its user PIN (a
// random one).
func (h *SoftHSM) InitToken(t testing.TB, label string) string {
	t.Helper()
	pin, so := randomPIN(), randomPIN()
	out, err := exec.Command(h.util, "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", so).CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --init-token: %v: %s", err, out)
	}
	return pin
}

// Config returns a PKCS#11 seal configuration for a token of this
// directory, generating its key at initialisation.
func (h *SoftHSM) Config(tokenLabel, pin, keyLabel string) seal.PKCS11Config {
	return seal.PKCS11Config{Lib: h.Lib, TokenLabel: tokenLabel, PIN: pin, KeyLabel: keyLabel, GenerateKey: true,
		RSAOAEPHash: "sha1", RSABits: 2048}
}

// DeleteKey destroys every object labelled keyLabel on the token. It works
// whether or not a seal in this process has the module loaded, and leaves
// it loaded as it found it.
func (h *SoftHSM) DeleteKey(t testing.TB, tokenLabel, pin, keyLabel string) {
	t.Helper()
	if err := withToken(h.Lib, tokenLabel, pin, func(ctx *pkcs11.Ctx, sh pkcs11.SessionHandle) error {
		if err := ctx.FindObjectsInit(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, keyLabel)}); err != nil {
			return err
		}
		objs, _, err := ctx.FindObjects(sh, 16)
		_ = ctx.FindObjectsFinal(sh)
		if err != nil {
			return err
		}
		if len(objs) == 0 {
			return errors.New("no such key")
		}
		for _, o := range objs {
			if err := ctx.DestroyObject(sh, o); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("delete key %q: %v", keyLabel, err)
	}
}

// SetUserPIN changes the token's user PIN from pin to newPIN, as its
// owner might while a seal with a wrong PIN is running.
func (h *SoftHSM) SetUserPIN(t testing.TB, tokenLabel, pin, newPIN string) {
	t.Helper()
	if err := withToken(h.Lib, tokenLabel, pin, func(ctx *pkcs11.Ctx, sh pkcs11.SessionHandle) error {
		return ctx.SetPIN(sh, pin, newPIN)
	}); err != nil {
		t.Fatalf("set the user PIN: %v", err)
	}
}

// CloseAllSessions closes every session of the token, as an HSM restart
// would, under the feet of a running seal.
func (h *SoftHSM) CloseAllSessions(t testing.TB, tokenLabel, pin string) {
	t.Helper()
	if err := withToken(h.Lib, tokenLabel, pin, func(ctx *pkcs11.Ctx, sh pkcs11.SessionHandle) error {
		slot, err := findSlot(ctx, tokenLabel)
		if err != nil {
			return err
		}
		return ctx.CloseAllSessions(slot)
	}); err != nil {
		t.Fatalf("close sessions: %v", err)
	}
}

func withToken(lib, tokenLabel, pin string, fn func(*pkcs11.Ctx, pkcs11.SessionHandle) error) error {
	ctx := pkcs11.New(lib)
	if ctx == nil {
		return fmt.Errorf("cannot load %s", lib)
	}
	defer ctx.Destroy()
	finalize := true
	if err := ctx.Initialize(); err != nil {
		var rv pkcs11.Error
		if !errors.As(err, &rv) || uint(rv) != pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED {
			return err
		}
		finalize = false // a seal in this process uses it
	}
	if finalize {
		defer ctx.Finalize()
	}
	slot, err := findSlot(ctx, tokenLabel)
	if err != nil {
		return err
	}
	sh, err := ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return err
	}
	if err := ctx.Login(sh, pkcs11.CKU_USER, pin); err != nil {
		var rv pkcs11.Error
		if !errors.As(err, &rv) || uint(rv) != pkcs11.CKR_USER_ALREADY_LOGGED_IN {
			ctx.CloseSession(sh)
			return err
		}
	}
	err = fn(ctx, sh)
	_ = ctx.CloseSession(sh) // may already be closed by fn
	return err
}

func findSlot(ctx *pkcs11.Ctx, label string) (uint, error) {
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		return 0, err
	}
	for _, s := range slots {
		if ti, err := ctx.GetTokenInfo(s); err == nil && trimLabel(ti.Label) == label {
			return s, nil
		}
	}
	return 0, fmt.Errorf("no token %q", label)
}

func trimLabel(s string) string {
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == 0) {
		s = s[:len(s)-1]
	}
	return s
}

func randomPIN() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
