package wasm

import (
	"errors"
	"fmt"
)

// Fuel instrumentation (RunawayFuel).
//
// wazero's close-on-context-done makes every loop back-edge call into Go to
// ask whether the module was closed (wazero#2466): sound, but it costs tens
// of nanoseconds per iteration, which is most of a Go guest's request. This
// rewriter gets the same guarantee for a few instructions per iteration:
//
//   - it adds a mutable i32 global, the fuel, and an import
//     ward_sandbox.tick: () -> i32;
//   - at every function entry and every loop header it subtracts a cost
//     from the fuel (1 + the straight-line instructions the entry or the
//     loop body runs outside nested loops, /64) and, when the fuel is
//     exhausted, calls tick, which stores the refill it returns.
//
// Without loops or calls, wasm code runs straight through a bounded
// number of instructions, so any long execution keeps exhausting the fuel
// and calling tick. tick is Go code: the goroutine is preemptible there
// (a stop-the-world waits at most one fuel period), and tick stops the call
// when its deadline has passed or its context is done. Only bulk memory
// and table instructions run unmetered, bounded by the memory limit.
//
// The injected sequence is stack-neutral and wraps its call in its own
// block, so branch depths in the original code are unchanged. Adding an
// import shifts every defined function's index by one: calls, ref.func,
// exports, the start function, element segments, global initialisers and
// the name section are renumbered. Type and global indexes are appended,
// so nothing else moves.

// sandboxModule and tickName name the injected import.
const (
	sandboxModule = "ward_sandbox"
	tickName      = "tick"
	// fuelRefill is what tick refills: about 64×4096 straight-line
	// instructions, tens of microseconds, between two ticks.
	fuelRefill = 4096
	// costShift divides instruction counts into fuel units.
	costShift = 6
)

var errInstrument = errors.New("cannot instrument module")

func instErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errInstrument, fmt.Sprintf(format, args...))
}

// section is one section of a binary, its body kept as read.
type section struct {
	id   byte
	body []byte
}

