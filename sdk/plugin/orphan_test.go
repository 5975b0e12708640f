package plugin

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestExitWhenOrphaned runs this test binary as a "server" that starts a
// "plugin" child and is then SIGKILLed: the child must exit on its own.
func TestExitWhenOrphaned(t *testing.T) {
	switch os.Getenv("WARD_ORPHAN_TEST") {
	case "plugin":
		exitWhenOrphaned(20 * time.Millisecond)
		time.Sleep(time.Minute)
		os.Exit(0) // not orphaned in time: the test fails
	case "server":
		cmd := exec.Command(os.Args[0], "-test.run=^TestExitWhenOrphaned$")
		cmd.Env = append(os.Environ(), "WARD_ORPHAN_TEST=plugin", ServerPIDEnv+"="+strconv.Itoa(os.Getpid()))
		if err := cmd.Start(); err != nil {
			os.Exit(1)
		}
		os.Stdout.WriteString(strconv.Itoa(cmd.Process.Pid) + "\n")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	server := exec.Command(os.Args[0], "-test.run=^TestExitWhenOrphaned$")
	server.Env = append(os.Environ(), "WARD_ORPHAN_TEST=server")
	out, err := server.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		server.Process.Kill()
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		server.Process.Kill()
		t.Fatal(err)
	}
	if err := server.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	server.Wait()
	// The plugin is not our child: signal 0 tells whether it still exists,
	// and /proc whether it is only a zombie left for its new parent to reap.
	running := func() bool {
		if syscall.Kill(pid, 0) != nil {
			return false
		}
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return syscall.Kill(pid, 0) == nil
		}
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		return len(fields) == 0 || fields[0] != "Z"
	}
	deadline := time.Now().Add(10 * time.Second)
	for running() {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			stat, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
			t.Fatalf("the plugin process outlived its server by 10 s: %s", stat)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
