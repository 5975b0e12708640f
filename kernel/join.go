package kernel

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/wardproject/ward/kernel/barrier"
	"github.com/wardproject/ward/kernel/seal"
	"github.com/wardproject/ward/kernel/storage"
	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// Joining a raft cluster, the active node's side (docs/clustering.md).
// A new node proves it holds the cluster's keys before it is let in: the
// active node stores a random answer in the barrier and hands the new node
// the physical records needed to read it back — the seal configuration,
// the encrypted root key, the keyring and the answer's ciphertext, all
// encrypted, so a node without the keys learns nothing. Unsealed with the
// cluster's keys over those records (OpenJoinChallenge), the new node reads
// the answer and posts it with its raft ID, addresses and public key; the
// active node then certifies it and adds it as a learner.

const (
	challengePrefix = "core/raft/challenges/"
	// challengeTTL is how long a challenge may be answered.
	challengeTTL = 5 * time.Minute
	// maxChallenges bounds the challenges pending at once: the endpoint is
	// unauthenticated, and each one is a storage write.
	maxChallenges = 32
)

// joinRecords are the physical records a joining node is unsealed against.
var joinRecords = []string{"seal/config", "seal/root-key", "seal/recovery-key", "barrier/keyring"}

var serverIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

type joinChallenge struct {
	Answer  []byte    `json:"answer"`
	Expires time.Time `json:"expires"`
}

// JoinRequest is what a new node asks to be admitted with.
type JoinRequest struct {
	Name         string // its node_id
	RaftID       uint64
	ClusterAddr  string
	APIAddr      string
	PublicKeyPEM []byte
}

// JoinResult is what an admitted node needs to reach the cluster.
type JoinResult struct {
	CACertPEM, CertPEM []byte
	Members            []JoinMember
}

// JoinMember is one member's raft ID and addresses.
type JoinMember struct {
	ID          uint64 `json:"id"`
	Name        string `json:"name"`
	ClusterAddr string `json:"cluster_addr"`
	APIAddr     string `json:"api_addr"`
}

func (s *system) joinPaths() []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "storage/raft/bootstrap/challenge",
			Fields: map[string]*framework.FieldSchema{
				"server_id": {Type: framework.TypeString, Description: "The joining node's node_id.", Required: true},
			},
			Operations:   map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: s.joinChallenge},
			HelpSynopsis: "Start joining the raft cluster: the records a new node is unsealed against, and a challenge.",
		},
		{
			Pattern: "storage/raft/bootstrap/answer",
			Fields: map[string]*framework.FieldSchema{
				"server_id":    {Type: framework.TypeString, Required: true},
				"answer":       {Type: framework.TypeString, Description: "The challenge's answer, base64.", Required: true},
				"raft_id":      {Type: framework.TypeString, Description: "The new node's raft ID, decimal.", Required: true},
				"cluster_addr": {Type: framework.TypeString, Description: "host:port of its raft transport.", Required: true},
				"api_addr":     {Type: framework.TypeString},
				"public_key":   {Type: framework.TypeString, Description: "Its node public key, PEM.", Required: true},
			},
			Operations:   map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: s.joinAnswer},
			HelpSynopsis: "Finish joining: prove the challenge was read, get certified and added as a learner.",
		},
	}
}

func (s *system) joinChallenge(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if _, err := s.clusterStatus(); err != nil {
		return nil, err
	}
	id := d.Get("server_id").(string)
	if !serverIDPattern.MatchString(id) {
		return nil, logical.InvalidRequest("server_id: 1 to 128 letters, digits, '.', '_' or '-'")
	}
	b := s.core.barrier
	if err := s.purgeChallenges(ctx); err != nil {
		return nil, err
	}
	pending, err := b.List(ctx, challengePrefix)
	if err != nil {
		return nil, err
	}
	if len(pending) >= maxChallenges {
		return nil, logical.Errorf(logical.CodeUnavailable, "too many joins in progress: retry later")
	}
	ch := joinChallenge{Answer: make([]byte, 32), Expires: s.core.cfg.Now().Add(challengeTTL)}
	if _, err := rand.Read(ch.Answer); err != nil {
		return nil, err
	}
	v, err := json.Marshal(ch)
	if err != nil {
		return nil, err
	}
	key := challengePrefix + id
	if err := b.Put(ctx, key, v); err != nil {
		return nil, err
	}
	records := map[string]any{}
	phys := s.core.cfg.Storage
	for _, k := range append(joinRecords, barrier.DataKey(key)) {
		raw, err := phys.Get(ctx, k)
		if err != nil {
			return nil, err
		}
		if raw != nil {
			records[k] = base64.StdEncoding.EncodeToString(raw)
		}
	}
	return &logical.Response{Data: map[string]any{"records": records, "challenge_key": key, "seal_type": s.core.seal.Type()}}, nil
}

