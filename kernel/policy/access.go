package policy

import "strings"

// grants reports whether the entry grants some capability, counting
// conditional grants as if their condition held (see HasAccessUnder).
func (e *entry) grants() bool {
	if e.base.caps&capDeny != 0 {
		return false
	}
	if e.base.caps != 0 {
		return true
	}
	for _, c := range e.conds {
		if c.rule.perms.caps&^capDeny != 0 {
			return true
		}
	}
	return false
}

// HasAccessUnder reports whether the ACL grants some capability on path or
// on a path below it. path is a mount path ("secret/"). It is Vault's
// hasMountAccess, which decides which mounts sys/internal/ui/mounts shows a
// token: the rule deciding for path itself, or any exact or "*" pattern
// starting with path, or any "+" pattern that can match a path under it,
// granting something other than deny.
//
// Conditions are not evaluated: a conditional grant counts, as Vault counts
// a grant whatever its parameter constraints. Visibility tells a token that
// a mount exists and what its options are, never its data, and a condition
// written against request.path could not be judged on the bare mount path
// anyway.
func (a *ACL) HasAccessUnder(path string) bool {
	if a == nil {
		return false
	}
	if a.root {
		return true
	}
	path = strings.TrimLeft(path, "/")
	if e := a.lookup(path, true); e != nil && e.grants() {
		return true
	}
	if !strings.HasSuffix(path, "/") {
		path += "/"
	}
	grants := func(e *entry) bool { return e.grants() }
	if a.exactTree.walkPrefix(path, grants) || a.prefix.walkPrefix(path, grants) {
		return true
	}
	if a.wild.size == 0 {
		return false
	}
	mount := strings.Split(strings.TrimSuffix(path, "/"), "/")
	return a.wild.root.grantsUnder(mount)
}

// grantsUnder reports whether a "+" pattern in the subtree at n can match
// the mount path or a path under it: its first len(mount) segments must
// match mount's ("+" matches any), or it ends earlier with a "*" segment
// that prefixes the corresponding mount segment.
func (n *segNode) grantsUnder(mount []string) bool {
	if len(mount) == 0 {
		// Every pattern below n matches a path under the mount, or (one
		// ending exactly here) the mount path without its slash, which
		// Vault counts too.
		return n.anyGrant()
	}
	seg := mount[0]
	if n.prefixTerms != nil {
		var buf [4]match[*entry]
		for _, m := range n.prefixTerms.prefixes(seg, buf[:0]) {
			if m.val.grants() {
				return true
			}
		}
	}
	if c := n.kids[seg]; c != nil && c.grantsUnder(mount[1:]) {
		return true
	}
	return n.plus != nil && n.plus.grantsUnder(mount[1:])
}

// anyGrant reports whether any pattern in the subtree at n grants.
func (n *segNode) anyGrant() bool {
	if n.term != nil && n.term.grants() {
		return true
	}
	if n.prefixTerms != nil && n.prefixTerms.root.walk((*entry).grants) {
		return true
	}
	for _, c := range n.kids {
		if c.anyGrant() {
			return true
		}
	}
	return n.plus != nil && n.plus.anyGrant()
}
