package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openbao/openbao/api/v2"

	"github.com/wardproject/ward/kernel"
	"github.com/wardproject/ward/kernel/raft"
)

// TestClusterEndpointsOneNode: a server on raft storage reports itself as
// the active node of a one-voter cluster through Vault's endpoints, as the
// OpenBao client reads them; one on pebble storage reports HA disabled.
func TestClusterEndpointsOneNode(t *testing.T) {
	ts := startServer(t, serverOpts{storage: "raft"})
	_, root := ts.initUnseal(1, 1)
	c := ts.client(root)

	leader, err := c.Sys().Leader()
	if err != nil {
		t.Fatal(err)
	}
	if !leader.HAEnabled || !leader.IsSelf || leader.LeaderAddress != ts.addr || leader.RaftCommittedIndex == 0 ||
		leader.RaftAppliedIndex == 0 || leader.ActiveTime.IsZero() {
		t.Errorf("sys/leader: %+v", leader)
	}
	health, err := c.Sys().Health()
	if err != nil {
		t.Fatal(err)
	}
	if health.Standby || !health.Initialized || health.Sealed {
		t.Errorf("sys/health: %+v", health)
	}

	cfg, err := c.Logical().Read("sys/storage/raft/configuration")
	if err != nil {
		t.Fatal(err)
	}
	servers := cfg.Data["config"].(map[string]any)["servers"].([]any)
	if len(servers) != 1 {
		t.Fatalf("servers: %v", servers)
	}
	srv := servers[0].(map[string]any)
	if srv["node_id"] != ts.srv.store.nodeName || srv["leader"] != true || srv["voter"] != true {
		t.Errorf("server: %v (node %q)", srv, ts.srv.store.nodeName)
	}
	ha, err := c.Sys().HAStatus()
	if err != nil {
		t.Fatal(err)
	}
	if len(ha.Nodes) != 1 || !ha.Nodes[0].ActiveNode || ha.Nodes[0].APIAddress != ts.addr {
		t.Errorf("sys/ha-status: %+v", ha)
	}
	if _, err := ts.client("").Logical().Read("sys/storage/raft/configuration"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("raft configuration without a token: %v", err)
	}

	// The only voter has nobody to hand over to: 400, and it stays active.
	if _, err := c.Logical().Write("sys/step-down", nil); err == nil || !strings.Contains(err.Error(), "no other voter") {
		t.Errorf("step-down of a one-node cluster: %v", err)
	}
	if leader, err := c.Sys().Leader(); err != nil || !leader.IsSelf {
		t.Errorf("after a refused step-down: %+v, %v", leader, err)
	}

	ap, err := c.Logical().Read("sys/storage/raft/autopilot/state")
	if err != nil {
		t.Fatal(err)
	}
	name := ts.srv.store.nodeName
	self, _ := ap.Data["servers"].(map[string]any)[name].(map[string]any)
	if ap.Data["healthy"] != true || ap.Data["leader"] != name || self["status"] != "leader" || self["healthy"] != true ||
		fmt.Sprint(ap.Data["failure_tolerance"]) != "0" {
		t.Errorf("autopilot state: %v", ap.Data)
	}
	for server, want := range map[string]string{name: "step down first", "no-such-node": "no server"} {
		if _, err := c.Logical().Write("sys/storage/raft/remove-peer", map[string]any{"server_id": server}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("remove-peer %s: %v, want %q", server, err, want)
		}
	}

	// The CLI over the same endpoints.
	isolateEnv(t)
	t.Setenv("WARD_ADDR", ts.addr)
	t.Setenv("WARD_TOKEN", root)
	peers := parseColumnTable(t, runCLI(t, "operator", "raft", "list-peers").wantCode(t, 0).stdout)
	if len(peers) != 1 || peers[0]["Node"] != ts.srv.store.nodeName || peers[0]["State"] != "leader" || peers[0]["Voter"] != "true" {
		t.Errorf("list-peers: %v", peers)
	}
	state := parseKeyValueTable(t, strings.SplitN(runCLI(t, "operator", "raft", "autopilot", "state").wantCode(t, 0).stdout, "\n\n", 2)[0])
	if state["Healthy"] != "true" || state["Leader"] != ts.srv.store.nodeName {
		t.Errorf("autopilot state: %v", state)
	}
	if r := runCLI(t, "operator", "raft", "remove-peer", "no-such-node"); r.code == 0 || !strings.Contains(r.stderr, "no server") {
		t.Errorf("remove-peer of an unknown node: %d %q", r.code, r.stderr)
	}
	if r := runCLI(t, "operator", "step-down"); r.code == 0 || !strings.Contains(r.stderr, "no other voter") {
		t.Errorf("operator step-down on one node: %d %q", r.code, r.stderr)
	}

	plain := startServer(t, serverOpts{storage: "pebble"})
	_, root = plain.initUnseal(1, 1)
	pc := plain.client(root)
	if leader, err := pc.Sys().Leader(); err != nil || leader.HAEnabled {
		t.Errorf("pebble sys/leader: %+v, %v", leader, err)
	}
	if _, err := pc.Logical().Read("sys/storage/raft/configuration"); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("raft configuration on pebble storage: %v", err)
	}
}

