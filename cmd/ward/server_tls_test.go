package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/openbao/openbao/api/v2"

	"github.com/wardproject/ward/kernel/config"
)

// writeSelfSigned writes a certificate for 127.0.0.1 and its key.
func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ward-test"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestTLSListener(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeSelfSigned(t, dir)
	cfg := &config.Config{
		Storage:   &config.Storage{Type: "pebble", Path: filepath.Join(dir, "data")},
		Listeners: []config.Listener{{Address: "127.0.0.1:0", TLSCertFile: certFile, TLSKeyFile: keyFile}},
		LogLevel:  "error",
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	srv, err := newServer(cfg, &syncBuffer{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close()
	addr := srv.addrs[0]
	if addr[:8] != "https://" {
		t.Fatalf("address %q is not https", addr)
	}

	// Trusting the certificate: the OpenBao client initializes the server.
	c := api.DefaultConfig()
	c.Address = addr
	if err := c.ConfigureTLS(&api.TLSConfig{CACert: certFile}); err != nil {
		t.Fatal(err)
	}
	client, err := api.NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := client.Sys().SealStatus(); err != nil || st.Initialized {
		t.Fatalf("seal-status over TLS: %+v %v", st, err)
	}

	// Not trusting it: the handshake fails, nothing is served in clear.
	c2 := api.DefaultConfig()
	c2.Address = addr
	c2.MaxRetries = 0
	untrusting, _ := api.NewClient(c2)
	if _, err := untrusting.Sys().SealStatus(); err == nil {
		t.Fatal("a client that does not trust the certificate got an answer")
	}
	plain := api.DefaultConfig()
	plain.Address = "http://" + addr[len("https://"):]
	plain.MaxRetries = 0
	pc, _ := api.NewClient(plain)
	if _, err := pc.Sys().SealStatus(); err == nil {
		t.Fatal("plain HTTP was answered on a TLS listener")
	}
}
