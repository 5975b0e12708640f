package plugin

import (
	"os"
	"strconv"
	"time"
)

// ServerPIDEnv names the environment variable in which the server tells a
// plugin process its process ID.
const ServerPIDEnv = "WARD_SERVER_PID"

// orphanCheckInterval is how often a plugin process checks that the server
// that started it is still its parent.
const orphanCheckInterval = time.Second

// exitWhenOrphaned ends the plugin process once the server that started it
// is gone without stopping it (SIGKILL, a crash): the process is then
// re-parented, to init or a subreaper. A plugin must not outlive its server:
// it would keep its database connections and memory, and the restarted
// server starts a new process for its mounts anyway. (Linux's Pdeathsig is
// tied to the thread that forked, which Go does not pin: golang/go#27505.)
//
// The parent to expect comes from ServerPIDEnv, so that a server that died
// while the plugin was starting is noticed too; without it (a plugin run
// by another harness), the parent at start.
func exitWhenOrphaned(interval time.Duration) {
	parent := os.Getppid()
	if pid, err := strconv.Atoi(os.Getenv(ServerPIDEnv)); err == nil && pid > 0 {
		parent = pid
	}
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if os.Getppid() != parent {
				os.Exit(3)
			}
			<-t.C
		}
	}()
}
