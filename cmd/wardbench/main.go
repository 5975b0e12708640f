// Command wardbench measures KV v2 throughput and latency, then AppRole
// login throughput, over HTTP against
// a Ward dev server it starts itself (or one given by -addr), with N
// concurrent clients: the figures `make bench` reports.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	var (
		ward     = flag.String("ward", "bin/ward", "ward binary to start as a dev server")
		addr     = flag.String("addr", "", "use a running server at this address instead (http://host:port)")
		token    = flag.String("token", "root", "token for -addr")
		clients  = flag.Int("clients", 32, "concurrent clients")
		duration = flag.Duration("duration", 10*time.Second, "duration of each phase")
		keys     = flag.Int("keys", 1000, "distinct secrets")
	)
	flag.Parse()
	if err := run(*ward, *addr, *token, *clients, *duration, *keys); err != nil {
		fmt.Fprintln(os.Stderr, "wardbench:", err)
		os.Exit(1)
	}
}

func run(ward, addr, token string, clients int, duration time.Duration, keys int) error {
	if addr == "" {
		a, stop, err := startDev(ward)
		if err != nil {
			return err
		}
		defer stop()
		addr = a
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients * 2, MaxConnsPerHost: clients * 2}}
	payload := []byte(`{"data":{"username":"app","password":"correct-horse-battery-staple","n":"` + string(bytes.Repeat([]byte("x"), 64)) + `"}}`)

	write := func(i int) error {
		req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/v1/secret/data/bench/k%d", addr, i%keys), bytes.NewReader(payload))
		return doReq(hc, req, token, 200)
	}
	// The measured phases use raw connections with pre-built requests.
	writes := make([][]byte, keys)
	reads := make([][]byte, keys)
	for i := range keys {
		path := fmt.Sprintf("/v1/secret/data/bench/k%d", i)
		writes[i] = formatRequest("POST", path, token, payload)
		reads[i] = formatRequest("GET", path, token, nil)
	}
	// Seed every key so reads always hit.
	for i := 0; i < keys; i++ {
		if err := write(i); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}
	fmt.Printf("KV v2 over HTTP, %d clients, %s per phase, %d keys, one-node raft storage (synced log)\n", clients, duration, keys)
	var readOps int64
	for _, phase := range []struct {
		name string
		reqs [][]byte
	}{{"write", writes}, {"read", reads}} {
		ops, p50, p99, errs := load(addr, clients, duration, phase.reqs)
		fmt.Printf("%-6s %9.0f ops/s   p50 %7.2f ms   p99 %7.2f ms   errors %d\n", phase.name,
			float64(ops)/duration.Seconds(), ms(p50), ms(p99), errs)
		readOps = ops
	}
	if err := benchAudit(hc, addr, token, clients, duration, reads, readOps); err != nil {
		return err
	}
	return benchAppRole(hc, addr, token, clients, duration)
}

