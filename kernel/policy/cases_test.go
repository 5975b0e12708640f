package policy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

// TestCases runs the decision matrix in testdata/cases.txt (its header
// describes the format).
func TestCases(t *testing.T) {
	f, err := os.Open("testdata/cases.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	policies := map[string]*Policy{RootPolicyName: Root(), DefaultPolicyName: Default()}
	aclFor := func(t *testing.T, names string) *ACL {
		t.Helper()
		var ps []*Policy
		if names != "-" {
			for _, n := range strings.Split(names, ",") {
				p, ok := policies[n]
				if !ok {
					t.Fatalf("unknown policy %q", n)
				}
				ps = append(ps, p)
			}
		}
		a, err := NewACL(ps)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}

	sc := bufio.NewScanner(f)
	lineNo := 0
	checks := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if name, ok := strings.CutPrefix(line, "policy "); ok {
			start := lineNo
			var text strings.Builder
			for sc.Scan() {
				lineNo++
				if strings.TrimSpace(sc.Text()) == "end" {
					break
				}
				text.WriteString(sc.Text())
				text.WriteByte('\n')
			}
			p, err := Parse(name, text.String(), ParseOptions{})
			if err != nil {
				t.Fatalf("cases.txt:%d: policy %s: %v", start, name, err)
			}
			policies[name] = p
			continue
		}

		left, want, ok := strings.Cut(line, " => ")
		if !ok {
			t.Fatalf("cases.txt:%d: no \" => \" in %q", lineNo, line)
		}
		checks++
		where := fmt.Sprintf("cases.txt:%d: %s", lineNo, line)

		if rest, ok := strings.CutPrefix(left, "caps "); ok {
			names, path, _ := strings.Cut(rest, " ")
			got := strings.Join(aclFor(t, names).Capabilities(context.Background(), &Input{Path: path}), ",")
			if got != want {
				t.Errorf("%s: got %s", where, got)
			}
			continue
		}

		fields := strings.Fields(left)
		if len(fields) < 3 {
			t.Fatalf("%s: want <policies> <op> <path>", where)
		}
		in := &Input{Operation: logical.Operation(fields[1]), Path: fields[2]}
		sudo := false
		for i := 3; i < len(fields); i++ {
			switch fl := fields[i]; {
			case fl == "sudo":
				sudo = true
			case strings.HasPrefix(fl, "wrap="):
				d, err := time.ParseDuration(strings.TrimPrefix(fl, "wrap="))
				if err != nil {
					t.Fatalf("%s: %v", where, err)
				}
				in.WrapTTL = d
			case strings.HasPrefix(fl, "data="):
				// Data runs to the end of the left-hand side.
				raw := strings.TrimPrefix(strings.Join(fields[i:], " "), "data=")
				dec := json.NewDecoder(strings.NewReader(raw))
				dec.UseNumber()
				if err := dec.Decode(&in.Data); err != nil {
					t.Fatalf("%s: data: %v", where, err)
				}
				i = len(fields)
			default:
				t.Fatalf("%s: unknown flag %q", where, fl)
			}
		}
		d := aclFor(t, fields[0]).Authorize(context.Background(), in, sudo)
		var got string
		if d.Allowed {
			got = "allow"
		} else {
			got = "deny"
		}
		if got != want {
			t.Errorf("%s: got %s (pattern %q, capabilities %v, reason %q)", where, got, d.Pattern, d.Capabilities, d.DeniedReason)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if checks < 60 {
		t.Fatalf("only %d checks in cases.txt", checks)
	}
	t.Logf("%d checks", checks)
}
