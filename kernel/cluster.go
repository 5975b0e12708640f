package kernel

import (
	"context"
	"time"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// Cluster is the replication behind the core's storage, as the kernel
// reports it (sys/leader, sys/health, sys/ha-status,
// sys/storage/raft/configuration). Nil means storage that is not
// replicated (storage "pebble"): HA is then reported disabled.
type Cluster interface {
	ClusterStatus() ClusterStatus
	// StepDown hands leadership to another voter (sys/step-down); an
	// error when there is none.
	StepDown(ctx context.Context) error
	// Activate is called each time this node becomes the active node,
	// with the barrier's view for the cluster's own secrets (core/raft/).
	// An error is logged; the node serves anyway.
	Activate(ctx context.Context, s logical.Storage) error
	// RemovePeer removes the named node from the cluster for good
	// (sys/storage/raft/remove-peer).
	RemovePeer(ctx context.Context, name string) error
	// Autopilot reports the health of every server, as the leader sees
	// it (sys/storage/raft/autopilot/state).
	Autopilot(ctx context.Context) (AutopilotState, error)
	// Admit certifies a node that answered its join challenge, records it
	// and adds it as a learner; s is the barrier's view for the cluster.
	Admit(ctx context.Context, req JoinRequest, s logical.Storage) (*JoinResult, error)
}

// AutopilotState is the cluster's health as the leader sees it.
type AutopilotState struct {
	Healthy bool
	// FailureTolerance is how many voters may fail with the cluster still
	// able to elect a leader.
	FailureTolerance int
	Leader           string
	Servers          []AutopilotServer
}

// AutopilotServer is one server's health.
type AutopilotServer struct {
	NodeID, Address string
	Status          string // "leader", "voter" or "non-voter"
	LastIndex       uint64 // how far its log agrees with the leader's
	Lag             uint64 // entries behind the leader
	Healthy         bool
}

// ClusterStatus is a point-in-time view of the cluster from this node.
type ClusterStatus struct {
	NodeID   string // this node's name (Vault's node_id)
	LeaderID string // the leader's name; "" while none is known
	// CommitIndex and AppliedIndex are this node's raft indexes.
	CommitIndex, AppliedIndex uint64
	Servers                   []ClusterServer
}

// ClusterServer is one member of the cluster configuration.
type ClusterServer struct {
	NodeID         string
	APIAddress     string // e.g. https://10.0.0.1:8200; "" when unknown
	ClusterAddress string // host:port of the cluster listener; "" when unknown
	Voter          bool
}

// IsLeader reports whether this node leads: the active node.
func (s ClusterStatus) IsLeader() bool { return s.LeaderID != "" && s.LeaderID == s.NodeID }

func (s ClusterStatus) server(id string) (ClusterServer, bool) {
	for _, srv := range s.Servers {
		if srv.NodeID == id {
			return srv, true
		}
	}
	return ClusterServer{}, false
}

// Cluster returns the cluster view given at New; nil when not replicated.
func (c *Core) Cluster() Cluster { return c.cfg.Cluster }

// LeaderInfo is sys/leader's answer, in Vault's shape.
func (c *Core) LeaderInfo() map[string]any {
	cl := c.cfg.Cluster
	if cl == nil {
		return map[string]any{"ha_enabled": false}
	}
	st := cl.ClusterStatus()
	leader, _ := st.server(st.LeaderID)
	active := time.Time{}
	if st.IsLeader() {
		active = c.activeSince()
	}
	return map[string]any{
		"ha_enabled": true, "is_self": st.IsLeader(), "active_time": active.UTC().Format(time.RFC3339Nano),
		"leader_address": leader.APIAddress, "leader_cluster_address": clusterURL(leader.ClusterAddress),
		"performance_standby": false, "performance_standby_last_remote_wal": 0,
		"raft_committed_index": st.CommitIndex, "raft_applied_index": st.AppliedIndex,
	}
}

// clusterURL writes a cluster address the way Vault reports it.
func clusterURL(addr string) string {
	if addr == "" {
		return ""
	}
	return "https://" + addr
}

// activeSince is when this node last unsealed (it has been active since,
// while it leads).
func (c *Core) activeSince() time.Time {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.unsealed == nil {
		return time.Time{}
	}
	return c.unsealed.since
}

// clusterPaths are sys/ha-status and sys/storage/raft/configuration.
func (s *system) clusterPaths() []*framework.Path {
	return []*framework.Path{
		{
			Pattern:      "ha-status",
			Operations:   map[logical.Operation]framework.OperationFunc{logical.ReadOperation: s.haStatus},
			HelpSynopsis: "The nodes of the cluster and which one is active.",
		},
		{
			Pattern:      "step-down",
			Operations:   map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: s.stepDown},
			HelpSynopsis: "Hand the active duties to another node (raft leadership transfer).",
		},
		{
			Pattern: "storage/raft/remove-peer",
			Fields: map[string]*framework.FieldSchema{
				"server_id": {Type: framework.TypeString, Description: "The node_id of the server to remove.", Required: true},
			},
			Operations:   map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: s.removePeer},
			HelpSynopsis: "Remove a server from the raft cluster; its ID can never rejoin.",
		},
		{
			Pattern:      "storage/raft/autopilot/state",
			Operations:   map[logical.Operation]framework.OperationFunc{logical.ReadOperation: s.autopilotState},
			HelpSynopsis: "The health of every server of the raft cluster, as the leader sees it.",
		},
		{
			Pattern:      "storage/raft/configuration",
			Operations:   map[logical.Operation]framework.OperationFunc{logical.ReadOperation: s.raftConfiguration},
			HelpSynopsis: "The raft configuration: every server, its address, whether it votes and which leads.",
		},
	}
}

