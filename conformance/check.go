package conformance

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Version is the version of this suite. Conformance v1 tests plugins built
// with SDK major 1 (go-plugin protocol 1, WASM ABI v1).
const Version = "v1"

// SDKMajor is the SDK major version conformance v1 tests.
const SDKMajor = 1

// Profile is a group of checks. Every plugin is held to ProfileCore; a
// plugin declares the others it implements in its capabilities
// (sdk/plugin.ServeOpts.Capabilities, wasmguest.ServeOpts.Capabilities).
type Profile string

// The profiles of conformance v1.
const (
	// ProfileCore: the plugin contract every plugin keeps.
	ProfileCore Profile = "core"
	// ProfileKV: a secret engine that stores JSON objects at paths.
	ProfileKV Profile = "kv"
	// ProfileLeasing: a secret engine whose secrets carry leases it renews
	// and revokes.
	ProfileLeasing Profile = "leasing"
	// ProfileAuthLogin: an auth method whose login answers an Auth and
	// whose tokens can be renewed.
	ProfileAuthLogin Profile = "auth-login"
)

// Profiles lists the profiles of this suite in report order.
func Profiles() []Profile {
	return []Profile{ProfileCore, ProfileKV, ProfileLeasing, ProfileAuthLogin}
}

// Check is one conformance check.
type Check struct {
	// ID is stable: a check is never renamed and an ID is never reused
	// (golden.txt records every ID).
	ID      string
	Profile Profile
	// Since is the SDK release that added the check.
	Since       string
	Description string
	Run         func(ctx context.Context, t *T)
}

// Checks returns every check of the suite, in the order they run.
func Checks() []Check { return slices.Clone(registry) }

// Status is the outcome of a check.
type Status string

// Outcomes of a check. A report passes when no check failed or was
// blocked and no check of a declared profile was skipped.
const (
	StatusPass Status = "pass"
	StatusFail Status = "fail"
	// StatusSkip: the check's profile is not among the plugin's
	// capabilities ("skipped: capability not declared").
	StatusSkip Status = "skip"
	// StatusBlocked: the check could not run because something it needs
	// failed first (the plugin did not start, a mount could not be set
	// up); the reason names it.
	StatusBlocked Status = "blocked"
)

// Result is what one check found.
type Result struct {
	ID          string        `json:"id"`
	Profile     Profile       `json:"profile"`
	Since       string        `json:"since"`
	Description string        `json:"description"`
	Status      Status        `json:"status"`
	Reason      string        `json:"reason,omitempty"` // why it was skipped or blocked
	Failures    []Failure     `json:"failures,omitempty"`
	Notes       []string      `json:"notes,omitempty"`
	Duration    time.Duration `json:"duration_ns"`
}

// Failure is one violation a check found: what was sent, what the suite
// expected and what the plugin answered.
type Failure struct {
	Message  string       `json:"message"`
	Request  *RequestInfo `json:"request,omitempty"`
	Expected string       `json:"expected,omitempty"`
	Actual   string       `json:"actual,omitempty"`
}

// RequestInfo describes a request the suite sent.
type RequestInfo struct {
	Mount           string         `json:"mount"`
	Operation       string         `json:"operation"`
	Path            string         `json:"path"`
	Data            map[string]any `json:"data,omitempty"`
	Unauthenticated bool           `json:"unauthenticated,omitempty"`
	ExistenceCheck  bool           `json:"existence_check,omitempty"`
	// Deadline is the request's deadline relative to when it was sent.
	Deadline string         `json:"deadline,omitempty"`
	Secret   map[string]any `json:"secret,omitempty"`
	Auth     map[string]any `json:"auth,omitempty"`
}

// T is handed to a check's Run: it records failures and notes.
type T struct {
	s   *session
	res *Result
}

// Failf records a failure without a request.
func (t *T) Failf(format string, args ...any) {
	t.res.Failures = append(t.res.Failures, Failure{Message: fmt.Sprintf(format, args...)})
}

// Fail records a failure.
func (t *T) Fail(f Failure) { t.res.Failures = append(t.res.Failures, f) }

// Notef records an observation that is not a failure.
func (t *T) Notef(format string, args ...any) {
	t.res.Notes = append(t.res.Notes, fmt.Sprintf(format, args...))
}

// block marks the check blocked; the caller returns.
func (t *T) block(format string, args ...any) {
	t.res.Status = StatusBlocked
	t.res.Reason = fmt.Sprintf(format, args...)
}

// failX records a failure about one exchange.
func (t *T) failX(x *exchange, expected, format string, args ...any) {
	t.Fail(Failure{Message: fmt.Sprintf(format, args...), Request: x.info(), Expected: expected, Actual: x.actual()})
}

// maxFailures bounds the failures one check reports; the rest are counted.
const maxFailures = 20

func (r *Result) trim() {
	if n := len(r.Failures); n > maxFailures {
		r.Failures = append(r.Failures[:maxFailures], Failure{Message: fmt.Sprintf("… and %d more failures of this check", n-maxFailures)})
	}
}
