package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wardproject/ward/kernel"
	"github.com/wardproject/ward/sdk/logical"
)

// Options configures the handler.
type Options struct {
	Logger *slog.Logger
	// MaxRequestSize bounds request bodies (413 beyond). Default 32 MiB.
	MaxRequestSize int64
	// UnauthenticatedMetrics lets sys/metrics be scraped without a token.
	UnauthenticatedMetrics bool
	// StorageType is reported by sys/seal-status.
	StorageType string
	// ForwardTransport carries a standby's requests to the active node
	// (nil: http.DefaultTransport).
	ForwardTransport http.RoundTripper
}

type server struct {
	core *kernel.Core
	opts Options
}

// New returns the HTTP handler for a core.
func New(core *kernel.Core, opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxRequestSize == 0 {
		opts.MaxRequestSize = 32 << 20
	}
	if opts.StorageType == "" {
		opts.StorageType = "pebble"
	}
	s := &server{core: core, opts: opts}
	r := mux.NewRouter()
	r.UseEncodedPath()
	v1 := r.PathPrefix("/v1/").Subrouter()
	v1.HandleFunc("/sys/init", s.handleInit)
	v1.HandleFunc("/sys/seal-status", s.handleSealStatus)
	v1.HandleFunc("/sys/unseal", s.handleUnseal)
	v1.HandleFunc("/sys/health", s.handleHealth)
	v1.HandleFunc("/sys/leader", s.handleLeader)
	v1.HandleFunc("/sys/metrics", s.handleMetrics)
	v1.PathPrefix("/").HandlerFunc(s.handleLogical)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		respondError(w, http.StatusNotFound, errors.New("unsupported path"))
	})
	return s.wrap(r)
}

// wrap adds the headers every response carries and limits the body size.
func (s *server) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxRequestSize)
		}
		h.ServeHTTP(w, r)
	})
}

// errorBody is Vault's error envelope.
type errorBody struct {
	Errors []string `json:"errors"`
}

func respondError(w http.ResponseWriter, status int, err error) {
	msgs := []string{}
	if err != nil {
		msgs = append(msgs, err.Error())
	}
	respondJSON(w, status, errorBody{Errors: msgs})
}

func respondJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

// decodeBody reads a JSON object body. An empty body is an empty object.
func decodeBody(r *http.Request, out any) error {
	if r.Body == nil {
		return nil
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return errTooLarge
		}
		return &logical.Error{Code: logical.CodeInvalidRequest, Message: "failed to read request body"}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return &logical.Error{Code: logical.CodeInvalidRequest, Message: "failed to decode JSON input: " + err.Error()}
	}
	if dec.More() {
		return &logical.Error{Code: logical.CodeInvalidRequest, Message: "failed to decode JSON input: trailing data after the JSON object"}
	}
	return nil
}

var errTooLarge = errors.New("request body too large")

func statusOf(err error) int {
	if errors.Is(err, errTooLarge) {
		return http.StatusRequestEntityTooLarge
	}
	return kernel.StatusCode("", nil, err)
}

// clientToken reads X-Vault-Token, or a bearer token.
func clientToken(r *http.Request) string {
	if t := r.Header.Get("X-Vault-Token"); t != "" {
		return t
	}
	if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "Bearer ") {
		return strings.TrimSpace(a[7:])
	}
	return ""
}

// operation maps the HTTP method (and ?list=true) to a logical operation.
func operation(r *http.Request) (logical.Operation, error) {
	switch r.Method {
	case http.MethodGet:
		if l := r.URL.Query().Get("list"); l != "" {
			if b, _ := strconv.ParseBool(l); b {
				return logical.ListOperation, nil
			}
		}
		if h := r.URL.Query().Get("help"); h == "1" || h == "true" {
			return logical.HelpOperation, nil
		}
		return logical.ReadOperation, nil
	case "LIST":
		return logical.ListOperation, nil
	case http.MethodPost, http.MethodPut:
		return logical.UpdateOperation, nil
	case http.MethodPatch:
		ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if ct != "application/merge-patch+json" {
			return "", errUnsupportedMedia{got: r.Header.Get("Content-Type")}
		}
		return logical.PatchOperation, nil
	case http.MethodDelete:
		return logical.DeleteOperation, nil
	}
	return "", &logical.Error{Code: logical.CodeUnsupportedOperation, Message: "unsupported method " + r.Method}
}

