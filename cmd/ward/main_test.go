package main

import (
	"os"
	"testing"
)

// TestMain lets the test binary stand in for the ward binary when the
// server re-executes itself to run a builtin plugin (`plugin exec NAME`):
// builtin catalog entries point at os.Executable(), which in tests is this
// binary.
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "plugin" && os.Args[2] == "exec" {
		os.Exit(run(os.Args[1:]))
	}
	// Crash tests start real server processes from this binary.
	if os.Getenv("WARD_TEST_RUN_MAIN") == "1" {
		os.Exit(run(os.Args[1:]))
	}
	code := m.Run()
	if wasmGuests.dir != "" {
		os.RemoveAll(wasmGuests.dir)
	}
	os.Exit(code)
}