// purgeChallenges deletes expired challenges.
func (s *system) purgeChallenges(ctx context.Context) error {
	b := s.core.barrier
	ids, err := b.List(ctx, challengePrefix)
	if err != nil {
		return err
	}
	now := s.core.cfg.Now()
	for _, id := range ids {
		v, err := b.Get(ctx, challengePrefix+id)
		if err != nil {
			return err
		}
		var ch joinChallenge
		if v == nil || json.Unmarshal(v, &ch) != nil || now.After(ch.Expires) {
			if err := b.Delete(ctx, challengePrefix+id); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *system) joinAnswer(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if _, err := s.clusterStatus(); err != nil {
		return nil, err
	}
	id := d.Get("server_id").(string)
	if !serverIDPattern.MatchString(id) {
		return nil, logical.InvalidRequest("server_id: 1 to 128 letters, digits, '.', '_' or '-'")
	}
	answer, err := base64.StdEncoding.DecodeString(d.Get("answer").(string))
	if err != nil {
		return nil, logical.InvalidRequest("answer: not base64")
	}
	var raftID uint64
	if _, err := fmt.Sscan(d.Get("raft_id").(string), &raftID); err != nil || raftID == 0 {
		return nil, logical.InvalidRequest("raft_id: a non-zero decimal number")
	}
	key := challengePrefix + id
	v, err := s.core.barrier.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	var ch joinChallenge
	if v == nil || json.Unmarshal(v, &ch) != nil || s.core.cfg.Now().After(ch.Expires) ||
		subtle.ConstantTimeCompare(ch.Answer, answer) != 1 {
		return nil, logical.Errorf(logical.CodePermissionDenied, "the answer does not match a pending challenge for %q", id)
	}
	// One answer per challenge, right or wrong after this point.
	if err := s.core.barrier.Delete(ctx, key); err != nil {
		return nil, err
	}
	res, err := s.core.cfg.Cluster.Admit(ctx, JoinRequest{Name: id, RaftID: raftID, ClusterAddr: d.Get("cluster_addr").(string),
		APIAddr: d.Get("api_addr").(string), PublicKeyPEM: []byte(d.Get("public_key").(string))}, s.core.barrier.View("core/raft/"))
	if err != nil {
		return nil, logical.InvalidRequest("admit %q: %v", id, err)
	}
	members, _ := json.Marshal(res.Members)
	return &logical.Response{Data: map[string]any{
		"ca_cert": string(res.CACertPEM), "node_cert": string(res.CertPEM), "members": string(members),
	}}, nil
}

// OpenJoinChallenge is the joining node's side: it unseals, over the
// records the active node handed out, with the cluster's key shares (or,
// for an auto seal, with access to the same HSM key), and returns the
// challenge's answer.
func OpenJoinChallenge(ctx context.Context, records map[string][]byte, challengeKey string, access seal.Access, shares [][]byte) ([]byte, error) {
	mem := storage.NewInmem()
	defer mem.Close()
	for k, v := range records {
		if k != barrier.DataKey(challengeKey) && !slices.Contains(joinRecords, k) {
			return nil, fmt.Errorf("join: unexpected record %q", k)
		}
		if err := mem.Put(ctx, k, v); err != nil {
			return nil, err
		}
	}
	b := barrier.New(mem)
	defer b.Seal()
	sl := newSeal(mem, b, access)
	if access != nil {
		b.SetSealWrap(seal.Wrapper(access), sealWrapPrefixes...)
		if err := sl.AutoUnseal(ctx); err != nil {
			return nil, err
		}
	} else {
		for _, share := range shares {
			if _, err := sl.Unseal(ctx, share); err != nil {
				return nil, err
			}
			if !b.Sealed() {
				break
			}
		}
	}
	if b.Sealed() {
		return nil, fmt.Errorf("join: not enough key shares to open the challenge")
	}
	v, err := b.Get(ctx, challengeKey)
	if err != nil || v == nil {
		return nil, fmt.Errorf("join: the challenge could not be read: %v", err)
	}
	var ch joinChallenge
	if err := json.Unmarshal(v, &ch); err != nil {
		return nil, err
	}
	return ch.Answer, nil
}

