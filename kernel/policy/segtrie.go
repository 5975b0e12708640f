package policy

// segTrie indexes the "+" patterns by segment, so finding every "+" pattern
// that matches a path costs a walk down the path's segments, following at
// each level the literal child and the "+" child, instead of a scan of all
// "+" patterns (which is what Vault does). It is built once and read
// concurrently afterwards.
type segTrie struct {
	root segNode
	size int
}

type segNode struct {
	kids map[string]*segNode // literal segments
	plus *segNode            // the "+" segment
	// term is the pattern (without "*") whose segments end at this node.
	term *entry
	// prefixTerms holds the patterns ending in "*" whose segments before
	// the last end here, by their last segment (a prefix of the path's
	// next segment: "" for ".../*", "ba" for ".../ba*").
	prefixTerms *radix[*entry]
}

func (t *segTrie) insert(e *entry) {
	n := &t.root
	segs := e.pat.segs
	if e.pat.isPrefix {
		segs = segs[:len(segs)-1]
	}
	for _, s := range segs {
		var next *segNode
		if s == "+" {
			if n.plus == nil {
				n.plus = &segNode{}
			}
			next = n.plus
		} else {
			if n.kids == nil {
				n.kids = map[string]*segNode{}
			}
			if next = n.kids[s]; next == nil {
				next = &segNode{}
				n.kids[s] = next
			}
		}
		n = next
	}
	if e.pat.isPrefix {
		if n.prefixTerms == nil {
			n.prefixTerms = &radix[*entry]{}
		}
		n.prefixTerms.insert(e.pat.segs[len(e.pat.segs)-1], e)
	} else {
		n.term = e
	}
	t.size++
}

// maxStackSegments is how many path segments best handles without
// allocating.
const maxStackSegments = 32

// best returns the most precise "+" pattern matching path (see
// morePrecise), or nil. It walks the trie depth-first with an explicit
// stack (a recursive walk would make the escape analysis move its buffers
// to the heap); a node is pushed at most once per path segment and child
// kind, so the stack holds at most two entries per segment.
func (t *segTrie) best(path string) *entry {
	// Segment boundaries: segment i is path[starts[i]:ends[i]].
	var sbuf, ebuf [maxStackSegments]int
	starts, ends := sbuf[:0], ebuf[:0]
	start := 0
	for i := 0; i <= len(path); i++ {
		if i == len(path) || path[i] == '/' {
			starts = append(starts, start)
			ends = append(ends, i)
			start = i + 1
		}
	}
	nseg := len(starts)

	type frame struct {
		n     *segNode
		depth int
	}
	var fbuf [2 * maxStackSegments]frame
	stack := append(fbuf[:0], frame{&t.root, 0})
	var mbuf [4]match[*entry]
	var best *entry
	consider := func(e *entry) {
		if best == nil || morePrecise(&e.pat, &best.pat) {
			best = e
		}
	}
	for len(stack) > 0 {
		f := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		n := f.n
		if f.depth == nseg {
			if n.term != nil {
				consider(n.term)
			}
			continue
		}
		seg := path[starts[f.depth]:ends[f.depth]]
		if n.prefixTerms != nil {
			for _, m := range n.prefixTerms.prefixes(seg, mbuf[:0]) {
				consider(m.val)
			}
		}
		if n.plus != nil {
			stack = append(stack, frame{n.plus, f.depth + 1})
		}
		if c := n.kids[seg]; c != nil {
			stack = append(stack, frame{c, f.depth + 1})
		}
	}
	return best
}
