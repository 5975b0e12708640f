package raft

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"strconv"
	"time"
)

// Cluster PKI: every cluster has its own certificate authority, and every
// node a certificate issued by it that names the node by its raft ID. Keys
// are ECDSA P-256; everything is plain PEM, so the CA can be created by
// init and kept in the barrier, and a node certificate issued by the leader
// to a node that joins.
//
// Identity lives in one URI SAN:
//
//	CA:    ward-raft://<cluster ID>
//	node:  ward-raft://<cluster ID>/node/<raft ID, 16 hex digits>
//
// A transport trusts only the cluster CA (never the system roots) and
// checks that a peer's certificate names its own cluster and the node ID
// the peer claims. DNS names and IP addresses in a node certificate are
// for other clients (and operators); the transport does not check them:
// a node is authenticated by its ID, and addresses are only where to find
// it.

// ErrCertificate is returned by IssueNodeCert, LoadClusterTLS and
// PeerIdentity for PEM or certificates that are not a Ward cluster CA or
// node certificate of the expected shape.
var ErrCertificate = errors.New("raft: not a valid cluster certificate")

const (
	identityScheme = "ward-raft"
	// alpnProto is the TLS application protocol of the cluster transport,
	// so the cluster port may later carry other protocols beside it.
	alpnProto = "ward-raft"

	defaultCAValidity = 10 * 365 * 24 * time.Hour
	// clockSkew backdates certificates, so a node whose clock is behind the
	// issuer's accepts them at once.
	clockSkew = 5 * time.Minute
)