func (s *system) clusterStatus() (ClusterStatus, error) {
	cl := s.core.cfg.Cluster
	if cl == nil {
		return ClusterStatus{}, logical.InvalidRequest("storage is not replicated: HA is not enabled")
	}
	return cl.ClusterStatus(), nil
}

func (s *system) haStatus(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	st, err := s.clusterStatus()
	if err != nil {
		return nil, err
	}
	nodes := make([]map[string]any, 0, len(st.Servers))
	for _, srv := range st.Servers {
		nodes = append(nodes, map[string]any{
			"hostname": srv.NodeID, "api_address": srv.APIAddress, "cluster_address": clusterURL(srv.ClusterAddress),
			"active_node": srv.NodeID == st.LeaderID, "last_echo": nil, "version": s.core.Version(),
		})
	}
	return &logical.Response{Data: map[string]any{"nodes": nodes}}, nil
}

func (s *system) raftConfiguration(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	st, err := s.clusterStatus()
	if err != nil {
		return nil, err
	}
	servers := make([]map[string]any, 0, len(st.Servers))
	for _, srv := range st.Servers {
		servers = append(servers, map[string]any{
			"node_id": srv.NodeID, "address": srv.ClusterAddress, "leader": srv.NodeID == st.LeaderID,
			"voter": srv.Voter, "protocol_version": "3",
		})
	}
	return &logical.Response{Data: map[string]any{"config": map[string]any{"index": st.CommitIndex, "servers": servers}}}, nil
}

func (s *system) stepDown(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if _, err := s.clusterStatus(); err != nil {
		return nil, err
	}
	if err := s.core.cfg.Cluster.StepDown(ctx); err != nil {
		return nil, logical.InvalidRequest("step down: %v", err)
	}
	return nil, nil
}

func (s *system) removePeer(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	st, err := s.clusterStatus()
	if err != nil {
		return nil, err
	}
	name := d.Get("server_id").(string)
	if name == "" {
		return nil, logical.InvalidRequest("server_id is required")
	}
	if name == st.NodeID {
		return nil, logical.InvalidRequest("this node leads: step down first, then remove it from the new active node")
	}
	if _, ok := st.server(name); !ok {
		return nil, logical.InvalidRequest("no server %q in the raft configuration", name)
	}
	if err := s.core.cfg.Cluster.RemovePeer(ctx, name); err != nil {
		return nil, logical.InvalidRequest("remove %q: %v", name, err)
	}
	return nil, nil
}

func (s *system) autopilotState(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if _, err := s.clusterStatus(); err != nil {
		return nil, err
	}
	ap, err := s.core.cfg.Cluster.Autopilot(ctx)
	if err != nil {
		return nil, err
	}
	servers := map[string]any{}
	var voters []string
	for _, srv := range ap.Servers {
		if srv.Status != "non-voter" {
			voters = append(voters, srv.NodeID)
		}
		servers[srv.NodeID] = map[string]any{
			"id": srv.NodeID, "name": srv.NodeID, "address": srv.Address, "status": srv.Status,
			"node_status": "alive", "healthy": srv.Healthy, "last_index": srv.LastIndex, "lag": srv.Lag,
		}
	}
	return &logical.Response{Data: map[string]any{
		"healthy": ap.Healthy, "failure_tolerance": ap.FailureTolerance, "leader": ap.Leader,
		"voters": voters, "servers": servers,
	}}, nil
}
