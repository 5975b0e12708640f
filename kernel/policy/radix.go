package policy

// radix is a compressed byte trie answering "which stored keys are prefixes
// of s" in O(len(s)), however many keys it holds. It is built once by
// NewACL and read concurrently afterwards (reads do not mutate it).
type radix[T any] struct {
	root rnode[T]
	size int
}

type rnode[T any] struct {
	label string // the edge from the parent; never empty except at the root
	has   bool
	val   T
	kids  []*rnode[T] // sorted by label[0], which is distinct among siblings
}

// child returns the child whose label starts with b.
func (n *rnode[T]) child(b byte) (int, *rnode[T]) {
	lo, hi := 0, len(n.kids)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if n.kids[m].label[0] < b {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(n.kids) && n.kids[lo].label[0] == b {
		return lo, n.kids[lo]
	}
	return lo, nil
}

// insert stores v under key, replacing any previous value.
func (t *radix[T]) insert(key string, v T) {
	n := &t.root
	for {
		if key == "" {
			if !n.has {
				t.size++
			}
			n.has, n.val = true, v
			return
		}
		i, c := n.child(key[0])
		if c == nil {
			leaf := &rnode[T]{label: key, has: true, val: v}
			n.kids = append(n.kids, nil)
			copy(n.kids[i+1:], n.kids[i:])
			n.kids[i] = leaf
			t.size++
			return
		}
		l := commonPrefix(key, c.label)
		if l < len(c.label) {
			// Split c's edge at l.
			mid := &rnode[T]{label: c.label[:l], kids: []*rnode[T]{c}}
			c.label = c.label[l:]
			n.kids[i] = mid
			c = mid
		}
		key = key[l:]
		n = c
	}
}

func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// match is one stored key that prefixes the searched string.
type match[T any] struct {
	n   int // the key's length
	val T
}

// prefixes appends to buf every stored key that is a prefix of s, shortest
// first.
func (t *radix[T]) prefixes(s string, buf []match[T]) []match[T] {
	n := &t.root
	depth := 0
	for {
		if n.has {
			buf = append(buf, match[T]{depth, n.val})
		}
		if depth == len(s) {
			return buf
		}
		_, c := n.child(s[depth])
		if c == nil || len(s)-depth < len(c.label) || s[depth:depth+len(c.label)] != c.label {
			return buf
		}
		depth += len(c.label)
		n = c
	}
}

// longestPrefix returns the longest stored key that is a prefix of s.
func (t *radix[T]) longestPrefix(s string) (n int, v T, ok bool) {
	node := &t.root
	depth := 0
	for {
		if node.has {
			n, v, ok = depth, node.val, true
		}
		if depth == len(s) {
			return n, v, ok
		}
		_, c := node.child(s[depth])
		if c == nil || len(s)-depth < len(c.label) || s[depth:depth+len(c.label)] != c.label {
			return n, v, ok
		}
		depth += len(c.label)
		node = c
	}
}

// walkPrefix calls fn for every stored key that starts with prefix (in no
// particular order) until fn returns true, and reports whether it did.
func (t *radix[T]) walkPrefix(prefix string, fn func(T) bool) bool {
	n := &t.root
	rest := prefix
	for rest != "" {
		_, c := n.child(rest[0])
		if c == nil {
			return false
		}
		l := commonPrefix(rest, c.label)
		if l == len(rest) {
			// The prefix ends inside (or at the end of) c's edge:
			// everything under c starts with it.
			return c.walk(fn)
		}
		if l < len(c.label) {
			return false
		}
		rest = rest[l:]
		n = c
	}
	return n.walk(fn)
}

func (n *rnode[T]) walk(fn func(T) bool) bool {
	if n.has && fn(n.val) {
		return true
	}
	for _, c := range n.kids {
		if c.walk(fn) {
			return true
		}
	}
	return false
}