// NewClusterCA creates the certificate authority of cluster clusterID (1 to
// 64 letters, digits, '-', '.', '_'; e.g. the cluster's UUID): a
// self-signed ECDSA P-256 certificate valid for validFor (0: ten years)
// that may sign node certificates only. It returns the certificate and its
// PKCS #8 private key, PEM-encoded.
func NewClusterCA(clusterID string, validFor time.Duration) (certPEM, keyPEM []byte, err error) {
	if err := checkClusterID(clusterID); err != nil {
		return nil, nil, err
	}
	if validFor <= 0 {
		validFor = defaultCAValidity
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "Ward cluster CA " + clusterID},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validFor),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		URIs:                  []*url.URL{{Scheme: identityScheme, Host: clusterID}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// NodeCertRequest describes the node certificate IssueNodeCert signs.
type NodeCertRequest struct {
	// NodeID is the node's raft ID (not zero).
	NodeID uint64
	// DNSNames and IPs are where clients other than the transport may
	// check they reached this node (optional).
	DNSNames []string
	IPs      []net.IP
	// ValidFor is the certificate's lifetime; 0, or longer than the CA has
	// left, means until the CA expires.
	ValidFor time.Duration
	// PublicKeyPEM, when set, is the node's own public key (PKIX, "PUBLIC
	// KEY"; from NewNodeKey), so its private key never leaves the node.
	// Empty means IssueNodeCert generates the key pair.
	PublicKeyPEM []byte
}

// NewNodeKey generates a node's ECDSA P-256 key pair: the PKCS #8 private
// key and the PKIX public key, PEM-encoded. A joining node keeps keyPEM and
// sends publicKeyPEM to be certified (NodeCertRequest.PublicKeyPEM).
func NewNodeKey() (keyPEM, publicKeyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	return keyPEM, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// IssueNodeCert signs a certificate for node req.NodeID with the cluster
// CA (both PEM, from NewClusterCA), usable as both TLS server and client.
// It returns the certificate and, unless req.PublicKeyPEM was given, the
// node's new private key (nil otherwise).
func IssueNodeCert(caCertPEM, caKeyPEM []byte, req NodeCertRequest) (certPEM, keyPEM []byte, err error) {
	if req.NodeID == 0 {
		return nil, nil, fmt.Errorf("%w: node ID 0", ErrCertificate)
	}
	ca, clusterID, err := parseCA(caCertPEM)
	if err != nil {
		return nil, nil, err
	}
	caKey, err := parseKey(caKeyPEM)
	if err != nil {
		return nil, nil, err
	}
	if !publicKeyEqual(caKey.Public(), ca.PublicKey) {
		return nil, nil, fmt.Errorf("%w: CA key does not match the CA certificate", ErrCertificate)
	}
	var pub crypto.PublicKey
	if len(req.PublicKeyPEM) > 0 {
		b, _ := pem.Decode(req.PublicKeyPEM)
		if b == nil || b.Type != "PUBLIC KEY" {
			return nil, nil, fmt.Errorf("%w: PublicKeyPEM holds no PUBLIC KEY block", ErrCertificate)
		}
		if pub, err = x509.ParsePKIXPublicKey(b.Bytes); err != nil {
			return nil, nil, fmt.Errorf("%w: public key: %v", ErrCertificate, err)
		}
		if k, ok := pub.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
			return nil, nil, fmt.Errorf("%w: node key must be ECDSA P-256", ErrCertificate)
		}
	} else {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		if keyPEM, err = encodeKey(key); err != nil {
			return nil, nil, err
		}
		pub = &key.PublicKey
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	notAfter := ca.NotAfter
	if req.ValidFor > 0 && now.Add(req.ValidFor).Before(notAfter) {
		notAfter = now.Add(req.ValidFor)
	}
	if !notAfter.After(now) {
		return nil, nil, fmt.Errorf("%w: the CA has expired", ErrCertificate)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: fmt.Sprintf("Ward raft node %016x", req.NodeID)},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     req.DNSNames,
		IPAddresses:  req.IPs,
		URIs:         []*url.URL{nodeURI(clusterID, req.NodeID)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// PeerIdentity returns the cluster and node a node certificate names. It
// does not verify the certificate's signature: a TLS handshake with a
// ClusterTLS configuration does.
func PeerIdentity(cert *x509.Certificate) (clusterID string, nodeID uint64, err error) {
	var found *url.URL
	for _, u := range cert.URIs {
		if u.Scheme != identityScheme {
			continue
		}
		if found != nil {
			return "", 0, fmt.Errorf("%w: more than one %s URI", ErrCertificate, identityScheme)
		}
		found = u
	}
	if found == nil {
		return "", 0, fmt.Errorf("%w: no %s URI", ErrCertificate, identityScheme)
	}
	const prefix = "/node/"
	p := found.Path
	if len(p) != len(prefix)+16 || p[:len(prefix)] != prefix || checkClusterID(found.Host) != nil ||
		found.User != nil || found.RawQuery != "" || found.Fragment != "" {
		return "", 0, fmt.Errorf("%w: %s URI is not a node identity", ErrCertificate, identityScheme)
	}
	id, err := strconv.ParseUint(p[len(prefix):], 16, 64)
	if err != nil || id == 0 {
		return "", 0, fmt.Errorf("%w: bad node ID in %s URI", ErrCertificate, identityScheme)
	}
	return found.Host, id, nil
}

// ClusterTLS is a node's TLS identity in its cluster: its certificate and
// key, and the cluster CA it trusts. It never prints its key.
type ClusterTLS struct {
	clusterID string
	nodeID    uint64
	cert      tls.Certificate
	roots     *x509.CertPool
}

// LoadClusterTLS checks and loads a node's PEM material: the cluster CA
// certificate, and the node certificate (issued by that CA) with its key.
func LoadClusterTLS(caCertPEM, certPEM, keyPEM []byte) (*ClusterTLS, error) {
	ca, clusterID, err := parseCA(caCertPEM)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCertificate, err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCertificate, err)
		}
		cert.Leaf = leaf
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:     roots,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return nil, fmt.Errorf("%w: node certificate: %v", ErrCertificate, err)
	}
	cid, nodeID, err := PeerIdentity(leaf)
	if err != nil {
		return nil, err
	}
	if cid != clusterID {
		return nil, fmt.Errorf("%w: node certificate names cluster %q, the CA %q", ErrCertificate, cid, clusterID)
	}
	return &ClusterTLS{clusterID: clusterID, nodeID: nodeID, cert: cert, roots: roots}, nil
}

// ClusterID returns the cluster named by the CA and the node certificate.
func (c *ClusterTLS) ClusterID() string { return c.clusterID }

// NodeID returns the raft ID the node certificate names.
func (c *ClusterTLS) NodeID() uint64 { return c.nodeID }

// NotAfter returns when the node certificate expires.
func (c *ClusterTLS) NotAfter() time.Time { return c.cert.Leaf.NotAfter }

// String names the identity; it never prints the key.
func (c *ClusterTLS) String() string {
	return fmt.Sprintf("ClusterTLS{cluster %s, node %016x}", c.clusterID, c.nodeID)
}

// GoString is String, so %#v does not print the key either.
func (c *ClusterTLS) GoString() string { return c.String() }

// ServerConfig returns the configuration of the cluster port: TLS 1.3
// only, a client certificate issued by the cluster CA required, naming
// this cluster. Which node the client is comes from PeerIdentity of
// ConnectionState().PeerCertificates[0].
func (c *ClusterTLS) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{c.cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    c.roots,
		NextProtos:   []string{alpnProto},
		VerifyConnection: func(cs tls.ConnectionState) error {
			// The chain to the CA was verified (RequireAndVerifyClientCert).
			_, err := c.checkIdentity(cs.PeerCertificates, 0)
			return err
		},
	}
}

