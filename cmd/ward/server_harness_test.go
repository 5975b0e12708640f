package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"sync"
	"testing"

	"github.com/openbao/openbao/api/v2"

	"github.com/wardproject/ward/kernel/config"
)

// testServer is a real Ward server in this process: real HTTP listener,
// raft storage (one node) in a temp dir, builtin plugins as real subprocesses.
type testServer struct {
	t       *testing.T
	dataDir string
	srv     *server
	addr    string
	logs    *syncBuffer
}

// syncBuffer collects the server's log lines for assertions.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type serverOpts struct {
	dataDir   string
	pluginDir string
	audits    []config.Audit
	apiAudit  bool // unsafe_allow_api_audit_creation
	wasmCache string
	storage   string // "raft" (default) or "pebble"
	// clusterAddr (raft): the cluster port, host:port.
	clusterAddr string
}

func startServer(t *testing.T, o serverOpts) *testServer {
	t.Helper()
	if o.dataDir == "" {
		o.dataDir = t.TempDir()
	}
	if o.storage == "" {
		o.storage = "raft"
	}
	cfg := &config.Config{
		Storage:         &config.Storage{Type: o.storage, Path: o.dataDir},
		Listeners:       []config.Listener{{Address: "127.0.0.1:0", TLSDisable: true}},
		PluginDirectory: o.pluginDir,
		WasmCacheDir:    o.wasmCache,
		LogLevel:        "warn",
		Audits:          o.audits,

		UnsafeAllowAPIAuditCreation: o.apiAudit,
		ClusterAddr:                 o.clusterAddr,
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	var out io.Writer = logs
	if testing.Verbose() {
		out = io.MultiWriter(logs, os.Stderr)
	}
	srv, err := newServer(cfg, out)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{t: t, dataDir: o.dataDir, srv: srv, addr: srv.addrs[0], logs: logs}
	t.Cleanup(ts.stop)
	return ts
}

func (ts *testServer) stop() {
	if ts.srv != nil {
		ts.srv.close()
		ts.srv = nil
	}
}

// client returns an OpenBao API client for the server, without retries so
// status codes are observed as sent.
func (ts *testServer) client(token string) *api.Client {
	ts.t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = ts.addr
	cfg.MaxRetries = 0
	c, err := api.NewClient(cfg)
	if err != nil {
		ts.t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

// initUnseal initializes with shares/threshold and unseals; returns keys and root token.
func (ts *testServer) initUnseal(shares, threshold int) ([]string, string) {
	ts.t.Helper()
	c := ts.client("")
	init, err := c.Sys().Init(&api.InitRequest{SecretShares: shares, SecretThreshold: threshold})
	if err != nil {
		ts.t.Fatal(err)
	}
	for i := 0; i < threshold; i++ {
		if _, err := c.Sys().Unseal(init.Keys[i]); err != nil {
			ts.t.Fatal(err)
		}
	}
	return init.Keys, init.RootToken
}

// devServer is an initialized, unsealed server with kv-v2 at secret/ and
// root token "root", like `ward server -dev`.
func devServer(t *testing.T, o serverOpts) (*testServer, *api.Client) {
	t.Helper()
	ts := startServer(t, o)
	if _, err := devSetup(context.Background(), ts.srv.core, "root", ""); err != nil {
		t.Fatal(err)
	}
	return ts, ts.client("root")
}
