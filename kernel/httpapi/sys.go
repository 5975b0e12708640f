package httpapi

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/wardproject/ward/kernel"
	"github.com/wardproject/ward/sdk/logical"
)

func urlUnescape(p string) (string, error) { return url.PathUnescape(p) }

func methodNotAllowed(w http.ResponseWriter) {
	respondError(w, http.StatusMethodNotAllowed, errors.New("unsupported operation"))
}

func (s *server) handleInit(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		ok, err := s.core.Initialized(r.Context())
		if err != nil {
			respondError(w, statusOf(err), err)
			return
		}
		respondJSON(w, http.StatusOK, map[string]bool{"initialized": ok})
	case http.MethodPut, http.MethodPost:
		var req struct {
			SecretShares      int      `json:"secret_shares"`
			SecretThreshold   int      `json:"secret_threshold"`
			PGPKeys           []string `json:"pgp_keys"`
			RootTokenPGPKey   string   `json:"root_token_pgp_key"`
			StoredShares      int      `json:"stored_shares"`
			RecoveryShares    int      `json:"recovery_shares"`
			RecoveryThreshold int      `json:"recovery_threshold"`
			RecoveryPGPKeys   []string `json:"recovery_pgp_keys"`
		}
		if err := decodeBody(r, &req); err != nil {
			respondError(w, statusOf(err), err)
			return
		}
		if len(req.PGPKeys) > 0 || req.RootTokenPGPKey != "" || len(req.RecoveryPGPKeys) > 0 {
			respondError(w, http.StatusBadRequest, errors.New("PGP-encrypted key shares are not supported"))
			return
		}
		res, err := s.core.Initialize(r.Context(), kernel.InitParams{SecretShares: req.SecretShares, SecretThreshold: req.SecretThreshold,
			RecoveryShares: req.RecoveryShares, RecoveryThreshold: req.RecoveryThreshold})
		if err != nil {
			respondError(w, statusOf(err), err)
			return
		}
		keys, keysB64 := encodeKeys(res.Keys)
		recKeys, recKeysB64 := encodeKeys(res.RecoveryKeys)
		respondJSON(w, http.StatusOK, map[string]any{"keys": keys, "keys_base64": keysB64,
			"recovery_keys": recKeys, "recovery_keys_base64": recKeysB64, "root_token": res.RootToken})
	default:
		methodNotAllowed(w)
	}
}

// encodeKeys renders key shares in hex and base64, zeroing them.
func encodeKeys(ks [][]byte) (hexKeys, b64Keys []string) {
	hexKeys, b64Keys = make([]string, len(ks)), make([]string, len(ks))
	for i, k := range ks {
		hexKeys[i] = hex.EncodeToString(k)
		b64Keys[i] = base64.StdEncoding.EncodeToString(k)
		clear(k)
	}
	return hexKeys, b64Keys
}

func (s *server) sealStatusBody(st *kernel.SealStatus) map[string]any {
	body := map[string]any{
		"type": st.Type, "initialized": st.Initialized, "sealed": st.Sealed,
		"t": st.Threshold, "n": st.Shares, "progress": st.Progress, "nonce": st.Nonce,
		"version": s.core.Version(), "build_date": buildDate, "migration": st.Migration,
		"cluster_name": st.ClusterName, "cluster_id": st.ClusterID,
		"recovery_seal": st.RecoverySeal, "storage_type": s.opts.StorageType,
	}
	if st.RecoverySeal {
		body["recovery_seal_type"] = "shamir"
	}
	return body
}

// buildDate is reported as Vault's build_date; set at link time.
var buildDate = "2026-11-24T00:00:00Z"

func (s *server) handleSealStatus(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w)
		return
	}
	st, err := s.core.SealStatus(r.Context())
	if err != nil {
		respondError(w, statusOf(err), err)
		return
	}
	respondJSON(w, http.StatusOK, s.sealStatusBody(st))
}

func (s *server) handleUnseal(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut && r.Method != http.MethodPost {
		methodNotAllowed(w)
		return
	}
	var req struct {
		Key     string `json:"key"`
		Reset   bool   `json:"reset"`
		Migrate bool   `json:"migrate"`
	}
	if err := decodeBody(r, &req); err != nil {
		respondError(w, statusOf(err), err)
		return
	}
	var (
		st  *kernel.SealStatus
		err error
	)
	switch {
	case req.Reset:
		st, err = s.core.ResetUnseal(r.Context())
	case req.Key == "":
		err = &logical.Error{Code: logical.CodeInvalidRequest, Message: "'key' must be specified in request body as JSON, or 'reset' set to true"}
	default:
		var key []byte
		if key, err = decodeKey(req.Key); err == nil {
			if req.Migrate {
				st, err = s.core.UnsealMigrate(r.Context(), key)
			} else {
				st, err = s.core.Unseal(r.Context(), key)
			}
			clear(key)
		}
	}
	if err != nil {
		respondError(w, statusOf(err), err)
		return
	}
	respondJSON(w, http.StatusOK, s.sealStatusBody(st))
}

// handleHealth follows Vault: status codes chosen by query parameters,
// unknown parameters ignored (clients send several).
func (s *server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w)
		return
	}
	q := r.URL.Query()
	code := func(name string, def int) (int, error) {
		v := q.Get(name)
		if v == "" {
			return def, nil
		}
		c, err := strconv.Atoi(v)
		if err != nil || c < 100 || c > 599 {
			return 0, errors.New("bad code for " + name)
		}
		return c, nil
	}
	active, err1 := code("activecode", http.StatusOK)
	sealed, err2 := code("sealedcode", http.StatusServiceUnavailable)
	uninit, err3 := code("uninitcode", http.StatusNotImplemented)
	standbyCode, err4 := code("standbycode", http.StatusTooManyRequests)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		respondError(w, http.StatusBadRequest, err)
		return
	}
	st, err := s.core.SealStatus(r.Context())
	if err != nil {
		respondError(w, statusOf(err), err)
		return
	}
	// A node that does not lead the raft cluster is a standby, as in
	// Vault; standbyok=true reports it as active (load balancers that
	// may send requests to any node ask for this).
	standby := false
	if cl := s.core.Cluster(); cl != nil {
		standby = !cl.ClusterStatus().IsLeader()
	}
	status := active
	switch {
	case !st.Initialized:
		status = uninit
	case st.Sealed:
		status = sealed
	case standby && !boolParam(q.Get("standbyok")):
		status = standbyCode
	}
	body := map[string]any{
		"initialized": st.Initialized, "sealed": st.Sealed, "standby": standby, "performance_standby": false,
		"replication_performance_mode": "disabled", "replication_dr_mode": "disabled",
		"server_time_utc": time.Now().Unix(), "version": s.core.Version(),
		"cluster_name": st.ClusterName, "cluster_id": st.ClusterID,
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return
	}
	respondJSON(w, status, body)
}

func (s *server) handleLeader(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w)
		return
	}
	if s.core.Sealed() {
		respondError(w, http.StatusServiceUnavailable, kernel.ErrSealed)
		return
	}
	respondJSON(w, http.StatusOK, s.core.LeaderInfo())
}

// boolParam reads a boolean query parameter as Vault does (absent or
// malformed: false).
func boolParam(v string) bool {
	b, _ := strconv.ParseBool(v)
	return b
}
