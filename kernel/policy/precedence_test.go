package policy

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
)

// vaultLookup is a deliberately naive transcription of Vault's algorithm
// (vault/acl.go AllowOperation + CheckAllowedFromNonExactPaths): exact
// match, else the longest "*" prefix plus every matching "+" pattern, sorted
// with Vault's comparator, last wins. It is the oracle for the indexed
// lookup.
func vaultLookup(patterns []string, path string, list bool) string {
	exact := map[string]bool{}
	prefixes := map[string]string{} // prefix -> pattern
	var wild []string
	for _, p := range patterns {
		p = strings.TrimPrefix(p, "/") // as parsing does
		switch {
		case strings.Contains("/"+p, "/+/") || strings.HasSuffix("/"+p, "/+") || strings.HasSuffix("/"+p, "/+*"):
			wild = append(wild, p)
		case strings.HasSuffix(p, "*"):
			prefixes[strings.TrimSuffix(p, "*")] = p
		default:
			exact[p] = true
		}
	}
	if exact[path] {
		return path
	}
	if list && exact[strings.TrimSuffix(path, "/")] {
		return strings.TrimSuffix(path, "/")
	}
	nonExact := func(path string) string {
		type cand struct {
			first, wildcards int
			isPrefix         bool
			wcPath, pattern  string
		}
		var cands []cand
		best := ""
		for pre, pat := range prefixes {
			if strings.HasPrefix(path, pre) && len(pre) >= len(best) {
				best = pre
				cands = cands[:0]
				cands = append(cands, cand{first: len(pre), isPrefix: true, wcPath: pre, pattern: pat})
			}
		}
		pathParts := strings.Split(path, "/")
	next:
		for _, full := range wild {
			c := cand{first: strings.Index(full, "+"), pattern: full}
			cur := full
			if strings.HasSuffix(cur, "*") {
				c.isPrefix = true
				cur = strings.TrimSuffix(cur, "*")
			}
			c.wcPath = cur
			parts := strings.Split(cur, "/")
			if len(pathParts) < len(parts) || (!c.isPrefix && len(parts) != len(pathParts)) {
				continue
			}
			for i, ap := range parts {
				switch {
				case ap == "+":
					c.wildcards++
				case ap == pathParts[i]:
				case c.isPrefix && i == len(parts)-1 && strings.HasPrefix(pathParts[i], ap):
				default:
					continue next
				}
			}
			cands = append(cands, c)
		}
		if len(cands) == 0 {
			return ""
		}
		sort.Slice(cands, func(i, j int) bool {
			a, b := cands[i], cands[j]
			if a.first != b.first {
				return a.first < b.first
			}
			if a.isPrefix != b.isPrefix {
				return a.isPrefix
			}
			if a.wildcards != b.wildcards {
				return a.wildcards > b.wildcards
			}
			if len(a.wcPath) != len(b.wcPath) {
				return len(a.wcPath) < len(b.wcPath)
			}
			return a.wcPath < b.wcPath
		})
		return cands[len(cands)-1].pattern
	}
	if list && strings.HasSuffix(path, "/") {
		if p := nonExact(strings.TrimSuffix(path, "/")); p != "" {
			return p
		}
	}
	return nonExact(path)
}

// TestLookupMatchesVault compares the indexed lookup with the oracle on
// random pattern sets and paths.
func TestLookupMatchesVault(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	segs := []string{"a", "b", "ab", "ba", "+", "+", ""}
	randPattern := func() string {
		n := 1 + rng.IntN(4)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = segs[rng.IntN(len(segs))]
		}
		p := strings.Join(parts, "/")
		switch rng.IntN(3) {
		case 0:
			if !strings.HasSuffix(p, "+") {
				p += "*"
			}
		case 1:
			p += "/*"
		}
		return p
	}
	pathSegs := []string{"a", "b", "ab", "ba", "abc", "x", ""}
	randPath := func() string {
		n := 1 + rng.IntN(5)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = pathSegs[rng.IntN(len(pathSegs))]
		}
		return strings.Join(parts, "/")
	}

	compared := 0
	for round := range 1000 {
		seen := map[string]bool{}
		var patterns []string
		var text strings.Builder
		for range 1 + rng.IntN(30) {
			p := randPattern()
			if seen[p] {
				continue
			}
			seen[p] = true
			patterns = append(patterns, p)
			fmt.Fprintf(&text, "path %q { capabilities = [\"read\"] }\n", p)
		}
		pol, err := Parse("r", text.String(), ParseOptions{})
		if err != nil {
			t.Fatalf("round %d: %v\n%s", round, err, text.String())
		}
		acl, err := NewACL([]*Policy{pol})
		if err != nil {
			t.Fatal(err)
		}
		for range 40 {
			path := randPath()
			for _, list := range []bool{false, true} {
				want := vaultLookup(patterns, path, list)
				got := ""
				if e := acl.lookup(path, list); e != nil {
					got = e.pattern
				}
				if got != want {
					t.Fatalf("round %d: patterns %q, path %q, list %v: got %q, Vault's algorithm picks %q", round, patterns, path, list, got, want)
				}
				compared++
			}
		}
	}
	t.Logf("%d lookups compared", compared)
}
