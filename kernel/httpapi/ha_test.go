package httpapi

import (
	"context"
	"errors"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/wardproject/ward/kernel"
	"github.com/wardproject/ward/kernel/raft"
	"github.com/wardproject/ward/sdk/logical"
)

// raftView reports a raft node to its core, naming nodes "n<ID>" with the
// API addresses of the test's HTTP servers.
type raftView struct {
	node  *raft.Node
	addrs map[uint64]string
}

func (v *raftView) ClusterStatus() kernel.ClusterStatus {
	st := v.node.Status()
	name := func(id uint64) string { return "n" + strconv.FormatUint(id, 10) }
	out := kernel.ClusterStatus{NodeID: name(st.ID), CommitIndex: st.Commit, AppliedIndex: st.Applied}
	if st.Leader != 0 {
		out.LeaderID = name(st.Leader)
	}
	for _, id := range st.Voters {
		out.Servers = append(out.Servers, kernel.ClusterServer{NodeID: name(id), APIAddress: v.addrs[id], Voter: true})
	}
	return out
}

func (v *raftView) StepDown(ctx context.Context) error { return v.node.StepDown(ctx) }

func (v *raftView) Activate(context.Context, logical.Storage) error { return nil }

func (v *raftView) RemovePeer(context.Context, string) error { return errors.New("not in this test") }

func (v *raftView) Admit(context.Context, kernel.JoinRequest, logical.Storage) (*kernel.JoinResult, error) {
	return nil, errors.New("not in this test")
}

func (v *raftView) Autopilot(context.Context) (kernel.AutopilotState, error) {
	return kernel.AutopilotState{}, errors.New("not in this test")
}

type haNode struct {
	id   uint64
	raft *raft.Node
	core *kernel.Core
	srv  *httptest.Server
}

