package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openbao/openbao/api/v2"

	"github.com/wardproject/ward/plugins/secrets/database/pgtest"
)

// serverProcess is a real `ward server` process (this test binary running
// main), so that it can be killed with SIGKILL.
type serverProcess struct {
	cmd  *exec.Cmd
	addr string
}

func startServerProcess(t *testing.T, cfgPath, addr string) *serverProcess {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "server", "-config="+cfgPath)
	cmd.Env = append(os.Environ(), "WARD_TEST_RUN_MAIN=1")
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sp := &serverProcess{cmd: cmd, addr: "http://" + addr}
	t.Cleanup(sp.kill)
	c := sp.client(t, "")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := c.Sys().SealStatus(); err == nil {
			return sp
		}
		if time.Now().After(deadline) {
			t.Fatalf("server process did not come up on %s", addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (sp *serverProcess) kill() {
	if sp.cmd.Process != nil && sp.cmd.ProcessState == nil {
		_ = sp.cmd.Process.Signal(syscall.SIGKILL)
		_ = sp.cmd.Wait()
	}
}

func (sp *serverProcess) client(t *testing.T, token string) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = sp.addr
	cfg.MaxRetries = 0
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestLeasesSurviveSIGKILL: with 1,000 dynamic PostgreSQL credentials
// outstanding, the server is killed with SIGKILL, restarted and unsealed;
// every lease is still there, expires (not before its time) and its
// PostgreSQL user is dropped within maxLateness of its expiry. The test
// logs how late the drops were.
func TestLeasesSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes and 1,000 PostgreSQL roles")
	}
	ctx := context.Background()
	pg := pgtest.New(t)
	admin, adminPW := pg.NewSuperuser(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	cfgPath := filepath.Join(dir, "ward.hcl")
	cfg := fmt.Sprintf("storage \"pebble\" { path = %q }\nlistener \"tcp\" {\n  address = %q\n  tls_disable = true\n}\n",
		filepath.Join(dir, "data"), addr)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	sp := startServerProcess(t, cfgPath, addr)
	init, err := sp.client(t, "").Sys().Init(&api.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sp.client(t, "").Sys().Unseal(init.Keys[0]); err != nil {
		t.Fatal(err)
	}
	root := sp.client(t, init.RootToken)
	if err := root.Sys().Mount("database", &api.MountInput{Type: "database"}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("database/config/pg", map[string]any{
		"plugin_name": "postgresql-database-plugin", "connection_url": pg.TemplateURL(),
		"username": admin, "password": adminPW, "allowed_roles": "*",
	}); err != nil {
		t.Fatal(err)
	}
	const ttl = 40 * time.Second
	if _, err := root.Logical().Write("database/roles/tmp", map[string]any{
		"db_name":             "pg",
		"creation_statements": `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`,
		"default_ttl":         ttl.String(), "max_ttl": "1h",
	}); err != nil {
		t.Fatal(err)
	}

	// 1,000 leases, 8 clients. Each lease's expiry lies between the time
	// its request was sent and the time its response arrived, plus its TTL.
	const n = 1000
	var (
		mu       sync.Mutex
		expires  = map[string]time.Time{} // PostgreSQL user -> latest possible expiry
		earliest = map[string]time.Time{} // PostgreSQL user -> earliest possible expiry
		wg       sync.WaitGroup
		errs     = make(chan error, n)
	)
	start := time.Now()
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				sent := time.Now()
				s, err := root.Logical().Read("database/creds/tmp")
				if err != nil {
					errs <- err
					return
				}
				user, d := s.Data["username"].(string), time.Duration(s.LeaseDuration)*time.Second
				mu.Lock()
				expires[user], earliest[user] = time.Now().Add(d), sent.Add(d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("issued %d credentials in %s", len(expires), time.Since(start).Round(time.Millisecond))

	// Crash, restart, unseal.
	sp.kill()
	sp = startServerProcess(t, cfgPath, addr)
	if _, err := sp.client(t, "").Sys().Unseal(init.Keys[0]); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed, restarted and unsealed %s after the first issue", time.Since(start).Round(time.Millisecond))
	if leases, err := sp.client(t, init.RootToken).Logical().List("sys/leases/lookup/database/creds/tmp/"); err != nil ||
		leases == nil || len(leases.Data["keys"].([]any)) != n {
		t.Fatalf("leases after restart: %v %v", leases, err)
	}

	// Watch pg_roles: every user is dropped, none early; how late is logged.
	const poll = 100 * time.Millisecond
	dropped := map[string]time.Time{}
	conn, err := pg.Connect(ctx, pgtest.SuperUser, pg.SuperPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var last time.Time
	for _, e := range expires {
		last = maxTime(last, e)
	}
	for len(dropped) < n && time.Now().Before(last.Add(30*time.Second)) {
		rows, err := conn.Query(ctx, "SELECT rolname FROM pg_roles")
		if err != nil {
			t.Fatal(err)
		}
		present := map[string]bool{}
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				t.Fatal(err)
			}
			present[name] = true
		}
		rows.Close()
		now := time.Now()
		for user := range expires {
			if _, seen := dropped[user]; !seen && !present[user] {
				dropped[user] = now
			}
		}
		time.Sleep(poll)
	}
	if len(dropped) != n {
		t.Fatalf("%d of %d PostgreSQL users were not dropped", n-len(dropped), n)
	}
	// lateness: drop time minus latest possible expiry (a lower bound of
	// how late the drop was); upper: minus earliest possible expiry (an
	// upper bound, plus up to one poll).
	var lateness, upper []time.Duration
	for user, exp := range expires {
		lateness = append(lateness, dropped[user].Sub(exp))
		upper = append(upper, dropped[user].Sub(earliest[user]))
	}
	slices.Sort(lateness)
	slices.Sort(upper)
	summary := func(d []time.Duration) string {
		r := func(x time.Duration) time.Duration { return x.Round(time.Millisecond) }
		return fmt.Sprintf("min %s, median %s, p99 %s, max %s", r(d[0]), r(d[len(d)/2]), r(d[len(d)*99/100]), r(d[len(d)-1]))
	}
	t.Logf("drop time minus latest possible expiry: %s", summary(lateness))
	t.Logf("drop time minus earliest possible expiry: %s", summary(upper))
	worstEarly, worstLate := lateness[0], upper[len(upper)-1]
	// A drop can precede the bound by at most the request's own latency.
	if worstEarly < -3*time.Second {
		t.Errorf("a user was dropped %s before its lease expired", -worstEarly)
	}
	// The target is ±1 s, met on a quiet 2-core machine with or without
	// the race detector (max ~0.5 s, see docs/operations.md). Under -race
	// with the 2 cores oversubscribed fourfold, the worst seen was 3.5 s;
	// maxLateness leaves room above that for a shared CI machine.
	if worstLate > maxLateness {
		t.Errorf("a user was dropped up to %s after its lease expired, want at most %s", worstLate, maxLateness)
	}
}

// maxLateness bounds how late after its expiry TestLeasesSurviveSIGKILL
// accepts a PostgreSQL user to be dropped.
const maxLateness = 8 * time.Second

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
