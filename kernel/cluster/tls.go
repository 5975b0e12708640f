package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/wardproject/ward/kernel"
	"github.com/wardproject/ward/kernel/raft"
	"github.com/wardproject/ward/sdk/logical"
)

// caEntry is where the active node keeps the cluster CA, in the barrier
// view the kernel hands to Activate (core/raft/).
const caEntry = "tls-ca"

// caLifetime is the cluster CA's lifetime; node certificates last as long.
const caLifetime = 10 * 365 * 24 * time.Hour

type caRecord struct {
	CertPEM []byte `json:"cert_pem"`
	KeyPEM  []byte `json:"key_pem"`
}

// tlsDir holds this node's certificate, key and the cluster CA's
// certificate.
func (n *Node) tlsDir() string { return filepath.Join(n.cfg.Dir, "tls") }

func (n *Node) tlsFiles() (ca, cert, key string) {
	d := n.tlsDir()
	return filepath.Join(d, "ca.pem"), filepath.Join(d, "node.pem"), filepath.Join(d, "node-key.pem")
}

// loadTLS installs the transport of a node that already has its
// certificate (a restart): raft traffic flows before the node is unsealed.
func (n *Node) loadTLS() error {
	caFile, certFile, keyFile := n.tlsFiles()
	caPEM, err := os.ReadFile(caFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return err
	}
	return n.installTLS(caPEM, certPEM, keyPEM)
}

// installTLS starts the TLS transport with this identity.
func (n *Node) installTLS(caPEM, certPEM, keyPEM []byte) error {
	if n.cfg.ListenAddr == "" {
		return errors.New("cluster: this node has certificates but no cluster address: set cluster_addr")
	}
	ct, err := raft.LoadClusterTLS(caPEM, certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("cluster: %s: %w", n.tlsDir(), err)
	}
	if ct.NodeID() != n.raft.ID() {
		return fmt.Errorf("cluster: the certificate in %s is for raft node %x, this node is %x", n.tlsDir(), ct.NodeID(), n.raft.ID())
	}
	tr, err := raft.NewTLSTransport(raft.TLSTransportConfig{TLS: ct, ListenAddr: n.cfg.ListenAddr})
	if err != nil {
		return err
	}
	if err := n.tr.Install(tr); err != nil {
		tr.Close()
		return err
	}
	n.mu.Lock()
	n.tls = tr
	n.mu.Unlock()
	n.log.Info("cluster: raft transport listening", "address", tr.Addr().String())
	select {
	case n.peersc <- struct{}{}:
	default:
	}
	return nil
}

// Activate implements kernel.Cluster: the node now leads and s is the
// barrier's view for the cluster. It records this node's addresses and,
// when the node has a cluster address but no certificate yet (the first
// node of a cluster), creates the cluster CA if there is none and
// certifies itself.
func (n *Node) Activate(ctx context.Context, s logical.Storage) error {
	n.mu.Lock()
	self := raft.Member{ID: n.raft.ID(), Name: n.cfg.Name, ClusterAddr: n.cfg.ClusterAddr, APIAddr: n.apiAddr}
	have := n.tls != nil
	n.mu.Unlock()
	if err := n.recordSelf(ctx, self); err != nil {
		return err
	}
	if have || n.cfg.ClusterAddr == "" {
		return nil
	}
	ca, err := loadOrCreateCA(ctx, s)
	if err != nil {
		return err
	}
	req := raft.NodeCertRequest{NodeID: self.ID}
	if host, _, err := net.SplitHostPort(n.cfg.ClusterAddr); err == nil {
		if ip := net.ParseIP(host); ip != nil {
			req.IPs = []net.IP{ip}
		} else {
			req.DNSNames = []string{host}
		}
	}
	certPEM, keyPEM, err := raft.IssueNodeCert(ca.CertPEM, ca.KeyPEM, req)
	if err != nil {
		return err
	}
	if err := n.writeTLS(ca.CertPEM, certPEM, keyPEM); err != nil {
		return err
	}
	return n.installTLS(ca.CertPEM, certPEM, keyPEM)
}

// recordSelf writes this node's member record when it is missing or old.
func (n *Node) recordSelf(ctx context.Context, self raft.Member) error {
	members, err := n.raft.LocalMembers()
	if err != nil {
		return err
	}
	for _, m := range members {
		if m == self {
			return nil
		}
	}
	return n.raft.SetMember(ctx, self)
}