// newHACluster starts three raft nodes in memory, a core and an HTTP
// server on each, initializes through one of them and unseals all three.
func newHACluster(t *testing.T) ([]*haNode, string) {
	t.Helper()
	ctx := context.Background()
	net := raft.NewMemNetwork(1)
	ids := []uint64{1, 2, 3}
	addrs := map[uint64]string{}
	var nodes []*haNode
	for _, id := range ids {
		srv := httptest.NewUnstartedServer(nil)
		addrs[id] = "http://" + srv.Listener.Addr().String()
		rn, err := raft.Open(raft.Config{ID: id, Dir: "d", FS: vfs.NewMem(), Transport: net.Transport(id), Bootstrap: ids,
			TickInterval: 10 * time.Millisecond, RequestTimeout: 5 * time.Second, CacheSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, &haNode{id: id, raft: rn, srv: srv})
	}
	for _, n := range nodes {
		core, err := kernel.New(kernel.Config{Storage: n.raft.Backend(), Cluster: &raftView{node: n.raft, addrs: addrs}})
		if err != nil {
			t.Fatal(err)
		}
		n.core = core
		n.srv.Config.Handler = New(core, Options{})
		n.srv.Start()
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.srv.Close()
			n.core.Shutdown(ctx)
			n.raft.Close()
		}
	})
	waitFor(t, "a leader", func() bool { return nodes[0].raft.Status().Leader != 0 })
	res, err := nodes[0].core.Initialize(ctx, kernel.InitParams{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if _, err := n.core.Unseal(ctx, res.Keys[0]); err != nil {
			t.Fatalf("unseal node %d: %v", n.id, err)
		}
	}
	return nodes, res.RootToken
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// roles returns the active node and the standbys, failing unless every
// node is unsealed and exactly one is active.
func roles(t *testing.T, nodes []*haNode) (*haNode, []*haNode) {
	t.Helper()
	var active *haNode
	var standbys []*haNode
	for _, n := range nodes {
		switch {
		case n.core.Sealed():
			t.Fatalf("node %d is sealed", n.id)
		case n.core.Standby():
			standbys = append(standbys, n)
		case active != nil:
			t.Fatalf("nodes %d and %d are both active", active.id, n.id)
		default:
			active = n
		}
	}
	if active == nil {
		t.Fatal("no active node")
	}
	return active, standbys
}

// TestHAStandbysForward: the raft leader is the one active node; the
// standbys answer health and leader queries themselves and forward every
// other request to it; when leadership moves (after a key rotation on the
// old active node), the new leader takes over with the current keyring
// and the old one becomes a standby that forwards.
func TestHAStandbysForward(t *testing.T) {
	nodes, root := newHACluster(t)
	var active *haNode
	var standbys []*haNode
	waitFor(t, "one active node", func() bool {
		for _, n := range nodes {
			if !n.core.Sealed() && !n.core.Standby() {
				return true
			}
		}
		return false
	})
	active, standbys = roles(t, nodes)
	if leader := active.raft.Status().Leader; leader != active.id {
		t.Fatalf("active node %d, raft leader %d", active.id, leader)
	}

	sb := standbys[0].srv
	if r := call(t, sb, "PUT", "/v1/sys/policy/p1", root, `{"policy":"path \"secret/*\" { capabilities = [\"read\"] }"}`); r.status != 204 {
		t.Fatalf("policy write through a standby: %d %s", r.status, r.raw)
	}
	if r := call(t, standbys[1].srv, "GET", "/v1/sys/policy/p1", root, ""); r.status != 200 || !strings.Contains(r.raw, "secret/*") {
		t.Fatalf("policy read through the other standby: %d %s", r.status, r.raw)
	}
	if r := call(t, sb, "GET", "/v1/sys/health", "", ""); r.status != 429 || r.body["standby"] != true {
		t.Errorf("standby health: %d %s", r.status, r.raw)
	}
	if r := call(t, sb, "GET", "/v1/sys/health?standbyok=true", "", ""); r.status != 200 {
		t.Errorf("standby health with standbyok: %d", r.status)
	}
	if r := call(t, active.srv, "GET", "/v1/sys/health", "", ""); r.status != 200 || r.body["standby"] != false {
		t.Errorf("active health: %d %s", r.status, r.raw)
	}
	if r := call(t, sb, "GET", "/v1/sys/leader", "", ""); r.body["is_self"] != false || r.body["leader_address"] != active.srv.URL {
		t.Errorf("standby sys/leader: %s (active %s)", r.raw, active.srv.URL)
	}
	// A request already forwarded once is not forwarded again.
	if r := call(t, sb, "GET", "/v1/sys/policy/p1", root, "", forwardedHeader, "1"); r.status != 503 {
		t.Errorf("re-forwarded request: %d %s", r.status, r.raw)
	}

	// Rotate the keyring on the active node, write under the new term,
	// then move leadership to a standby.
	if r := call(t, sb, "POST", "/v1/sys/rotate", root, ""); r.status != 204 && r.status != 200 {
		t.Fatalf("rotate through a standby: %d %s", r.status, r.raw)
	}
	if r := call(t, sb, "PUT", "/v1/sys/policy/p2", root, `{"policy":"path \"kv/*\" { capabilities = [\"list\"] }"}`); r.status != 204 {
		t.Fatalf("policy write after rotation: %d %s", r.status, r.raw)
	}
	// sys/step-down (sudo), sent to a standby, is forwarded to the active
	// node, which hands over to one of the others.
	if r := call(t, sb, "PUT", "/v1/sys/step-down", root, ""); r.status != 204 {
		t.Fatalf("step-down: %d %s", r.status, r.raw)
	}
	var next *haNode
	waitFor(t, "a new active node", func() bool {
		for _, n := range standbys {
			if !n.core.Standby() && !n.core.Sealed() {
				next = n
				return true
			}
		}
		return false
	})
	waitFor(t, "the old leader to become a standby", func() bool { return active.core.Standby() })
	if a, _ := roles(t, nodes); a != next {
		t.Fatalf("active node %d, want %d", a.id, next.id)
	}
	for _, n := range nodes {
		if r := call(t, n.srv, "GET", "/v1/sys/policy/p2", root, ""); r.status != 200 || !strings.Contains(r.raw, "kv/*") {
			t.Fatalf("node %d after the handover: %d %s", n.id, r.status, r.raw)
		}
	}
	if r := call(t, active.srv, "GET", "/v1/sys/policy/p1", root, ""); r.status != 200 {
		t.Fatalf("old leader, now a standby: %d %s", r.status, r.raw)
	}

	// A standby seals like any node.
	if err := active.core.Seal(context.Background()); err != nil || !active.core.Sealed() || active.core.Standby() {
		t.Fatalf("sealing a standby: %v (sealed %v, standby %v)", err, active.core.Sealed(), active.core.Standby())
	}
}