// TestClusterPortFirstNode: the first node of a cluster with a cluster
// address creates the cluster CA (kept in the barrier) when it first
// becomes active, certifies itself, records its addresses and listens for
// raft over mutual TLS; after a restart it listens again before it is
// unsealed, with the same identity.
func TestClusterPortFirstNode(t *testing.T) {
	addr := freeAddr(t)
	dir := t.TempDir()
	ts := startServer(t, serverOpts{dataDir: dir, clusterAddr: "https://" + addr})
	keys, root := ts.initUnseal(1, 1)
	c := ts.client(root)
	var srv map[string]any
	deadline := time.Now().Add(10 * time.Second)
	for {
		cfg, err := c.Logical().Read("sys/storage/raft/configuration")
		if err != nil {
			t.Fatal(err)
		}
		srv = cfg.Data["config"].(map[string]any)["servers"].([]any)[0].(map[string]any)
		if srv["address"] == addr || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if srv["address"] != addr {
		t.Fatalf("raft configuration: %v, want address %s", srv, addr)
	}
	for _, f := range []string{"ca.pem", "node.pem", "node-key.pem"} {
		fi, err := os.Stat(filepath.Join(dir, "tls", f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("tls/%s: %v %v", f, fi, err)
		}
	}
	caPEM, _ := os.ReadFile(filepath.Join(dir, "tls", "ca.pem"))
	handshake := func() error {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
		// Without a client certificate the node must refuse the session:
		// the handshake or the first read fails.
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
		if err != nil {
			return err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(2 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		return err
	}
	// A refusal arrives at once as a TLS alert; a timeout would mean the
	// node accepted the session and waits for the client's first frame.
	if err := handshake(); err == nil || os.IsTimeout(err) {
		t.Fatalf("the cluster port did not refuse a client without a certificate: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "tls", "node-key.pem")); strings.Contains(ts.logs.String(), string(b)) {
		t.Fatal("the node key reached the log")
	}
	ts.stop()

	// Restarted and still sealed, it listens on the cluster port.
	ts = startServer(t, serverOpts{dataDir: dir, clusterAddr: "https://" + addr})
	if st, err := ts.client("").Sys().SealStatus(); err != nil || !st.Sealed {
		t.Fatalf("after restart: %+v, %v", st, err)
	}
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("the cluster port is closed while sealed: %v", err)
	}
	conn.Close()
	if _, err := ts.client("").Sys().Unseal(keys[0]); err != nil {
		t.Fatal(err)
	}
	if leader, err := ts.client(root).Sys().Leader(); err != nil || !leader.IsSelf || leader.LeaderClusterAddress != "https://"+addr {
		t.Fatalf("sys/leader after restart: %+v, %v", leader, err)
	}
}

// TestJoinChallengeAndAdmission: the active node's side of a join. A
// caller without the keys gets only ciphertext; with the unseal keys the
// records open to the answer (kernel.OpenJoinChallenge, what a joining
// node runs), whose proof over the request admits the node once: it is
// certified for its own public key and raft ID and added as a learner. A
// proof for another key, a second attempt, a replay, a raft ID or a name
// already in use are refused; remove-peer takes the learner out again.
func TestJoinChallengeAndAdmission(t *testing.T) {
	ts := startServer(t, serverOpts{clusterAddr: "https://" + freeAddr(t)})
	keys, root := ts.initUnseal(3, 2)
	c := ts.client(root)
	anon := ts.client("")
	waitForTLS := time.Now().Add(10 * time.Second)
	for ts.srv.store.node.ClusterStatus().Servers[0].ClusterAddress == "" && time.Now().Before(waitForTLS) {
		time.Sleep(20 * time.Millisecond)
	}
	shares := func(i, j int) [][]byte { return [][]byte{mustDecodeShare(t, keys[i]), mustDecodeShare(t, keys[j])} }

	// challenge asks for a challenge as name and opens it with two shares.
	challenge := func(name string) (key string, answer []byte) {
		t.Helper()
		s, err := anon.Logical().Write("sys/storage/raft/bootstrap/challenge", map[string]any{"server_id": name})
		if err != nil {
			t.Fatal(err)
		}
		records := map[string][]byte{}
		for k, v := range s.Data["records"].(map[string]any) {
			b, err := base64.StdEncoding.DecodeString(v.(string))
			if err != nil {
				t.Fatal(err)
			}
			for _, share := range keys {
				if bytes.Contains(b, mustDecodeShare(t, share)) {
					t.Fatalf("record %s holds a key share", k)
				}
			}
			records[k] = b
		}
		key = s.Data["challenge_key"].(string)
		if _, err := kernel.OpenJoinChallenge(context.Background(), records, key, nil, [][]byte{mustDecodeShare(t, keys[0])}); err == nil {
			t.Fatal("one share of a 2-of-3 opened the challenge")
		}
		if answer, err = kernel.OpenJoinChallenge(context.Background(), records, key, nil, shares(0, 2)); err != nil {
			t.Fatal(err)
		}
		return key, answer
	}
	_, pub, err := raft.NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	_, otherPub, err := raft.NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	req := kernel.JoinRequest{Name: "node-b", RaftID: 0xb0b, ClusterAddr: "127.0.0.1:1", APIAddr: "http://127.0.0.1:2", PublicKeyPEM: pub}
	post := func(key string, r kernel.JoinRequest, proof []byte) (*api.Secret, error) {
		return anon.Logical().Write("sys/storage/raft/bootstrap/answer", map[string]any{
			"server_id": r.Name, "challenge": key, "proof": base64.StdEncoding.EncodeToString(proof), "raft_id": fmt.Sprint(r.RaftID),
			"cluster_addr": r.ClusterAddr, "api_addr": r.APIAddr, "public_key": string(r.PublicKeyPEM)})
	}
	// A relay that swaps in its own key cannot reuse the node's proof, and
	// the challenge allows one attempt.
	key, answer := challenge("node-b")
	swapped := req
	swapped.PublicKeyPEM = otherPub
	if _, err := post(key, swapped, kernel.JoinProof(answer, req)); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("a proof for another key: %v", err)
	}
	if _, err := post(key, req, kernel.JoinProof(answer, req)); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("a second attempt on one challenge: %v", err)
	}
	key, answer = challenge("node-b")
	res, err := post(key, req, kernel.JoinProof(answer, req))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := post(key, req, kernel.JoinProof(answer, req)); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("a replayed proof: %v", err)
	}
	block, _ := pem.Decode([]byte(res.Data["node_cert"].(string)))
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, id, err := raft.PeerIdentity(cert); err != nil || id != req.RaftID {
		t.Fatalf("certificate identity %x, %v", id, err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(res.Data["ca_cert"].(string)))
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("the node certificate does not chain to the cluster CA: %v", err)
	}
	if !strings.Contains(res.Data["members"].(string), `"node-b"`) {
		t.Errorf("members: %s", res.Data["members"])
	}
	// Identities in use are not handed out again.
	leaderID := ts.srv.store.node.Raft().ID()
	for _, r := range []kernel.JoinRequest{
		{Name: "node-c", RaftID: leaderID, ClusterAddr: "127.0.0.1:3", PublicKeyPEM: otherPub},
		{Name: "node-c", RaftID: req.RaftID, ClusterAddr: "127.0.0.1:3", PublicKeyPEM: otherPub},
		{Name: "node-b", RaftID: 0xc0c, ClusterAddr: "127.0.0.1:3", PublicKeyPEM: otherPub},
	} {
		key, answer := challenge(r.Name)
		if _, err := post(key, r, kernel.JoinProof(answer, r)); err == nil || !strings.Contains(err.Error(), "already") {
			t.Errorf("admitting %s as raft ID %d: %v", r.Name, r.RaftID, err)
		}
	}
	cfg, err := c.Logical().Read("sys/storage/raft/configuration")
	if err != nil {
		t.Fatal(err)
	}
	servers := cfg.Data["config"].(map[string]any)["servers"].([]any)
	var learner map[string]any
	for _, s := range servers {
		if m := s.(map[string]any); m["node_id"] == "node-b" {
			learner = m
		}
	}
	if len(servers) != 2 || learner == nil || learner["voter"] != false || learner["address"] != "127.0.0.1:1" {
		t.Fatalf("the configuration: %v", cfg.Data)
	}
	if _, err := c.Logical().Write("sys/storage/raft/remove-peer", map[string]any{"server_id": "node-b"}); err != nil {
		t.Fatal(err)
	}
	if cfg, err = c.Logical().Read("sys/storage/raft/configuration"); err != nil || len(cfg.Data["config"].(map[string]any)["servers"].([]any)) != 1 {
		t.Fatalf("after remove-peer: %v, %v", cfg.Data, err)
	}
}

func mustDecodeShare(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		if b, err = base64.StdEncoding.DecodeString(s); err != nil {
			t.Fatal(err)
		}
	}
	return b
}