type errUnsupportedMedia struct{ got string }

func (e errUnsupportedMedia) Error() string {
	return fmt.Sprintf("PATCH requires Content-Type of application/merge-patch+json, provided %s", e.got)
}

// parseWrapTTL reads X-Vault-Wrap-TTL as Vault does: a number of seconds
// or a duration ("5m"); "" or 0 means no wrapping. Below one second is
// refused.
func parseWrapTTL(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n > int64(maxWrapTTL/time.Second) {
			return 0, errors.New("error parsing X-Vault-Wrap-TTL header: the duration is too long")
		}
		d = time.Duration(n) * time.Second
	} else if d, err = time.ParseDuration(v); err != nil {
		return 0, errors.New("error parsing X-Vault-Wrap-TTL header: not a number of seconds or a duration")
	}
	switch {
	case d < 0:
		return 0, errors.New("error parsing X-Vault-Wrap-TTL header: requested wrap ttl cannot be negative")
	case d > maxWrapTTL:
		return 0, errors.New("error parsing X-Vault-Wrap-TTL header: the duration is too long")
	case d > 0 && d < kernel.MinWrapTTL:
		return 0, fmt.Errorf("error parsing X-Vault-Wrap-TTL header: the wrap TTL must be at least %s", kernel.MinWrapTTL)
	}
	return d, nil
}

// maxWrapTTL bounds the header so seconds cannot overflow a Duration; the
// token store caps the wrapping token at the server's max TTL anyway.
const maxWrapTTL = 100 * 365 * 24 * time.Hour

func (s *server) handleLogical(w http.ResponseWriter, r *http.Request) {
	if s.core.Standby() {
		s.forward(w, r)
		return
	}
	path := strings.TrimPrefix(r.URL.EscapedPath(), "/v1/")
	if p, err := urlUnescape(path); err == nil {
		path = p
	}
	op, err := operation(r)
	if err != nil {
		var um errUnsupportedMedia
		if errors.As(err, &um) {
			respondError(w, http.StatusUnsupportedMediaType, err)
			return
		}
		respondError(w, statusOf(err), err)
		return
	}
	wrapTTL, err := parseWrapTTL(r.Header.Get("X-Vault-Wrap-TTL"))
	if err != nil {
		respondError(w, http.StatusBadRequest, err)
		return
	}

	data := map[string]any{}
	switch op {
	case logical.UpdateOperation, logical.PatchOperation, logical.DeleteOperation:
		if err := decodeBody(r, &data); err != nil {
			respondError(w, statusOf(err), err)
			return
		}
		if data == nil {
			data = map[string]any{}
		}
	}
	if op == logical.ReadOperation || op == logical.ListOperation || op == logical.DeleteOperation {
		for k, v := range r.URL.Query() {
			if k == "list" || k == "help" || len(v) == 0 {
				continue
			}
			data[k] = v[0]
		}
	}
	if op == logical.ListOperation && path != "" && !strings.HasSuffix(path, "/") {
		path += "/"
	}

	req := &kernel.Request{
		Request: &logical.Request{
			ID: uuid.NewString(), Operation: op, Path: path, Data: data, RemoteAddr: r.RemoteAddr,
		},
		ClientToken: clientToken(r),
		WrapTTL:     wrapTTL,
	}
	resp, err := s.core.HandleRequest(r.Context(), req)
	if err != nil {
		status := statusOf(err)
		// A client that went away is not a server error worth a log line.
		if status >= 500 && status != http.StatusServiceUnavailable && r.Context().Err() == nil {
			s.opts.Logger.Error("request failed", "path", mountOnly(path), "operation", op, "status", status, "error", err)
		}
		respondError(w, status, err)
		return
	}
	s.respondLogical(w, req, op, resp)
}

