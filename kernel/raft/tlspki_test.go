package raft

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// testPKI is a cluster CA for tests.
type testPKI struct {
	clusterID     string
	caCert, caKey []byte
}

func newTestPKI(t testing.TB, clusterID string) *testPKI {
	t.Helper()
	cert, key, err := NewClusterCA(clusterID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &testPKI{clusterID: clusterID, caCert: cert, caKey: key}
}

func (p *testPKI) node(t testing.TB, id uint64) *ClusterTLS {
	t.Helper()
	cert, key, err := IssueNodeCert(p.caCert, p.caKey, NodeCertRequest{NodeID: id, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := LoadClusterTLS(p.caCert, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func parsePEMCert(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("no PEM block")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClusterPKI(t *testing.T) {
	pki := newTestPKI(t, "0b5c9b0e-1f55-4c3e-9a6e-3d1f1b2c4d5e")
	ca := parsePEMCert(t, pki.caCert)
	if !ca.IsCA || ca.MaxPathLen != 0 || !ca.MaxPathLenZero {
		t.Fatalf("CA constraints: IsCA %v MaxPathLen %d", ca.IsCA, ca.MaxPathLen)
	}

	cert, key, err := IssueNodeCert(pki.caCert, pki.caKey, NodeCertRequest{
		NodeID: 0xabc, DNSNames: []string{"ward-1.example.com"}, IPs: []net.IP{net.ParseIP("10.0.0.1")},
		ValidFor: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	leaf := parsePEMCert(t, cert)
	if cid, id, err := PeerIdentity(leaf); err != nil || cid != pki.clusterID || id != 0xabc {
		t.Fatalf("PeerIdentity = %q, %x, %v", cid, id, err)
	}
	if leaf.DNSNames[0] != "ward-1.example.com" || !leaf.IPAddresses[0].Equal(net.ParseIP("10.0.0.1")) {
		t.Fatalf("SANs: %v %v", leaf.DNSNames, leaf.IPAddresses)
	}
	if d := time.Until(leaf.NotAfter); d > time.Minute || d < 30*time.Second {
		t.Fatalf("NotAfter in %v, want about a minute", d)
	}
	c, err := LoadClusterTLS(pki.caCert, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	if c.NodeID() != 0xabc || c.ClusterID() != pki.clusterID {
		t.Fatalf("loaded %v", c)
	}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c)} {
		if strings.Contains(s, "PRIVATE") || len(s) > 100 {
			t.Fatalf("ClusterTLS prints %q", s)
		}
	}
	// Default lifetime: as long as the CA.
	cert2, _, err := IssueNodeCert(pki.caCert, pki.caKey, NodeCertRequest{NodeID: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := parsePEMCert(t, cert2).NotAfter; !got.Equal(ca.NotAfter) {
		t.Fatalf("default NotAfter %v, CA's %v", got, ca.NotAfter)
	}

	// A node keeps its key: only the public key is certified.
	nodeKey, pub, err := NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	cert3, noKey, err := IssueNodeCert(pki.caCert, pki.caKey, NodeCertRequest{NodeID: 3, PublicKeyPEM: pub})
	if err != nil || noKey != nil {
		t.Fatalf("issue for a public key: key %q, %v", noKey, err)
	}
	if _, err := LoadClusterTLS(pki.caCert, cert3, nodeKey); err != nil {
		t.Fatal(err)
	}

	other := newTestPKI(t, pki.clusterID) // same cluster name, another CA
	otherCluster := newTestPKI(t, "other")
	foreignCert, foreignKey, _ := IssueNodeCert(other.caCert, other.caKey, NodeCertRequest{NodeID: 4})
	bad := []struct {
		name string
		err  error
	}{
		{"node ID 0", func() error { _, _, err := IssueNodeCert(pki.caCert, pki.caKey, NodeCertRequest{}); return err }()},
		{"CA key of another CA", func() error {
			_, _, err := IssueNodeCert(pki.caCert, other.caKey, NodeCertRequest{NodeID: 5})
			return err
		}()},
		{"node cert as CA", func() error { _, _, err := IssueNodeCert(cert, key, NodeCertRequest{NodeID: 5}); return err }()},
		{"cluster ID with a slash", func() error { _, _, err := NewClusterCA("a/b", 0); return err }()},
		{"empty cluster ID", func() error { _, _, err := NewClusterCA("", 0); return err }()},
		{"cert of another CA", func() error { _, err := LoadClusterTLS(pki.caCert, foreignCert, foreignKey); return err }()},
		{"key of another cert", func() error { _, err := LoadClusterTLS(pki.caCert, cert, foreignKey); return err }()},
		{"CA of another cluster", func() error { _, err := LoadClusterTLS(otherCluster.caCert, cert, key); return err }()},
		{"garbage", func() error { _, err := LoadClusterTLS([]byte("x"), cert, key); return err }()},
	}
	for _, b := range bad {
		if !errors.Is(b.err, ErrCertificate) {
			t.Errorf("%s: err = %v, want ErrCertificate", b.name, b.err)
		}
	}
	if _, _, err := PeerIdentity(ca); !errors.Is(err, ErrCertificate) {
		t.Errorf("PeerIdentity(CA) = %v", err)
	}
}
