package main

import (
	"strings"
	"testing"
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

	// The CLI over the same endpoints.
	isolateEnv(t)
	t.Setenv("WARD_ADDR", ts.addr)
	t.Setenv("WARD_TOKEN", root)
	peers := parseColumnTable(t, runCLI(t, "operator", "raft", "list-peers").wantCode(t, 0).stdout)
	if len(peers) != 1 || peers[0]["Node"] != ts.srv.store.nodeName || peers[0]["State"] != "leader" || peers[0]["Voter"] != "true" {
		t.Errorf("list-peers: %v", peers)
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
