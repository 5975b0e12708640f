package policy

import (
	"errors"
	"strings"
)

type patternKind uint8

const (
	kindExact    patternKind = iota // "sys/mounts"
	kindPrefix                      // "secret/*": literal is the prefix
	kindWildcard                    // has a "+" segment, may end in "*"
)

// pattern is a compiled path pattern.
type pattern struct {
	kind patternKind
	// literal is the exact path (kindExact), the prefix before the "*"
	// (kindPrefix), or the text before the first "+" segment (kindWildcard).
	literal string
	// wcPath is the pattern without its trailing "*": what precedence rules
	// (4) and (5) compare.
	wcPath string
	// segs are wcPath's "/"-separated segments (kindWildcard only). A "+"
	// segment matches any one path segment, including an empty one; the
	// last segment of a pattern ending in "*" matches any path segment it
	// prefixes, and everything after it; other segments match exactly. A
	// pattern without "*" needs exactly as many segments as the path. These
	// are Vault's semantics (vault/acl.go CheckAllowedFromNonExactPaths);
	// segTrie implements them.
	segs []string
	// isPrefix: the pattern ends in "*".
	isPrefix bool
	// wildcards counts the "+" segments.
	wildcards int
	// firstWC is the byte offset of the first "+" or "*": precedence
	// rule (1). For kindExact it is len(pattern) and unused.
	firstWC   int
	templated bool
}

// compilePattern validates a path pattern (already stripped of its leading
// "/"). "*" is only valid as the last character; "+" is a wildcard when it
// is a whole segment (anywhere else it is a literal character, as in Vault);
// "+*" is invalid (Vault rejects it too).
func compilePattern(s string) (pattern, error) {
	p := pattern{templated: strings.Contains(s, "{{")}
	if i := strings.IndexByte(s, '*'); i >= 0 && i != len(s)-1 {
		return p, errors.New("invalid glob: \"*\" is only allowed at the end of a pattern")
	}
	if strings.Contains(s, "+*") {
		return p, errors.New("invalid use of wildcards (\"+*\" is forbidden)")
	}
	wc, isPrefix := strings.CutSuffix(s, "*")
	p.wcPath, p.isPrefix = wc, isPrefix
	segs := strings.Split(wc, "/")
	first := -1
	off := 0
	for _, seg := range segs {
		if seg == "+" {
			if first < 0 {
				first = off
			}
			p.wildcards++
		}
		off += len(seg) + 1
	}
	switch {
	case p.wildcards > 0:
		p.kind = kindWildcard
		p.segs = segs
		p.literal = wc[:first]
		p.firstWC = first
	case isPrefix:
		p.kind = kindPrefix
		p.literal = wc
		p.firstWC = len(wc)
	default:
		p.kind = kindExact
		p.literal = s
		p.firstWC = len(s)
	}
	return p, nil
}

// morePrecise reports whether a takes precedence over b when both are
// non-exact patterns matching the same path. These are Vault's rules
// (https://developer.hashicorp.com/vault/docs/concepts/policies#priority-matching,
// implemented in vault/acl.go CheckAllowedFromNonExactPaths), in order:
//
//  1. the pattern whose first wildcard ("+" or "*") comes later wins;
//  2. then the one that does not end in "*";
//  3. then the one with fewer "+" segments;
//  4. then the longer one (compared without the trailing "*");
//  5. then the lexicographically greater one.
//
// Exact patterns are not ranked here: an exact match always wins.
func morePrecise(a, b *pattern) bool {
	if a.firstWC != b.firstWC {
		return a.firstWC > b.firstWC
	}
	if a.isPrefix != b.isPrefix {
		return !a.isPrefix
	}
	if a.wildcards != b.wildcards {
		return a.wildcards < b.wildcards
	}
	if len(a.wcPath) != len(b.wcPath) {
		return len(a.wcPath) > len(b.wcPath)
	}
	return a.wcPath > b.wcPath
}