func (s *server) respondLogical(w http.ResponseWriter, req *kernel.Request, op logical.Operation, resp *kernel.Response) {
	if resp != nil && resp.Raw != nil {
		// An unwrapped response: the stored envelope, byte for byte.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(resp.Raw)
		return
	}
	if resp == nil || resp.Response == nil {
		if op == logical.ReadOperation || op == logical.ListOperation {
			respondError(w, http.StatusNotFound, nil)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	status := http.StatusOK
	if resp.StatusCode != 0 {
		status = resp.StatusCode
	}
	if status >= 400 && resp.Data == nil {
		respondError(w, status, nil)
		return
	}
	if resp.Data == nil && resp.TokenAuth == nil && resp.Secret == nil && len(resp.Warnings) == 0 && resp.StatusCode == 0 {
		if op == logical.ReadOperation || op == logical.ListOperation {
			respondError(w, http.StatusNotFound, nil)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	env := resp.Envelope(req.ID)
	// Vault also copies the data of a few sys endpoints to the top level;
	// older clients read it there.
	if legacyTopLevel[req.Path] && resp.WrapInfo == nil {
		out := map[string]any{}
		for k, v := range resp.Data {
			out[k] = v
		}
		b, _ := json.Marshal(env)
		var top map[string]any
		_ = json.Unmarshal(b, &top)
		for k, v := range top {
			out[k] = v
		}
		respondJSON(w, status, out)
		return
	}
	respondJSON(w, status, env)
}

// legacyTopLevel are the endpoints whose data Vault repeats at the top
// level of the response.
var legacyTopLevel = map[string]bool{
	"sys/mounts": true, "sys/auth": true, "sys/policy": true, "sys/capabilities": true,
	"sys/capabilities-self": true, "sys/capabilities-accessor": true,
	"sys/ha-status": true, // Vault's Go client reads nodes at the top level
	// Vault answers these outside the envelope; OpenBao's newer names
	// (and its Go client) use the envelope's data: both are there.
	"sys/rekey/init": true, "sys/rekey/update": true,
	"sys/rekey-recovery-key/init": true, "sys/rekey-recovery-key/update": true,
	"sys/rotate/root/init": true, "sys/rotate/root/update": true,
	"sys/rotate/recovery/init": true, "sys/rotate/recovery/update": true,
	"sys/rekey/verify": true, "sys/rekey-recovery-key/verify": true,
	"sys/rotate/root/verify": true, "sys/rotate/recovery/verify": true,
	"sys/generate-root/attempt": true, "sys/generate-root/update": true,
	"sys/generate-root-token/attempt": true, "sys/generate-root-token/update": true,
}

// mountOnly keeps only the first path segment for logs: paths below a
// mount may name secrets.
func mountOnly(p string) string {
	if i := strings.IndexByte(p, '/'); i >= 0 {
		return p[:i+1]
	}
	return p
}

// decodeKey accepts an unseal key share in hex or base64.
func decodeKey(s string) ([]byte, error) {
	if b, err := hex.DecodeString(s); err == nil {
		return b, nil
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return nil, &logical.Error{Code: logical.CodeInvalidRequest, Message: "'key' must be a valid hex or base64 string"}
}

func (s *server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		respondError(w, http.StatusMethodNotAllowed, errors.New("unsupported method"))
		return
	}
	if f := r.URL.Query().Get("format"); f != "" && f != "prometheus" {
		respondError(w, http.StatusBadRequest, errors.New("only format=prometheus is supported"))
		return
	}
	if !s.opts.UnauthenticatedMetrics {
		// Reading metrics is a read on sys/metrics through the normal ACL.
		if err := s.core.Authorize(r.Context(), clientToken(r), r.RemoteAddr, "sys/metrics", logical.ReadOperation); err != nil {
			respondError(w, statusOf(err), err)
			return
		}
	}
	promhttp.HandlerFor(s.core.Metrics().Registry, promhttp.HandlerOpts{}).ServeHTTP(w, r)
}