// ClientConfig returns the configuration for dialing node peer: TLS 1.3
// only, this node's certificate presented, and the server's certificate
// required to chain to the cluster CA and name this cluster and node peer.
func (c *ClusterTLS) ClientConfig(peer uint64) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{c.cert},
		NextProtos:   []string{alpnProto},
		// The standard verification checks the chain and a host name; a
		// peer is named by its node ID instead, so VerifyConnection below
		// does the whole verification: the chain to the cluster CA (never
		// the system roots), then the identity.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("%w: peer presented no certificate", ErrCertificate)
			}
			inter := x509.NewCertPool()
			for _, ic := range cs.PeerCertificates[1:] {
				inter.AddCert(ic)
			}
			if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
				Roots:         c.roots,
				Intermediates: inter,
				KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			}); err != nil {
				return err
			}
			_, err := c.checkIdentity(cs.PeerCertificates, peer)
			return err
		},
	}
}

// checkIdentity checks that a verified peer certificate names this cluster
// and, unless want is 0, node want; it returns the node it names.
func (c *ClusterTLS) checkIdentity(chain []*x509.Certificate, want uint64) (uint64, error) {
	if len(chain) == 0 {
		return 0, fmt.Errorf("%w: peer presented no certificate", ErrCertificate)
	}
	cid, id, err := PeerIdentity(chain[0])
	if err != nil {
		return 0, err
	}
	if cid != c.clusterID {
		return 0, fmt.Errorf("%w: peer belongs to cluster %q, not %q", ErrCertificate, cid, c.clusterID)
	}
	if want != 0 && id != want {
		return 0, fmt.Errorf("%w: peer is node %016x, expected %016x", ErrCertificate, id, want)
	}
	return id, nil
}

func nodeURI(clusterID string, id uint64) *url.URL {
	return &url.URL{Scheme: identityScheme, Host: clusterID, Path: fmt.Sprintf("/node/%016x", id)}
}

func checkClusterID(id string) error {
	if len(id) == 0 || len(id) > 64 {
		return fmt.Errorf("%w: cluster ID must be 1 to 64 characters", ErrCertificate)
	}
	for _, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_'
		if !ok {
			return fmt.Errorf("%w: cluster ID may hold only letters, digits, '-', '.' and '_'", ErrCertificate)
		}
	}
	return nil
}

// parseCA parses a cluster CA certificate and returns the cluster it names.
func parseCA(certPEM []byte) (*x509.Certificate, string, error) {
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, "", fmt.Errorf("%w: no CERTIFICATE block in the CA PEM", ErrCertificate)
	}
	ca, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, "", fmt.Errorf("%w: CA: %v", ErrCertificate, err)
	}
	if !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, "", fmt.Errorf("%w: not a CA certificate", ErrCertificate)
	}
	for _, u := range ca.URIs {
		if u.Scheme == identityScheme && (u.Path == "" || u.Path == "/") && checkClusterID(u.Host) == nil {
			return ca, u.Host, nil
		}
	}
	return nil, "", fmt.Errorf("%w: CA names no cluster (%s URI)", ErrCertificate, identityScheme)
}

func parseKey(keyPEM []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(keyPEM)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%w: no PRIVATE KEY block", ErrCertificate)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: private key does not parse", ErrCertificate)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: private key cannot sign", ErrCertificate)
	}
	return s, nil
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	ad, err1 := x509.MarshalPKIXPublicKey(a)
	bd, err2 := x509.MarshalPKIXPublicKey(b)
	return err1 == nil && err2 == nil && bytes.Equal(ad, bd)
}

// randomSerial returns a random positive 128-bit serial number.
func randomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	return n.Add(n, big.NewInt(1)), nil
}
