package conformance

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"
)

// SuiteName names the suite in reports.
const SuiteName = "ward-plugin-conformance"

// Report is the outcome of a run.
type Report struct {
	Suite     string `json:"suite"`
	Version   string `json:"version"`
	Transport string `json:"transport"`
	Source    string `json:"source,omitempty"`
	// Plugin is what the plugin said about itself; nil when it did not start.
	Plugin *Info `json:"plugin,omitempty"`
	// Profiles are the profiles whose checks ran (core and the declared ones).
	Profiles []Profile     `json:"profiles"`
	Results  []Result      `json:"checks"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`
}

// Counts tallies results by status.
type Counts struct {
	Pass    int `json:"pass"`
	Fail    int `json:"fail"`
	Skip    int `json:"skip"`
	Blocked int `json:"blocked"`
}

// Counts tallies the report's results.
func (r *Report) Counts() Counts {
	var c Counts
	for _, res := range r.Results {
		switch res.Status {
		case StatusPass:
			c.Pass++
		case StatusFail:
			c.Fail++
		case StatusSkip:
			c.Skip++
		case StatusBlocked:
			c.Blocked++
		}
	}
	return c
}

// Passed reports whether the plugin conforms: no check failed or was
// blocked, and no check of a declared profile was skipped.
func (r *Report) Passed() bool {
	declared := map[Profile]bool{}
	for _, p := range r.Profiles {
		declared[p] = true
	}
	for _, res := range r.Results {
		switch {
		case res.Status == StatusFail, res.Status == StatusBlocked:
			return false
		case res.Status == StatusSkip && declared[res.Profile]:
			return false
		}
	}
	return len(r.Results) > 0
}

// Failed returns the IDs of the checks that failed, in run order.
func (r *Report) Failed() []string {
	var out []string
	for _, res := range r.Results {
		if res.Status == StatusFail {
			out = append(out, res.ID)
		}
	}
	return out
}

func (r *Report) verdict() string {
	if r.Passed() {
		return "PASS"
	}
	return "FAIL"
}

func (r *Report) pluginLine() string {
	if r.Plugin == nil {
		return "plugin did not start"
	}
	p := r.Plugin
	caps := "none"
	if len(p.Capabilities) > 0 {
		caps = strings.Join(p.Capabilities, ", ")
	}
	return fmt.Sprintf("%s %s, %s plugin of SDK %s, capabilities: %s", orDash(p.Name), orDash(p.Version), orDash(string(p.Type)), orDash(p.SDKVersion), caps)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// WriteText writes the report for a terminal: one line per check, the
// details of every failure, and a verdict.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Ward plugin conformance %s\nPlugin:    %s\nTransport: %s\n", r.Version, r.pluginLine(), r.Transport)
	if r.Source != "" {
		fmt.Fprintf(&b, "Tested:    %s\n", r.Source)
	}
	b.WriteString("\n")
	width := 0
	for _, res := range r.Results {
		width = max(width, len(res.ID))
	}
	for _, res := range r.Results {
		label := map[Status]string{StatusPass: "PASS", StatusFail: "FAIL", StatusSkip: "SKIP", StatusBlocked: "BLOCKED"}[res.Status]
		fmt.Fprintf(&b, "%-7s %-*s  %s", label, width, res.ID, res.Description)
		if res.Reason != "" {
			fmt.Fprintf(&b, "\n        %s: %s", strings.ToLower(label), res.Reason)
		}
		b.WriteString("\n")
		for _, f := range res.Failures {
			writeFailureText(&b, f)
		}
		for _, n := range res.Notes {
			fmt.Fprintf(&b, "        note: %s\n", indent(n, "              "))
		}
	}
	c := r.Counts()
	fmt.Fprintf(&b, "\n%s: %d passed, %d failed, %d blocked, %d skipped (capability not declared) in %s\n",
		r.verdict(), c.Pass, c.Fail, c.Blocked, c.Skip, r.Duration.Round(time.Millisecond))
	_, err := io.WriteString(w, b.String())
	return err
}

