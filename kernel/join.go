package kernel

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wardproject/ward/kernel/barrier"
	"github.com/wardproject/ward/kernel/seal"
	"github.com/wardproject/ward/kernel/storage"
	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// Joining a raft cluster, the active node's side (docs/clustering.md).
// A new node proves it holds the cluster's keys before it is let in: the
// active node draws a random answer, encrypts it with the barrier (not
// stored: challenges live in this node's memory, so an unauthenticated
// caller cannot make it write) and hands the new node that ciphertext with
// the physical records needed to read it — the seal configuration, the
// encrypted root key and the keyring, all encrypted, so a node without the
// keys learns nothing. Unsealed with the cluster's keys over those records
// (OpenJoinChallenge), the new node reads the answer and posts a proof: an
// HMAC, keyed with the answer, of everything it asks to be admitted with
// (JoinProof), so that whoever relays the exchange cannot swap in another
// key or address. The active node then certifies it and adds it as a
// learner. Each challenge allows one attempt.

const (
	challengePrefix = "core/raft/challenges/"
	// challengeTTL is how long a challenge may be answered.
	challengeTTL = 5 * time.Minute
	// maxChallenges bounds the challenges held at once; beyond it the
	// oldest is dropped (a flood delays joins, never blocks them for good).
	maxChallenges = 256
	// Bounds of the answer's fields, which end up in replicated records.
	maxAddrLen      = 256
	maxPublicKeyLen = 2048
)

// joinRecords are the physical records a joining node is unsealed against.
var joinRecords = []string{"seal/config", "seal/root-key", "seal/recovery-key", "barrier/keyring"}

var serverIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// pendingJoin is a challenge handed out and not yet answered.
type pendingJoin struct {
	serverID string
	answer   []byte
	expires  time.Time
}

// joinChallenges are the active node's pending challenges, by handle.
type joinChallenges struct {
	mu      sync.Mutex
	pending map[string]*pendingJoin
	order   []string // handles, oldest first
}

func (j *joinChallenges) add(now time.Time, handle string, p *pendingJoin) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.pending == nil {
		j.pending = map[string]*pendingJoin{}
	}
	keep := j.order[:0]
	for _, h := range j.order {
		if q := j.pending[h]; q != nil && now.Before(q.expires) {
			keep = append(keep, h)
		} else {
			delete(j.pending, h)
		}
	}
	j.order = keep
	for len(j.order) >= maxChallenges {
		delete(j.pending, j.order[0])
		j.order = j.order[1:]
	}
	j.pending[handle] = p
	j.order = append(j.order, handle)
}

// take removes and returns a challenge: one attempt each.
func (j *joinChallenges) take(handle string) *pendingJoin {
	j.mu.Lock()
	defer j.mu.Unlock()
	p := j.pending[handle]
	delete(j.pending, handle)
	return p
}

// JoinRequest is what a new node asks to be admitted with.
type JoinRequest struct {
	Name         string // its node_id
	RaftID       uint64
	ClusterAddr  string
	APIAddr      string
	PublicKeyPEM []byte
}

// JoinProof is what a joining node posts: an HMAC-SHA256, keyed with the
// challenge's answer, of the request it asks to be admitted with.
func JoinProof(answer []byte, r JoinRequest) []byte {
	m := hmac.New(sha256.New, answer)
	for _, f := range []string{"ward-raft-join-v1", r.Name, strconv.FormatUint(r.RaftID, 10), r.ClusterAddr, r.APIAddr, string(r.PublicKeyPEM)} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		m.Write(n[:])
		m.Write([]byte(f))
	}
	return m.Sum(nil)
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
				"challenge":    {Type: framework.TypeString, Description: "The challenge_key the challenge came with.", Required: true},
				"proof":        {Type: framework.TypeString, Description: "JoinProof of this request under the answer, base64.", Required: true},
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
	var h [16]byte
	p := &pendingJoin{serverID: id, answer: make([]byte, 32), expires: s.core.cfg.Now().Add(challengeTTL)}
	if _, err := rand.Read(h[:]); err != nil {
		return nil, err
	}
	if _, err := rand.Read(p.answer); err != nil {
		return nil, err
	}
	handle := hex.EncodeToString(h[:])
	key := challengePrefix + handle
	ct, err := s.core.barrier.Encrypt(key, p.answer)
	if err != nil {
		return nil, err
	}
	records := map[string]any{barrier.DataKey(key): base64.StdEncoding.EncodeToString(ct)}
	for _, k := range joinRecords {
		raw, err := s.core.cfg.Storage.Get(ctx, k)
		if err != nil {
			return nil, err
		}
		if raw != nil {
			records[k] = base64.StdEncoding.EncodeToString(raw)
		}
	}
	s.joins.add(s.core.cfg.Now(), handle, p)
	return &logical.Response{Data: map[string]any{"records": records, "challenge_key": key, "seal_type": s.core.seal.Type()}}, nil
}

func (s *system) joinAnswer(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if _, err := s.clusterStatus(); err != nil {
		return nil, err
	}
	jr := JoinRequest{Name: d.Get("server_id").(string), ClusterAddr: d.Get("cluster_addr").(string),
		APIAddr: d.Get("api_addr").(string), PublicKeyPEM: []byte(d.Get("public_key").(string))}
	switch {
	case !serverIDPattern.MatchString(jr.Name):
		return nil, logical.InvalidRequest("server_id: 1 to 128 letters, digits, '.', '_' or '-'")
	case len(jr.ClusterAddr) > maxAddrLen || len(jr.APIAddr) > maxAddrLen:
		return nil, logical.InvalidRequest("cluster_addr and api_addr: at most %d bytes", maxAddrLen)
	case len(jr.PublicKeyPEM) == 0 || len(jr.PublicKeyPEM) > maxPublicKeyLen:
		return nil, logical.InvalidRequest("public_key: a PEM public key of at most %d bytes", maxPublicKeyLen)
	}
	if _, err := fmt.Sscan(d.Get("raft_id").(string), &jr.RaftID); err != nil || jr.RaftID == 0 {
		return nil, logical.InvalidRequest("raft_id: a non-zero decimal number")
	}
	proof, err := base64.StdEncoding.DecodeString(d.Get("proof").(string))
	if err != nil {
		return nil, logical.InvalidRequest("proof: not base64")
	}
	handle := strings.TrimPrefix(d.Get("challenge").(string), challengePrefix)
	p := s.joins.take(handle)
	if p == nil || p.serverID != jr.Name || s.core.cfg.Now().After(p.expires) ||
		subtle.ConstantTimeCompare(JoinProof(p.answer, jr), proof) != 1 {
		return nil, logical.Errorf(logical.CodePermissionDenied, "the proof does not match a pending challenge for %q", jr.Name)
	}
	res, err := s.core.cfg.Cluster.Admit(ctx, jr, s.core.barrier.View("core/raft/"))
	if err != nil {
		return nil, logical.InvalidRequest("admit %q: %v", jr.Name, err)
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
	answer, err := b.Get(ctx, challengeKey)
	if err != nil || len(answer) == 0 {
		return nil, fmt.Errorf("join: the challenge could not be read: %v", err)
	}
	return answer, nil
}
