package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"maps"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openbao/openbao/api/v2"
	"github.com/openbao/openbao/sdk/v2/helper/xor"

	"github.com/wardproject/ward/kernel/config"
	"github.com/wardproject/ward/kernel/seal/sealtest"
	pebblestore "github.com/wardproject/ward/kernel/storage/pebble"
)

// hsmToken is a SoftHSM2 token for one test.
type hsmToken struct {
	hsm   *sealtest.SoftHSM
	label string
	pin   string
}

func newHSMToken(t *testing.T) *hsmToken {
	h := sealtest.New(t)
	return &hsmToken{hsm: h, label: "ward", pin: h.InitToken(t, "ward")}
}

// stanza is the token's `seal "pkcs11"` stanza.
func (h *hsmToken) stanza(disabled bool) config.Seal {
	return config.Seal{Type: "pkcs11", Disabled: disabled, PKCS11: &config.PKCS11Seal{
		Lib: h.hsm.Lib, TokenLabel: h.label, PIN: h.pin, KeyLabel: "ward-root", GenerateKey: true}}
}

// startSealServer starts a server on dataDir with the seal stanzas.
func startSealServer(t *testing.T, dataDir string, seals ...config.Seal) *testServer {
	t.Helper()
	cfg := &config.Config{
		Storage:   &config.Storage{Type: "pebble", Path: dataDir},
		Listeners: []config.Listener{{Address: "127.0.0.1:0", TLSDisable: true}},
		LogLevel:  "info",
		Seals:     seals,
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	var out io.Writer = logs
	if testing.Verbose() {
		out = io.MultiWriter(logs, os.Stderr)
	}
	srv, err := newServer(cfg, out)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{t: t, dataDir: dataDir, srv: srv, addr: srv.addrs[0], logs: logs}
	t.Cleanup(ts.stop)
	return ts
}

// dumpStore reads every physical key of a stopped server's storage.
func dumpStore(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	st, err := pebblestore.Open(dir, pebblestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	out := map[string][]byte{}
	var walk func(prefix string)
	walk = func(prefix string) {
		children, err := st.List(context.Background(), prefix)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range children {
			k := prefix + c
			if v, _ := st.Get(context.Background(), k); v != nil {
				out[k] = v
			}
			if strings.HasSuffix(c, "/") {
				walk(k)
			}
		}
	}
	walk("")
	return out
}

// writeSecrets mounts kv-v2 at secret/ (first time) and writes n secrets
// under prefix; it returns what it wrote.
func writeSecrets(t *testing.T, c *api.Client, prefix string, n int) map[string]string {
	t.Helper()
	if mounts, _ := c.Sys().ListMounts(); mounts["secret/"] == nil {
		if err := c.Sys().Mount("secret", &api.MountInput{Type: "kv-v2"}); err != nil {
			t.Fatal(err)
		}
	}
	out := map[string]string{}
	for i := range n {
		p := prefix + "/" + string(rune('a'+i))
		v := "value-of-" + p
		if _, err := c.KVv2("secret").Put(context.Background(), p, map[string]any{"v": v}); err != nil {
			t.Fatal(err)
		}
		out[p] = v
	}
	return out
}

func checkSecrets(t *testing.T, c *api.Client, want map[string]string) {
	t.Helper()
	for p, v := range want {
		got, err := c.KVv2("secret").Get(context.Background(), p)
		if err != nil || got.Data["v"] != v {
			t.Fatalf("secret %s: %v %v", p, got, err)
		}
	}
}

// TestHSMSealInitRecoveryKeysAutoUnseal: init with the PKCS#11 seal returns
// recovery keys; a restart unseals with no operator action; data is
// intact; after sys/seal the recovery keys unseal.
func TestHSMSealInitRecoveryKeysAutoUnseal(t *testing.T) {
	h := newHSMToken(t)
	dir := t.TempDir()
	ts := startSealServer(t, dir, h.stanza(false))
	anon := ts.client("")
	st, err := anon.Sys().SealStatus()
	if err != nil || st.Initialized || st.Type != "pkcs11" || !st.RecoverySeal {
		t.Fatalf("before init: %+v %v", st, err)
	}
	init, err := anon.Sys().Init(&api.InitRequest{RecoveryShares: 5, RecoveryThreshold: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(init.RecoveryKeys) != 5 || len(init.RecoveryKeysB64) != 5 || len(init.Keys) != 0 || init.RootToken == "" {
		t.Fatalf("init: %d recovery keys, %d unseal keys", len(init.RecoveryKeys), len(init.Keys))
	}
	st, err = anon.Sys().SealStatus()
	if err != nil || st.Sealed || !st.Initialized || st.T != 3 || st.N != 5 || st.Type != "pkcs11" || !st.RecoverySeal {
		t.Fatalf("after init (auto-unsealed): %+v %v", st, err)
	}
	root := ts.client(init.RootToken)
	want := writeSecrets(t, root, "app", 3)
	ts.stop()

	// No plaintext on disk, and the keyring is wrapped by the HSM.
	for _, v := range want {
		if f := grepDir(t, dir, []byte(v)); f != "" {
			t.Fatalf("plaintext on disk in %s", f)
		}
	}
	disk := dumpStore(t, dir)
	for _, k := range []string{"barrier/keyring", "data/sys/token/salt"} {
		if rec := disk[k]; len(rec) == 0 || rec[0] != 2 {
			t.Fatalf("%s is not seal-wrapped", k)
		}
	}

	// Restart: unsealed by the HSM, no operator action.
	ts = startSealServer(t, dir, h.stanza(false))
	if st, err := ts.client("").Sys().SealStatus(); err != nil || st.Sealed {
		t.Fatalf("after restart: %+v %v", st, err)
	}
	root = ts.client(init.RootToken)
	checkSecrets(t, root, want)

	// After sys/seal, it stays sealed until the recovery keys are given.
	if err := root.Sys().Seal(); err != nil {
		t.Fatal(err)
	}
	anon = ts.client("")
	for i, k := range init.RecoveryKeys[1:4] {
		st, err := anon.Sys().Unseal(k)
		if err != nil || st.Sealed != (i < 2) {
			t.Fatalf("recovery unseal %d: %+v %v", i, st, err)
		}
	}
	checkSecrets(t, root, want)
	if _, err := anon.Sys().Init(&api.InitRequest{RecoveryShares: 1, RecoveryThreshold: 1}); statusOf(t, err) != 400 {
		t.Fatalf("second init: %v", err)
	}
}

// TestHSMSealFailuresStaySealed: a wrong PIN or a deleted HSM key keeps
// the server sealed with an error naming the cause; storage is unchanged.
func TestHSMSealFailuresStaySealed(t *testing.T) {
	h := newHSMToken(t)
	dir := t.TempDir()
	ts := startSealServer(t, dir, h.stanza(false))
	init, err := ts.client("").Sys().Init(&api.InitRequest{RecoveryShares: 3, RecoveryThreshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	want := writeSecrets(t, ts.client(init.RootToken), "app", 2)
	ts.stop()
	before := dumpStore(t, dir)

	wrongPIN := h.stanza(false)
	wrongPIN.PKCS11.PIN = "0000-not-the-pin"
	ts = startSealServer(t, dir, wrongPIN)
	anon := ts.client("")
	if st, err := anon.Sys().SealStatus(); err != nil || !st.Sealed || !st.Initialized {
		t.Fatalf("wrong PIN: %+v %v", st, err)
	}
	logs := ts.logs.String()
	if !strings.Contains(logs, "auto-unseal failed") || !strings.Contains(logs, "CKR_PIN_INCORRECT") || !strings.Contains(logs, "login") {
		t.Fatalf("logs do not name the cause:\n%s", logs)
	}
	// Recovery keys need the HSM too: the error names the cause.
	if _, err := anon.Sys().Unseal(init.RecoveryKeys[0]); err != nil {
		t.Fatal(err)
	}
	_, err = anon.Sys().Unseal(init.RecoveryKeys[1])
	if err == nil || !strings.Contains(err.Error(), "CKR_PIN_INCORRECT") {
		t.Fatalf("recovery unseal with a wrong PIN: %v", err)
	}
	if _, err := ts.client(init.RootToken).KVv2("secret").Get(context.Background(), "app/a"); statusOf(t, err) != 503 {
		t.Fatalf("read while sealed: %v", err)
	}
	for _, secret := range []string{h.pin, wrongPIN.PKCS11.PIN} {
		if strings.Contains(ts.logs.String(), secret) {
			t.Fatal("a PIN is in the logs")
		}
	}
	ts.stop()

	h.hsm.DeleteKey(t, h.label, h.pin, "ward-root")
	ts = startSealServer(t, dir, h.stanza(false)) // generate_key must not recreate it
	if st, err := ts.client("").Sys().SealStatus(); err != nil || !st.Sealed {
		t.Fatalf("key deleted: %+v %v", st, err)
	}
	if logs := ts.logs.String(); !strings.Contains(logs, `no aes-gcm key labelled \"ward-root\"`) {
		t.Fatalf("logs do not name the missing key:\n%s", logs)
	}
	ts.stop()

	if after := dumpStore(t, dir); !maps.EqualFunc(before, after, bytes.Equal) {
		t.Fatal("a failed auto-unseal changed storage")
	}
	_ = want
}

// TestSealMigrationShamirHSMShamir migrates Shamir → PKCS#11 → Shamir with
// the `unseal -migrate` flow; every secret stays readable.
func TestSealMigrationShamirHSMShamir(t *testing.T) {
	h := newHSMToken(t)
	dir := t.TempDir()
	ts := startSealServer(t, dir)
	keys, rootToken := ts.initUnseal(5, 3)
	root := ts.client(rootToken)
	want := writeSecrets(t, root, "before", 3)
	child, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	ts.stop()

	// Adding the seal stanza makes a migration pending.
	ts = startSealServer(t, dir, h.stanza(false))
	anon := ts.client("")
	st, err := anon.Sys().SealStatus()
	if err != nil || !st.Sealed || !st.Migration || st.Type != "shamir" || st.T != 3 {
		t.Fatalf("pending migration: %+v %v", st, err)
	}
	if _, err := anon.Sys().Unseal(keys[0]); statusOf(t, err) != 400 || !strings.Contains(err.Error(), "migrate") {
		t.Fatalf("unseal without -migrate: %v", err)
	}
	for i, k := range keys[2:5] {
		st, err := anon.Sys().UnsealWithOptions(&api.UnsealOpts{Key: k, Migrate: true})
		if err != nil || st.Sealed != (i < 2) {
			t.Fatalf("migrate %d: %+v %v", i, st, err)
		}
	}
	st, _ = anon.Sys().SealStatus()
	if st.Migration || st.Type != "pkcs11" || !st.RecoverySeal || st.T != 3 || st.N != 5 {
		t.Fatalf("after migration: %+v", st)
	}
	root = ts.client(rootToken)
	checkSecrets(t, root, want)
	want2 := writeSecrets(t, root, "during", 2)
	maps.Copy(want, want2)
	ts.stop()

	// Restart: auto-unsealed by the HSM.
	ts = startSealServer(t, dir, h.stanza(false))
	if st, err := ts.client("").Sys().SealStatus(); err != nil || st.Sealed {
		t.Fatalf("restart on the HSM: %+v %v", st, err)
	}
	checkSecrets(t, ts.client(rootToken), want)
	ts.stop()

	// Dropping the stanza instead of disabling it: refused, naming both.
	ts = startSealServer(t, dir)
	if _, err := ts.client("").Sys().Unseal(keys[0]); statusOf(t, err) != 400 ||
		!strings.Contains(err.Error(), `sealed by pkcs11, the configuration has shamir`) || !strings.Contains(err.Error(), `disabled = "true"`) {
		t.Fatalf("unseal with the seal stanza removed: %v", err)
	}
	ts.stop()

	// Back to Shamir: the stanza stays, disabled; the recovery keys (the
	// old unseal keys) migrate.
	ts = startSealServer(t, dir, h.stanza(true))
	anon = ts.client("")
	st, err = anon.Sys().SealStatus()
	if err != nil || !st.Sealed || !st.Migration || st.Type != "pkcs11" {
		t.Fatalf("pending migration back: %+v %v", st, err)
	}
	for i, k := range []string{keys[0], keys[4], keys[1]} {
		st, err := anon.Sys().UnsealWithOptions(&api.UnsealOpts{Key: k, Migrate: true})
		if err != nil || st.Sealed != (i < 2) {
			t.Fatalf("migrate back %d: %+v %v", i, st, err)
		}
	}
	checkSecrets(t, ts.client(rootToken), want)
	ts.stop()

	// Plain Shamir, no HSM: the same unseal keys, every secret, the token.
	ts = startSealServer(t, dir)
	anon = ts.client("")
	for _, k := range keys[:3] {
		if _, err := anon.Sys().Unseal(k); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := anon.Sys().SealStatus(); st.Sealed || st.Type != "shamir" || st.RecoverySeal {
		t.Fatalf("back on Shamir: %+v", st)
	}
	checkSecrets(t, ts.client(rootToken), want)
	if _, err := ts.client(child.Auth.ClientToken).Auth().Token().LookupSelf(); err != nil {
		t.Fatalf("token after two migrations: %v", err)
	}
	if kr := dumpStoreWhileRunning(t, ts); kr != 1 {
		t.Fatalf("keyring still seal-wrapped after migrating to Shamir (version %d)", kr)
	}
}

// dumpStoreWhileRunning returns the keyring record's version byte.
func dumpStoreWhileRunning(t *testing.T, ts *testServer) byte {
	raw, err := ts.srv.store.Get(context.Background(), "barrier/keyring")
	if err != nil || len(raw) == 0 {
		t.Fatal(err)
	}
	return raw[0]
}

// termsInUse counts the records of a stopped server's storage by key term.
func termsInUse(t *testing.T, dir string) map[uint32]int {
	out := map[uint32]int{}
	for k, v := range dumpStore(t, dir) {
		if strings.HasPrefix(k, "data/") && len(v) > 5 {
			out[binary.BigEndian.Uint32(v[1:5])]++
		}
	}
	return out
}

// TestRotateReencryptRekey: three rotations with writes in between keep
// everything readable; re-encryption leaves no entry on the oldest term; a
// rekey to 5/3 unseals with three new shares.
func TestRotateReencryptRekey(t *testing.T) {
	dir := t.TempDir()
	ts := startSealServer(t, dir)
	keys, rootToken := ts.initUnseal(3, 2)
	root := ts.client(rootToken)
	want := writeSecrets(t, root, "t1", 3)
	ks, err := root.Sys().KeyStatus()
	if err != nil || ks.Term != 1 || ks.InstallTime.IsZero() || ks.Encryptions == 0 {
		t.Fatalf("key status: %+v %v", ks, err)
	}
	for term := 2; term <= 4; term++ {
		if err := root.Sys().Rotate(); err != nil {
			t.Fatal(err)
		}
		maps.Copy(want, writeSecrets(t, root, "t"+string(rune('0'+term)), 2))
		checkSecrets(t, root, want)
		if ks, err := root.Sys().KeyStatus(); err != nil || ks.Term != term {
			t.Fatalf("after rotation %d: %+v %v", term, ks, err)
		}
	}
	// Rotation needs sudo.
	tok, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.client(tok.Auth.ClientToken).Sys().Rotate(); statusOf(t, err) != 403 {
		t.Fatalf("rotate without sudo: %v", err)
	}

	// Re-encrypt in the background and wait for it.
	if _, err := root.Logical().Write("sys/rotate/reencrypt", nil); err != nil {
		t.Fatal(err)
	}
	var status *api.Secret
	for deadline := time.Now().Add(30 * time.Second); ; {
		if status, err = root.Logical().Read("sys/rotate/reencrypt"); err != nil {
			t.Fatal(err)
		}
		if status.Data["running"] == false {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("re-encryption did not finish")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if status.Data["error"] != "" || status.Data["oldest_term"] != jsonNumber(4) || status.Data["rewritten"] == jsonNumber(0) {
		t.Fatalf("re-encryption status: %v", status.Data)
	}
	checkSecrets(t, root, want)

	// Rekey to 5 shares, 3 needed, through the OpenBao client.
	rs, err := root.Sys().RekeyInit(&api.RekeyInitRequest{SecretShares: 5, SecretThreshold: 3})
	if err != nil || !rs.Started || rs.N != 5 || rs.T != 3 || rs.Required != 2 || rs.Nonce == "" {
		t.Fatalf("rekey init: %+v %v", rs, err)
	}
	if _, err := root.Sys().RekeyUpdate(keys[0], "wrong-nonce"); statusOf(t, err) != 400 {
		t.Fatalf("wrong nonce: %v", err)
	}
	ru, err := root.Sys().RekeyUpdate(keys[0], rs.Nonce)
	if err != nil || ru.Complete {
		t.Fatalf("rekey update 1: %+v %v", ru, err)
	}
	ru, err = root.Sys().RekeyUpdate(keys[2], rs.Nonce)
	if err != nil || !ru.Complete || len(ru.Keys) != 5 || len(ru.KeysB64) != 5 {
		t.Fatalf("rekey update 2: %+v %v", ru, err)
	}
	newKeys := ru.Keys
	if err := root.Sys().Seal(); err != nil {
		t.Fatal(err)
	}
	anon := ts.client("")
	if st, _ := anon.Sys().SealStatus(); st.T != 3 || st.N != 5 {
		t.Fatalf("seal status after rekey: %+v", st)
	}
	// The old keys no longer unseal.
	for _, k := range keys[:2] {
		_, err = anon.Sys().Unseal(k)
	}
	if err == nil {
		if _, err = anon.Sys().Unseal(keys[2]); err == nil {
			t.Fatal("old keys unsealed after the rekey")
		}
	}
	anon.Sys().ResetUnsealProcess()
	for i, k := range []string{newKeys[4], newKeys[1], newKeys[3]} {
		st, err := anon.Sys().Unseal(k)
		if err != nil || st.Sealed != (i < 2) {
			t.Fatalf("unseal with new share %d: %+v %v", i, st, err)
		}
	}
	checkSecrets(t, root, want)
	ts.stop()

	// On disk: nothing left on the oldest terms.
	terms := termsInUse(t, dir)
	if terms[1] != 0 || terms[2] != 0 || terms[3] != 0 || terms[4] == 0 {
		t.Fatalf("records per term after re-encryption: %v", terms)
	}
}

func jsonNumber(n int) any { return json.Number(strconv.Itoa(n)) }

// TestGenerateRootOTP generates a root token with the recovery keys of an
// HSM-sealed server and the OTP flow of the OpenBao client, and decodes it
// as `bao operator generate-root -decode` does.
func TestGenerateRootOTP(t *testing.T) {
	h := newHSMToken(t)
	ts := startSealServer(t, t.TempDir(), h.stanza(false))
	init, err := ts.client("").Sys().Init(&api.InitRequest{RecoveryShares: 3, RecoveryThreshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	// Unauthenticated, as in Vault.
	anon := ts.client("")
	st, err := anon.Sys().GenerateRootStatus()
	if err != nil || st.Started || st.Required != 2 || st.OTPLength != 26 {
		t.Fatalf("status: %+v %v", st, err)
	}
	st, err = anon.Sys().GenerateRootInit("", "")
	if err != nil || !st.Started || st.OTP == "" || len(st.OTP) != st.OTPLength || st.Nonce == "" {
		t.Fatalf("init: %+v %v", st, err)
	}
	otp, nonce := st.OTP, st.Nonce
	if _, err := anon.Sys().GenerateRootInit("", ""); statusOf(t, err) != 400 {
		t.Fatalf("second init: %v", err)
	}
	st, err = anon.Sys().GenerateRootUpdate(init.RecoveryKeys[2], nonce)
	if err != nil || st.Progress != 1 || st.Complete {
		t.Fatalf("update 1: %+v %v", st, err)
	}
	st, err = anon.Sys().GenerateRootUpdate(init.RecoveryKeys[0], nonce)
	if err != nil || !st.Complete || st.EncodedToken == "" || st.EncodedToken != st.EncodedRootToken {
		t.Fatalf("update 2: %+v %v", st, err)
	}
	// openbao/sdk helper/roottoken.DecodeToken with otp_length > 0.
	raw, err := base64.RawStdEncoding.DecodeString(st.EncodedToken)
	if err != nil {
		t.Fatal(err)
	}
	tokBytes, err := xor.XORBytes(raw, []byte(otp))
	if err != nil {
		t.Fatal(err)
	}
	newRoot := ts.client(string(tokBytes))
	self, err := newRoot.Auth().Token().LookupSelf()
	if err != nil {
		t.Fatalf("generated token: %v", err)
	}
	if pol, _ := self.TokenPolicies(); len(pol) != 1 || pol[0] != "root" {
		t.Fatalf("generated token policies: %v", pol)
	}
	if err := newRoot.Sys().Mount("kv", &api.MountInput{Type: "kv-v2"}); err != nil {
		t.Fatalf("root token cannot mount: %v", err)
	}

	// Vault's path and top-level shape, with a caller-chosen OTP; wrong
	// shares reset the progress; cancel works.
	r := anon.NewRequest("PUT", "/v1/sys/generate-root/attempt")
	r.SetJSONBody(map[string]any{"otp": strings.Repeat("a", 26)})
	resp, err := anon.RawRequest(r)
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]any
	if err := resp.DecodeJSON(&top); err != nil || top["started"] != true || top["nonce"] == "" || top["otp"] != "" {
		t.Fatalf("Vault-style attempt: %v %v", top, err)
	}
	nonce = top["nonce"].(string)
	if _, err := anon.Sys().GenerateRootUpdate(init.RecoveryKeys[1], nonce); err != nil {
		t.Fatal(err)
	}
	if _, err := anon.Sys().GenerateRootUpdate(string(flipHex(init.RecoveryKeys[2])), nonce); statusOf(t, err) != 400 {
		t.Fatalf("wrong share: %v", err)
	}
	if err := anon.Sys().GenerateRootCancel(); err != nil {
		t.Fatal(err)
	}
	if st, _ := anon.Sys().GenerateRootStatus(); st.Started {
		t.Fatal("cancel did not end the attempt")
	}
}

// flipHex changes one hex digit of a share.
func flipHex(s string) []byte {
	b := []byte(s)
	if b[4] == '0' {
		b[4] = '1'
	} else {
		b[4] = '0'
	}
	return b
}

// TestHSMRecoveryRekeyAndRootRotation rekeys the recovery keys of an
// HSM-sealed server through OpenBao's sys/rotate/recovery endpoints and
// rotates its root key; restarts still auto-unseal.
func TestHSMRecoveryRekeyAndRootRotation(t *testing.T) {
	h := newHSMToken(t)
	dir := t.TempDir()
	ts := startSealServer(t, dir, h.stanza(false))
	init, err := ts.client("").Sys().Init(&api.InitRequest{RecoveryShares: 3, RecoveryThreshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	root := ts.client(init.RootToken)
	want := writeSecrets(t, root, "app", 2)

	// Unseal keys do not exist: a barrier rekey must be 1/1.
	if _, err := root.Sys().RekeyInit(&api.RekeyInitRequest{SecretShares: 3, SecretThreshold: 2}); statusOf(t, err) != 400 {
		t.Fatalf("barrier rekey 3/2 on an HSM seal: %v", err)
	}
	st, err := root.Sys().RotateRecoveryInit(&api.RotateInitRequest{SecretShares: 5, SecretThreshold: 3})
	if err != nil || st == nil || !st.Started || st.Required != 2 || st.N != 5 {
		t.Fatalf("recovery rekey init: %+v %v", st, err)
	}
	if _, err := root.Sys().RotateRecoveryUpdate(init.RecoveryKeys[1], st.Nonce); err != nil {
		t.Fatal(err)
	}
	up, err := root.Sys().RotateRecoveryUpdate(init.RecoveryKeys[2], st.Nonce)
	if err != nil || up == nil || !up.Complete || len(up.Keys) != 5 {
		t.Fatalf("recovery rekey: %+v %v", up, err)
	}
	// The root key rotates with no shares (sudo).
	if err := root.Sys().RotateRoot(); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().Seal(); err != nil {
		t.Fatal(err)
	}
	anon := ts.client("")
	for i, k := range []string{up.Keys[0], up.Keys[3], up.Keys[4]} {
		if st, err := anon.Sys().Unseal(k); err != nil || st.Sealed != (i < 2) {
			t.Fatalf("new recovery key %d: %+v %v", i, st, err)
		}
	}
	checkSecrets(t, root, want)
	ts.stop()
	ts = startSealServer(t, dir, h.stanza(false))
	if st, _ := ts.client("").Sys().SealStatus(); st.Sealed || st.N != 5 || st.T != 3 {
		t.Fatalf("restart after rekeys: %+v", st)
	}
	checkSecrets(t, ts.client(init.RootToken), want)
}