func writeFailureText(b *strings.Builder, f Failure) {
	fmt.Fprintf(b, "        - %s\n", indent(f.Message, "          "))
	if f.Request != nil {
		fmt.Fprintf(b, "          request:  %s\n", requestLine(f.Request))
	}
	if f.Expected != "" {
		fmt.Fprintf(b, "          expected: %s\n", indent(f.Expected, "                    "))
	}
	if f.Actual != "" {
		fmt.Fprintf(b, "          actual:   %s\n", indent(f.Actual, "                    "))
	}
}

func indent(s, prefix string) string { return strings.ReplaceAll(s, "\n", "\n"+prefix) }

// requestLine renders a request on one line.
func requestLine(r *RequestInfo) string {
	var b strings.Builder
	if r.ExistenceCheck {
		b.WriteString("existence check of ")
	}
	fmt.Fprintf(&b, "%s %q on mount %s", r.Operation, r.Path, r.Mount)
	if len(r.Data) > 0 {
		b.WriteString(" data=" + truncate(compactJSON(r.Data), 1000))
	}
	if r.Unauthenticated {
		b.WriteString(" (unauthenticated)")
	}
	if r.Deadline != "" {
		b.WriteString(" deadline=" + r.Deadline)
	}
	if r.Secret != nil {
		b.WriteString(" secret=" + truncate(compactJSON(r.Secret), 1000))
	}
	if r.Auth != nil {
		b.WriteString(" auth=" + truncate(compactJSON(r.Auth), 1000))
	}
	return b.String()
}

// WriteJSON writes the report as one JSON document, with "passed" and
// "counts" added.
func (r *Report) WriteJSON(w io.Writer) error {
	out := struct {
		*Report
		Passed bool   `json:"passed"`
		Counts Counts `json:"counts"`
	}{r, r.Passed(), r.Counts()}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// JUnit XML, as read by CI systems (the Jenkins/Ant schema).
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure"`
	Error     *junitMessage `xml:"error"`
	Skipped   *junitMessage `xml:"skipped"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Body    string `xml:",chardata"`
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// WriteJUnit writes the report as JUnit XML: one test suite, one test case
// per check (class name conformance.<profile>); failed checks carry a
// failure, blocked ones an error, skipped ones a skipped element.
func (r *Report) WriteJUnit(w io.Writer) error {
	name := SuiteName
	if r.Plugin != nil && r.Plugin.Name != "" {
		name += "/" + r.Plugin.Name
	}
	name += "/" + r.Transport
	s := junitSuite{Name: name, Time: seconds(r.Duration), Timestamp: r.Started.UTC().Format(time.RFC3339)}
	s.Properties = []junitProperty{{"conformance.version", r.Version}, {"transport", r.Transport}, {"verdict", r.verdict()}}
	if r.Plugin != nil {
		s.Properties = append(s.Properties, junitProperty{"plugin.name", r.Plugin.Name}, junitProperty{"plugin.type", string(r.Plugin.Type)},
			junitProperty{"plugin.version", r.Plugin.Version}, junitProperty{"plugin.sdk_version", r.Plugin.SDKVersion},
			junitProperty{"plugin.capabilities", strings.Join(r.Plugin.Capabilities, ",")})
	}
	for _, res := range r.Results {
		c := junitCase{Name: res.ID, Classname: "conformance." + string(res.Profile), Time: seconds(res.Duration)}
		switch res.Status {
		case StatusFail:
			var b strings.Builder
			for _, f := range res.Failures {
				writeFailureText(&b, f)
			}
			msg := res.Description
			if len(res.Failures) > 0 {
				msg = res.Failures[0].Message
			}
			c.Failure = &junitMessage{Message: msg, Type: "conformance", Body: b.String()}
			s.Failures++
		case StatusBlocked:
			c.Error = &junitMessage{Message: res.Reason, Type: "blocked"}
			s.Errors++
		case StatusSkip:
			c.Skipped = &junitMessage{Message: res.Reason}
			s.Skipped++
		}
		if len(res.Notes) > 0 {
			c.SystemOut = strings.Join(res.Notes, "\n")
		}
		s.Cases = append(s.Cases, c)
		s.Tests++
	}
	doc := junitSuites{Name: SuiteName, Tests: s.Tests, Failures: s.Failures, Errors: s.Errors, Skipped: s.Skipped,
		Time: s.Time, Suites: []junitSuite{s}}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