// benchAudit repeats the read phase with a file audit device enabled (a dev
// server allows creating one through the API) and reports the cost.
func benchAudit(hc *http.Client, addr, token string, clients int, duration time.Duration, reads [][]byte, baseline int64) error {
	dir, err := os.MkdirTemp("", "wardbench-audit-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	body, _ := json.Marshal(map[string]any{"type": "file", "options": map[string]string{"file_path": dir + "/audit.log"}})
	if _, err := apiCall(hc, addr, token, "PUT", "sys/audit/bench", string(body)); err != nil {
		return fmt.Errorf("enable the audit device: %w", err)
	}
	defer apiCall(hc, addr, token, "DELETE", "sys/audit/bench", "")
	ops, p50, p99, errs := load(addr, clients, duration, reads)
	cost := 0.0
	if baseline > 0 {
		cost = 100 * (1 - float64(ops)/float64(baseline))
	}
	fmt.Printf("%-6s %9.0f ops/s   p50 %7.2f ms   p99 %7.2f ms   errors %d   (file audit device on: %.1f%% fewer reads/s)\n",
		"read+a", float64(ops)/duration.Seconds(), ms(p50), ms(p99), errs, cost)
	return nil
}

// benchAppRole measures AppRole logins: each one is a plugin round trip
// plus a token minted in synced storage.
func benchAppRole(hc *http.Client, addr, token string, clients int, duration time.Duration) error {
	steps := []struct{ method, path, body string }{
		{"POST", "sys/auth/bench-approle", `{"type":"approle"}`},
		{"POST", "auth/bench-approle/role/bench", `{"token_policies":"default","token_ttl":"10m"}`},
	}
	for _, st := range steps {
		if _, err := apiCall(hc, addr, token, st.method, st.path, st.body); err != nil {
			return fmt.Errorf("approle setup: %w", err)
		}
	}
	rid, err := apiCall(hc, addr, token, "GET", "auth/bench-approle/role/bench/role-id", "")
	if err != nil {
		return err
	}
	sid, err := apiCall(hc, addr, token, "POST", "auth/bench-approle/role/bench/secret-id", "{}")
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]any{"role_id": rid["role_id"], "secret_id": sid["secret_id"]})
	req := formatRequest("POST", "/v1/auth/bench-approle/login", "", body)
	fmt.Printf("AppRole login over HTTP, %d clients, %s\n", clients, duration)
	ops, p50, p99, errs := load(addr, clients, duration, [][]byte{req})
	fmt.Printf("%-6s %9.0f ops/s   p50 %7.2f ms   p99 %7.2f ms   errors %d\n", "login",
		float64(ops)/duration.Seconds(), ms(p50), ms(p99), errs)
	return nil
}

// apiCall sends one request and returns the envelope's data.
func apiCall(hc *http.Client, addr, token, method, path, body string) (map[string]any, error) {
	req, _ := http.NewRequest(method, addr+"/v1/"+path, strings.NewReader(body))
	req.Header.Set("X-Vault-Token", token)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	var env struct {
		Data map[string]any `json:"data"`
	}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &env); err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return env.Data, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func doReq(hc *http.Client, req *http.Request, token string, want int) error {
	req.Header.Set("X-Vault-Token", token)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, body)
	}
	return nil
}

// load runs clients connections for d, each sending the requests in turn,
// and returns the successful operations and their latency percentiles.
func load(addr string, clients int, d time.Duration, reqs [][]byte) (ops int64, p50, p99 time.Duration, errs int64) {
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		all     []time.Duration
		counter atomic.Int64
		nerr    atomic.Int64
	)
	deadline := time.Now().Add(d)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := dialRaw(addr)
			if err != nil {
				nerr.Add(1)
				fmt.Fprintln(os.Stderr, "dial:", err)
				return
			}
			defer conn.c.Close()
			lat := make([]time.Duration, 0, 1<<14)
			for time.Now().Before(deadline) {
				i := int(counter.Add(1))
				t0 := time.Now()
				status, err := conn.do(reqs[i%len(reqs)])
				if err != nil || status != 200 {
					if nerr.Add(1) == 1 {
						fmt.Fprintln(os.Stderr, "first error:", status, err)
					}
					if err != nil {
						return
					}
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(all) == 0 {
		return 0, 0, 0, nerr.Load()
	}
	slices.Sort(all)
	return int64(len(all)), all[len(all)/2], all[len(all)*99/100], nerr.Load()
}

// startDev runs `ward server -dev` on a free loopback port.
func startDev(ward string) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	listen := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(ward, "server", "-dev", "-dev-root-token-id=root", "-dev-listen-address="+listen)
	cmd.Env = append(os.Environ(), "VAULT_DEV_ROOT_TOKEN_ID=")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }
	addr := "http://" + listen
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		resp, err := http.Get(addr + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				// The dev server mounts secret/ right after unsealing.
				req, _ := http.NewRequest(http.MethodGet, addr+"/v1/sys/mounts/secret", nil)
				if doReq(http.DefaultClient, req, "root", 200) == nil {
					return addr, stop, nil
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	return "", nil, fmt.Errorf("dev server did not become ready at %s", addr)
}