func loadOrCreateCA(ctx context.Context, s logical.Storage) (*caRecord, error) {
	e, err := s.Get(ctx, caEntry)
	if err != nil {
		return nil, err
	}
	var ca caRecord
	if e != nil {
		if err := json.Unmarshal(e.Value, &ca); err != nil {
			return nil, fmt.Errorf("cluster: the stored CA: %w", err)
		}
		return &ca, nil
	}
	if ca.CertPEM, ca.KeyPEM, err = raft.NewClusterCA(uuid.NewString(), caLifetime); err != nil {
		return nil, err
	}
	v, err := json.Marshal(ca)
	if err != nil {
		return nil, err
	}
	if err := s.Put(ctx, &logical.StorageEntry{Key: caEntry, Value: v}); err != nil {
		return nil, err
	}
	return &ca, nil
}

// writeTLS stores this node's identity in its directory (0700, files 0600,
// each written to a temporary file and renamed).
func (n *Node) writeTLS(caPEM, certPEM, keyPEM []byte) error {
	if err := os.MkdirAll(n.tlsDir(), 0o700); err != nil {
		return err
	}
	caFile, certFile, keyFile := n.tlsFiles()
	for _, f := range []struct {
		path string
		data []byte
	}{{keyFile, keyPEM}, {certFile, certPEM}, {caFile, caPEM}} { // the CA last: loadTLS starts from it
		tmp := f.path + ".tmp"
		if err := os.WriteFile(tmp, f.data, 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, f.path); err != nil {
			return err
		}
	}
	return nil
}

// Admit implements kernel.Cluster: it certifies a node that answered its
// join challenge (the key pair is the node's own: only its public key came
// here), records it and adds it as a learner; the autopilot promotes it
// once it has caught up.
func (n *Node) Admit(ctx context.Context, req kernel.JoinRequest, s logical.Storage) (*kernel.JoinResult, error) {
	host, port, err := net.SplitHostPort(req.ClusterAddr)
	if err != nil || port == "" || port == "0" || host == "" {
		return nil, fmt.Errorf("cluster_addr %q: want host:port", req.ClusterAddr)
	}
	n.mu.Lock()
	listening := n.tls != nil
	n.mu.Unlock()
	if !listening {
		return nil, errors.New("this node has no cluster port (cluster_addr): it cannot take members")
	}
	members, err := n.raft.LocalMembers()
	if err != nil {
		return nil, err
	}
	// A raft ID is a node's identity on the wire: never hand out a
	// certificate for one in use. A retry of the same admission (same
	// name and ID, still a learner) is answered again.
	st := n.raft.Status()
	retry := false
	for _, m := range members {
		switch {
		case m.ID == req.RaftID && m.Name == req.Name && slices.Contains(st.Learners, m.ID):
			retry = true
		case m.ID == req.RaftID:
			return nil, fmt.Errorf("raft ID %d is already a member's", req.RaftID)
		case m.Name == req.Name:
			return nil, fmt.Errorf("a member is already named %q: remove it first (remove-peer)", req.Name)
		}
	}
	if !retry && (slices.Contains(st.Voters, req.RaftID) || slices.Contains(st.Learners, req.RaftID) || req.RaftID == st.ID) {
		return nil, fmt.Errorf("raft ID %d is already in the configuration", req.RaftID)
	}
	ca, err := loadOrCreateCA(ctx, s)
	if err != nil {
		return nil, err
	}
	cr := raft.NodeCertRequest{NodeID: req.RaftID, PublicKeyPEM: req.PublicKeyPEM}
	if ip := net.ParseIP(host); ip != nil {
		cr.IPs = []net.IP{ip}
	} else {
		cr.DNSNames = []string{host}
	}
	certPEM, _, err := raft.IssueNodeCert(ca.CertPEM, ca.KeyPEM, cr)
	if err != nil {
		return nil, err
	}
	// The record first: every node's transport learns the address before
	// raft starts sending to the new member.
	m := raft.Member{ID: req.RaftID, Name: req.Name, ClusterAddr: req.ClusterAddr, APIAddr: req.APIAddr}
	if err := n.raft.SetMember(ctx, m); err != nil {
		return nil, err
	}
	if !retry {
		if err := n.raft.AddLearner(ctx, req.RaftID); err != nil {
			// A refused change (a removed ID) never happened: forget the
			// record. After a timeout it may still apply: keep the record,
			// so the learner stays reachable; remove-peer clears both.
			if errors.Is(err, raft.ErrIDReused) {
				_ = n.raft.DeleteMember(ctx, req.RaftID)
			}
			return nil, err
		}
	}
	n.log.Info("cluster: node admitted as a learner", "node", req.Name, "raft_id", req.RaftID, "cluster_addr", req.ClusterAddr)
	if members, err = n.raft.LocalMembers(); err != nil {
		return nil, err
	}
	res := &kernel.JoinResult{CACertPEM: ca.CertPEM, CertPEM: certPEM}
	for _, m := range members {
		res.Members = append(res.Members, kernel.JoinMember{ID: m.ID, Name: m.Name, ClusterAddr: m.ClusterAddr, APIAddr: m.APIAddr})
	}
	return res, nil
}