// instrument returns bin with fuel metering injected (see above).
func instrument(bin []byte) ([]byte, error) {
	if len(bin) < 8 {
		return nil, instErr("truncated header")
	}
	var secs []section
	d := decoder{b: bin[8:]}
	for len(d.b) > 0 {
		id := d.byte()
		size := d.u32()
		body := d.bytes(int(size))
		if d.err != nil {
			return nil, instErr("truncated section")
		}
		secs = append(secs, section{id: id, body: body})
	}

	// Pass 1: count imported functions and globals, defined globals, types.
	var nFuncImports, nGlobalImports, nTypes, nGlobals uint32
	for _, s := range secs {
		sd := decoder{b: s.body}
		switch s.id {
		case 1:
			nTypes = sd.u32()
		case 2:
			n := sd.u32()
			for i := uint32(0); i < n && sd.err == nil; i++ {
				sd.name()
				sd.name()
				switch kind := sd.byte(); kind {
				case 0:
					sd.u32()
					nFuncImports++
				case 1:
					sd.byte()
					sd.limits()
				case 2:
					sd.limits()
				case 3:
					sd.byte()
					sd.byte()
					nGlobalImports++
				case 4:
					sd.byte()
					sd.u32()
				default:
					return nil, instErr("unknown import kind %d", kind)
				}
			}
		case 6:
			nGlobals = sd.u32()
		}
		if sd.err != nil {
			return nil, instErr("malformed section %d", s.id)
		}
	}
	r := &rewriter{
		shiftFrom: nFuncImports,
		tickFunc:  nFuncImports,
		fuel:      nGlobalImports + nGlobals,
		tickType:  nTypes,
	}

	out := make([]byte, 0, len(bin)+len(bin)/4)
	out = append(out, bin[:8]...)
	seen := map[byte]bool{}
	emit := func(id byte, body []byte) {
		out = append(out, id)
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	// Sections that must exist to hold our additions are created at their
	// place in the order if the module lacks them.
	order := []byte{1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11}
	rank := map[byte]int{}
	for i, id := range order {
		rank[id] = i
	}
	ensure := func(upTo byte) {
		for _, id := range []byte{1, 2, 6} {
			if rank[id] < rank[upTo] && !seen[id] {
				seen[id] = true
				b, err := r.section(id, nil)
				if err != nil {
					panic(err) // empty sections always rewrite
				}
				emit(id, b)
			}
		}
	}
	for _, s := range secs {
		if s.id != 0 {
			ensure(s.id)
			seen[s.id] = true
		}
		b, err := r.section(s.id, s.body)
		if err != nil {
			return nil, err
		}
		if b != nil {
			emit(s.id, b)
		}
	}
	ensure(11)
	return out, nil
}

type rewriter struct {
	shiftFrom uint32 // function indexes >= this move up by one
	tickFunc  uint32 // index of the injected import
	fuel      uint32 // index of the injected global
	tickType  uint32 // index of the injected type () -> i32
}

func (r *rewriter) fn(idx uint32) uint32 {
	if idx >= r.shiftFrom {
		return idx + 1
	}
	return idx
}

// section rewrites one section body; nil body means "absent, create".
// A nil result drops the section.
func (r *rewriter) section(id byte, body []byte) ([]byte, error) {
	d := decoder{b: body}
	var out []byte
	var err error
	switch id {
	case 0: // custom
		name := d.name()
		if d.err != nil {
			return nil, instErr("malformed custom section")
		}
		switch {
		case name == "name":
			return r.nameSection(body)
		case len(name) >= 6 && name[:6] == ".debug":
			return nil, nil // DWARF would point at moved code
		}
		return body, nil
	case 1: // types: append () -> i32
		n := uint32(0)
		if body != nil {
			n = d.u32()
		}
		out = appendU32(out, n+1)
		out = append(out, d.b...)
		out = append(out, 0x60, 0x00, 0x01, 0x7f)
	case 2: // imports: append ward_sandbox.tick
		n := uint32(0)
		if body != nil {
			n = d.u32()
		}
		out = appendU32(out, n+1)
		out = append(out, d.b...)
		out = appendName(out, sandboxModule)
		out = appendName(out, tickName)
		out = append(out, 0x00)
		out = appendU32(out, r.tickType)
	case 6: // globals: rewrite initialisers, append the fuel
		n := uint32(0)
		if body != nil {
			n = d.u32()
		}
		out = appendU32(out, n+1)
		for i := uint32(0); i < n; i++ {
			vt := d.byte()
			mut := d.byte()
			out = append(out, vt, mut)
			if out, err = r.constExpr(&d, out); err != nil {
				return nil, err
			}
		}
		out = append(out, 0x7f, 0x01, 0x41)
		out = appendS64(out, fuelRefill)
		out = append(out, 0x0b)
	case 7: // exports
		n := d.u32()
		out = appendU32(out, n)
		for i := uint32(0); i < n && d.err == nil; i++ {
			out = appendName(out, d.name())
			kind := d.byte()
			idx := d.u32()
			if kind == 0 {
				idx = r.fn(idx)
			}
			out = append(out, kind)
			out = appendU32(out, idx)
		}
	case 8: // start
		out = appendU32(out, r.fn(d.u32()))
	case 9: // elements
		if out, err = r.elements(&d); err != nil {
			return nil, err
		}
	case 10: // code
		if out, err = r.code(&d); err != nil {
			return nil, err
		}
	case 4: // tables: refuse initialiser expressions we do not rewrite
		n := d.u32()
		for i := uint32(0); i < n && d.err == nil; i++ {
			if len(d.b) > 0 && d.b[0] == 0x40 {
				return nil, instErr("table initialiser expressions are not supported")
			}
			d.byte()
			d.limits()
		}
		return body, nil
	default:
		return body, nil
	}
	if d.err != nil || (id >= 6 && id <= 10 && len(d.b) != 0) {
		return nil, instErr("malformed section %d", id)
	}
	return out, nil
}

// constExpr copies a constant expression up to its end, renumbering ref.func.
func (r *rewriter) constExpr(d *decoder, out []byte) ([]byte, error) {
	for d.err == nil {
		op := d.byte()
		out = append(out, op)
		switch op {
		case 0x0b:
			return out, nil
		case 0x41: // i32.const
			out = appendRaw(out, d, d.skipLEB)
		case 0x42:
			out = appendRaw(out, d, d.skipLEB)
		case 0x43:
			out = append(out, d.bytes(4)...)
		case 0x44:
			out = append(out, d.bytes(8)...)
		case 0x23: // global.get
			out = appendU32(out, d.u32())
		case 0xd0: // ref.null heaptype
			out = appendRaw(out, d, d.skipLEB)
		case 0xd2: // ref.func
			out = appendU32(out, r.fn(d.u32()))
		case 0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e: // extended-const arithmetic
		case 0xfd: // v128.const
			sub := d.u32()
			if sub != 12 {
				return nil, instErr("unsupported constant instruction 0xfd %d", sub)
			}
			out = appendU32(out, sub)
			out = append(out, d.bytes(16)...)
		default:
			return nil, instErr("unsupported constant instruction %#x", op)
		}
	}
	return nil, instErr("truncated constant expression")
}

func (r *rewriter) elements(d *decoder) ([]byte, error) {
	n := d.u32()
	out := appendU32(nil, n)
	var err error
	for i := uint32(0); i < n && d.err == nil; i++ {
		flags := d.u32()
		out = appendU32(out, flags)
		if flags > 7 {
			return nil, instErr("unknown element segment kind %d", flags)
		}
		if flags&0x02 != 0 && flags&0x01 == 0 { // explicit table index (2, 6)
			out = appendU32(out, d.u32())
		}
		if flags&0x01 == 0 { // active: offset expression (0, 2, 4, 6)
			if out, err = r.constExpr(d, out); err != nil {
				return nil, err
			}
		}
		if flags&0x03 != 0 { // elemkind or reftype byte (1, 2, 3, 5, 6, 7)
			out = append(out, d.byte())
		}
		m := d.u32()
		out = appendU32(out, m)
		for j := uint32(0); j < m && d.err == nil; j++ {
			if flags&0x04 == 0 {
				out = appendU32(out, r.fn(d.u32()))
			} else if out, err = r.constExpr(d, out); err != nil {
				return nil, err
			}
		}
	}
	if d.err != nil {
		return nil, instErr("malformed element section")
	}
	return out, nil
}

// nameSection renumbers function names (subsection 1) and local names
// (subsection 2); other subsections are copied.
func (r *rewriter) nameSection(body []byte) ([]byte, error) {
	d := decoder{b: body}
	out := appendName(nil, d.name())
	for len(d.b) > 0 && d.err == nil {
		sub := d.byte()
		content := d.bytes(int(d.u32()))
		if d.err != nil {
			break
		}
		if sub == 1 || sub == 2 {
			sd := decoder{b: content}
			n := sd.u32()
			c := appendU32(nil, n)
			for i := uint32(0); i < n && sd.err == nil; i++ {
				c = appendU32(c, r.fn(sd.u32()))
				if sub == 1 {
					c = appendName(c, sd.name())
					continue
				}
				m := sd.u32()
				c = appendU32(c, m)
				for j := uint32(0); j < m && sd.err == nil; j++ {
					c = appendU32(c, sd.u32())
					c = appendName(c, sd.name())
				}
			}
			if sd.err != nil {
				return nil, nil // a broken name section is only debugging data: drop it
			}
			content = c
		}
		out = append(out, sub)
		out = appendU32(out, uint32(len(content)))
		out = append(out, content...)
	}
	if d.err != nil {
		return nil, nil
	}
	return out, nil
}

// code rewrites every function body.
func (r *rewriter) code(d *decoder) ([]byte, error) {
	n := d.u32()
	out := appendU32(make([]byte, 0, len(d.b)+len(d.b)/4), n)
	var scratch []byte
	for i := uint32(0); i < n && d.err == nil; i++ {
		body := d.bytes(int(d.u32()))
		if d.err != nil {
			break
		}
		nb, err := r.function(body, scratch[:0])
		if err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		scratch = nb
		out = appendU32(out, uint32(len(nb)))
		out = append(out, nb...)
	}
	if d.err != nil {
		return nil, instErr("malformed code section")
	}
	return out, nil
}

// checkSeq appends the metering sequence charging cost:
//
//	global.get F; i32.const cost; i32.sub; global.set F
//	global.get F; i32.const 0; i32.le_s; if; call tick; global.set F; end
func (r *rewriter) checkSeq(out []byte, cost uint32) []byte {
	out = append(out, 0x23)
	out = appendU32(out, r.fuel)
	out = append(out, 0x41)
	out = appendS64(out, int64(cost))
	out = append(out, 0x6b, 0x24)
	out = appendU32(out, r.fuel)
	out = append(out, 0x23)
	out = appendU32(out, r.fuel)
	out = append(out, 0x41, 0x00, 0x4c, 0x04, 0x40, 0x10)
	out = appendU32(out, r.tickFunc)
	out = append(out, 0x24)
	out = appendU32(out, r.fuel)
	return append(out, 0x0b)
}

// function instruments one body: a check at entry and after every loop
// opcode. Costs need the instruction counts of what follows, so the body
// is scanned once to find them, then rewritten.
func (r *rewriter) function(body, out []byte) ([]byte, error) {
	d := decoder{b: body}
	groups := d.u32()
	for i := uint32(0); i < groups && d.err == nil; i++ {
		d.u32()
		d.byte()
	}
	if d.err != nil {
		return nil, instErr("malformed locals")
	}
	locals := body[:len(body)-len(d.b)]
	code := d.b

	// Scan: record, for the entry and each loop (in order), the number of
	// instructions executed in its own body outside nested loops.
	type frame struct {
		loop  int // index into costs, or -1 for a non-loop block
		owner int // the loop (or entry, 0) whose count this block adds to
	}
	costs := []uint32{0} // costs[0]: the function entry
	stack := []frame{{loop: 0, owner: 0}}
	// When the entry runs straight into a loop header (Go compiles every
	// function with loops into one dispatch loop right after its
	// prologue), the loop's check also meters the entry.
	inPrefix, entryIntoLoop := true, false
	if err := walk(code, r, func(op byte, _ []byte) {
		if inPrefix {
			switch {
			case op == 0x03:
				entryIntoLoop, inPrefix = true, false
			case op != 0x02 && isControl(op):
				inPrefix = false
			}
		}
		top := stack[len(stack)-1]
		costs[top.owner]++
		switch op {
		case 0x02, 0x04, 0x06, 0x1f: // block, if, try, try_table
			stack = append(stack, frame{loop: -1, owner: top.owner})
		case 0x03: // loop
			costs = append(costs, 0)
			stack = append(stack, frame{loop: len(costs) - 1, owner: len(costs) - 1})
		case 0x0b: // end
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			if len(stack) == 0 {
				stack = append(stack, frame{loop: 0, owner: 0}) // tolerate: validation is wazero's job
			}
		}
	}, nil); err != nil {
		return nil, err
	}
	cost := func(n uint32) uint32 { return 1 + n>>costShift }

	out = append(out, locals...)
	if entryIntoLoop {
		costs[1] += costs[0]
	} else {
		out = r.checkSeq(out, cost(costs[0]))
	}
	loopN := 0
	err := walk(code, r, func(op byte, ins []byte) {
		out = append(out, ins...)
		if op == 0x03 {
			loopN++
			out = r.checkSeq(out, cost(costs[loopN]))
		}
	}, &out)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// isControl reports instructions that branch, call, return or end a
// block: after one, execution may not reach the next instruction.
func isControl(op byte) bool {
	switch op {
	case 0x00, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
		0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x18, 0x19, 0x1f, 0xd4, 0xd6:
		return true
	}
	return false
}

// walk decodes the instructions of code and calls visit with each opcode
// and its encoding. When out is set, function indexes are renumbered in
// the encoding passed to visit.
func walk(code []byte, r *rewriter, visit func(op byte, ins []byte), out *[]byte) error {
	d := decoder{b: code}
	var buf []byte
	for len(d.b) > 0 {
		start := d.b
		op := d.byte()
		renum := false
		var idx uint32
		switch {
		case op == 0x10 || op == 0x12 || op == 0xd2: // call, return_call, ref.func
			idx = d.u32()
			renum = true
		default:
			if err := skipImmediates(&d, op); err != nil {
				return err
			}
		}
		if d.err != nil {
			return instErr("truncated instruction %#x", op)
		}
		ins := start[:len(start)-len(d.b)]
		if renum && out != nil {
			buf = append(buf[:0], op)
			buf = appendU32(buf, r.fn(idx))
			ins = buf
		}
		visit(op, ins)
	}
	return nil
}

// skipImmediates consumes the immediates of op.
func skipImmediates(d *decoder, op byte) error {
	switch {
	case op <= 0x01, op == 0x05, op == 0x0a, op == 0x0b, op == 0x0f, op == 0x19, op == 0x1a, op == 0x1b,
		op == 0xd1, op == 0xd3, op == 0xd5:
	case op >= 0x02 && op <= 0x04, op == 0x06: // block, loop, if, try: blocktype
		d.blockType()
	case op == 0x07, op == 0x08, op == 0x09, op == 0x0c, op == 0x0d, op == 0x18, op == 0xd4, op == 0xd6,
		op == 0x14, op == 0x15:
		d.u32()
	case op == 0x0e: // br_table
		n := d.u32()
		for i := uint32(0); i <= n && d.err == nil; i++ {
			d.u32()
		}
	case op == 0x11, op == 0x13: // call_indirect, return_call_indirect
		d.u32()
		d.u32()
	case op == 0x1c: // select t*
		n := d.u32()
		for i := uint32(0); i < n && d.err == nil; i++ {
			d.byte()
		}
	case op == 0x1f: // try_table
		d.blockType()
		n := d.u32()
		for i := uint32(0); i < n && d.err == nil; i++ {
			switch d.byte() {
			case 0, 1:
				d.u32()
				d.u32()
			case 2, 3:
				d.u32()
			default:
				return instErr("unknown catch clause")
			}
		}
	case op >= 0x20 && op <= 0x26:
		d.u32()
	case op >= 0x28 && op <= 0x3e:
		d.memarg()
	case op == 0x3f, op == 0x40:
		d.u32()
	case op == 0x41, op == 0x42:
		d.skipLEB()
	case op == 0x43:
		d.bytes(4)
	case op == 0x44:
		d.bytes(8)
	case op >= 0x45 && op <= 0xc4:
	case op == 0xd0:
		d.skipLEB()
	case op == 0xfc:
		switch sub := d.u32(); {
		case sub <= 7:
		case sub == 8, sub == 10, sub == 12, sub == 14:
			d.u32()
			d.u32()
		case sub == 9, sub == 11, sub == 13, sub == 15, sub == 16, sub == 17:
			d.u32()
		default:
			return instErr("unknown instruction 0xfc %d", sub)
		}
	case op == 0xfd:
		switch sub := d.u32(); {
		case sub <= 11, sub == 0x5c, sub == 0x5d:
			d.memarg()
		case sub == 12, sub == 13:
			d.bytes(16)
		case sub >= 0x15 && sub <= 0x22:
			d.byte()
		case sub >= 0x54 && sub <= 0x5b:
			d.memarg()
			d.byte()
		case sub <= 0x113:
		default:
			return instErr("unknown instruction 0xfd %d", sub)
		}
	case op == 0xfe:
		switch sub := d.u32(); {
		case sub == 0x03:
			d.byte()
		case sub <= 0x02, sub >= 0x10 && sub <= 0x4e:
			d.memarg()
		default:
			return instErr("unknown instruction 0xfe %d", sub)
		}
	default:
		return instErr("unknown instruction %#x", op)
	}
	return nil
}

func (d *decoder) blockType() {
	if len(d.b) == 0 {
		d.err = errTruncated
		return
	}
	switch c := d.b[0]; {
	case c == 0x40, c >= 0x6f && c <= 0x7f, c == 0x63, c == 0x64:
		if c == 0x63 || c == 0x64 { // (ref null? ht)
			d.byte()
			d.skipLEB()
			return
		}
		d.byte()
	default:
		d.skipLEB() // s33 type index
	}
}

func (d *decoder) memarg() {
	align := d.u32()
	if align&0x40 != 0 {
		d.u32()
	}
	d.u64()
}

func (d *decoder) skipLEB() {
	for i := 0; i < 10; i++ {
		if d.byte() < 0x80 || d.err != nil {
			return
		}
	}
	d.err = errTruncated
}

func appendRaw(out []byte, d *decoder, skip func()) []byte {
	start := d.b
	skip()
	return append(out, start[:len(start)-len(d.b)]...)
}

func appendU32(b []byte, v uint32) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func appendS64(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendName(b []byte, s string) []byte {
	b = appendU32(b, uint32(len(s)))
	return append(b, s...)
}
