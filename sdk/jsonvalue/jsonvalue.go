// Package jsonvalue reads and writes JSON the way encoding/json does, byte
// for byte, for the values that cross Ward's plugin boundary and that
// plugins store: objects decoded into map[string]any with numbers kept as
// json.Number, and maps, slices, strings, numbers and bools of the usual
// Go types. It does so without reflection, because inside a WASM guest
// encoding/json costs tens of microseconds per kilobyte (a transit encrypt
// spent more time in it than in AES-GCM, a KV write more than in
// everything else).
//
//   - DecodeObject reads what encoding/json's Decoder with UseNumber reads
//     into a map[string]any: objects as map[string]any, arrays as []any,
//     numbers as json.Number with their exact text, strings (escapes
//     decoded, invalid UTF-8 replaced by U+FFFD), bools and nil; the same
//     syntax errors and depth limit; like a Decoder, it reads one value
//     and ignores what follows. ReadObject reads an object at the start
//     of a record of known layout and says how many bytes it took.
//   - Append writes what json.Marshal writes (escapeHTML) or what an
//     Encoder with SetEscapeHTML(false) writes, without its newline, for
//     maps with string keys, slices, strings, numbers, bools and nil of
//     the usual types, and hands any other value (structs, pointers,
//     marshalers, named types) to encoding/json.
//
// The tests compare both directions with encoding/json, and fuzz them.
//
// What it must never do: accept or produce anything encoding/json would
// not, for the values it handles itself; put input bytes in an error.
package jsonvalue

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// maxJSONDepth is encoding/json's nesting limit (its scanner's
// maxNestingDepth).
const maxJSONDepth = 10000

// ErrSyntax is returned by DecodeObject and ReadObject for input
// encoding/json refuses, or that is not an object (nor null); it says
// nothing about where (a position could help quote the data).
var ErrSyntax = errors.New("jsonvalue: invalid JSON or not an object")

// DecodeObject reads a JSON object as encoding/json's Decoder with
// UseNumber reads it into a map[string]any. Empty input and a top-level
// null decode as a nil map; what follows the object is not read.
func DecodeObject(b []byte) (map[string]any, error) {
	if len(b) == 0 {
		return nil, nil
	}
	d := jsonDecoder{b: b}
	return d.top()
}

// ReadObject reads the JSON object that b starts with (no space before
// it) as DecodeObject does, and returns how many bytes it took: for
// callers reading a record of known layout around an object.
func ReadObject(b []byte) (map[string]any, int, error) {
	if len(b) == 0 || b[0] != '{' {
		return nil, 0, ErrSyntax
	}
	d := jsonDecoder{b: b, i: 1}
	m := d.object(1)
	if d.err != nil {
		return nil, 0, d.err
	}
	return m, d.i, nil
}

type jsonDecoder struct {
	b   []byte
	i   int
	err error
}

func (d *jsonDecoder) top() (map[string]any, error) {
	d.skipSpace()
	if d.i >= len(d.b) {
		return nil, ErrSyntax
	}
	switch d.b[d.i] {
	case '{':
		d.i++
		m := d.object(1)
		if d.err != nil {
			return nil, d.err
		}
		return m, nil
	case 'n':
		if !d.literal("null") {
			return nil, ErrSyntax
		}
		return nil, nil
	}
	// Any other value is well formed or not, but never a map.
	return nil, ErrSyntax
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (d *jsonDecoder) skipSpace() {
	for d.i < len(d.b) && isJSONSpace(d.b[d.i]) {
		d.i++
	}
}

func (d *jsonDecoder) fail() {
	if d.err == nil {
		d.err = ErrSyntax
	}
	d.i = len(d.b)
}

func (d *jsonDecoder) literal(lit string) bool {
	if len(d.b)-d.i < len(lit) || string(d.b[d.i:d.i+len(lit)]) != lit {
		d.fail()
		return false
	}
	d.i += len(lit)
	return true
}

// value reads one value at nesting depth depth (of its container).
func (d *jsonDecoder) value(depth int) any {
	d.skipSpace()
	if d.i >= len(d.b) {
		d.fail()
		return nil
	}
	switch c := d.b[d.i]; {
	case c == '{':
		d.i++
		return d.object(depth + 1)
	case c == '[':
		d.i++
		return d.array(depth + 1)
	case c == '"':
		d.i++
		return d.str()
	case c == 't':
		d.literal("true")
		return true
	case c == 'f':
		d.literal("false")
		return false
	case c == 'n':
		d.literal("null")
		return nil
	case c == '-' || ('0' <= c && c <= '9'):
		return d.number()
	}
	d.fail()
	return nil
}

// object reads the members of an object whose '{' was consumed.
func (d *jsonDecoder) object(depth int) map[string]any {
	if depth > maxJSONDepth {
		d.fail()
		return nil
	}
	m := map[string]any{}
	d.skipSpace()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return m
	}
	for d.err == nil {
		d.skipSpace()
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			d.fail()
			return nil
		}
		d.i++
		k := d.str()
		d.skipSpace()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			d.fail()
			return nil
		}
		d.i++
		v := d.value(depth)
		if d.err != nil {
			return nil
		}
		m[k] = v
		d.skipSpace()
		if d.i >= len(d.b) {
			d.fail()
			return nil
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return m
		default:
			d.fail()
		}
	}
	return nil
}

// array reads the elements of an array whose '[' was consumed.
func (d *jsonDecoder) array(depth int) []any {
	if depth > maxJSONDepth {
		d.fail()
		return nil
	}
	a := []any{}
	d.skipSpace()
	if d.i < len(d.b) && d.b[d.i] == ']' {
		d.i++
		return a
	}
	for d.err == nil {
		v := d.value(depth)
		if d.err != nil {
			return nil
		}
		a = append(a, v)
		d.skipSpace()
		if d.i >= len(d.b) {
			d.fail()
			return nil
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case ']':
			d.i++
			return a
		default:
			d.fail()
		}
	}
	return nil
}

// str reads a string whose opening quote was consumed.
func (d *jsonDecoder) str() string {
	start := d.i
	// Fast path: printable ASCII without escapes.
	d.i += plainLen(unsafe.Pointer(unsafe.SliceData(d.b[d.i:])), len(d.b)-d.i, false)
	for d.i < len(d.b) {
		c := d.b[d.i]
		if c == '"' {
			s := string(d.b[start:d.i])
			d.i++
			return s
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
		d.i++
	}
	return d.strSlow(start)
}

// strSlow decodes escapes and replaces invalid UTF-8 with U+FFFD, as
// encoding/json does.
func (d *jsonDecoder) strSlow(start int) string {
	out := make([]byte, d.i-start, d.i-start+16)
	copy(out, d.b[start:d.i])
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return string(out)
		case c < 0x20:
			d.fail()
			return ""
		case c == '\\':
			d.i++
			if d.i >= len(d.b) {
				d.fail()
				return ""
			}
			e := d.b[d.i]
			d.i++
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r := d.hex4(d.i)
				if r < 0 {
					d.fail()
					return ""
				}
				d.i += 4
				if utf16.IsSurrogate(r) {
					// A pair combines; anything else is one U+FFFD and
					// the next escape is read on its own.
					r2 := rune(-1)
					if d.i+1 < len(d.b) && d.b[d.i] == '\\' && d.b[d.i+1] == 'u' {
						r2 = d.hex4(d.i + 2)
					}
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						d.i += 6
						r = dec
					} else {
						r = utf8.RuneError
					}
				}
				out = utf8.AppendRune(out, r)
			default:
				d.fail()
				return ""
			}
		case c < utf8.RuneSelf:
			out = append(out, c)
			d.i++
		default:
			r, size := utf8.DecodeRune(d.b[d.i:])
			d.i += size
			out = utf8.AppendRune(out, r) // RuneError for invalid bytes
		}
	}
	d.fail()
	return ""
}

// hex4 reads four hex digits at i; -1 if they are not there.
func (d *jsonDecoder) hex4(i int) rune {
	if len(d.b)-i < 4 {
		return -1
	}
	var r rune
	for _, c := range d.b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// number reads a number with JSON's grammar and keeps its text.
func (d *jsonDecoder) number() json.Number {
	start := d.i
	b := d.b
	if b[d.i] == '-' {
		d.i++
	}
	switch {
	case d.i < len(b) && b[d.i] == '0':
		d.i++
	case d.i < len(b) && '1' <= b[d.i] && b[d.i] <= '9':
		for d.i < len(b) && '0' <= b[d.i] && b[d.i] <= '9' {
			d.i++
		}
	default:
		d.fail()
		return ""
	}
	if d.i < len(b) && b[d.i] == '.' {
		d.i++
		if d.i >= len(b) || b[d.i] < '0' || b[d.i] > '9' {
			d.fail()
			return ""
		}
		for d.i < len(b) && '0' <= b[d.i] && b[d.i] <= '9' {
			d.i++
		}
	}
	if d.i < len(b) && (b[d.i] == 'e' || b[d.i] == 'E') {
		d.i++
		if d.i < len(b) && (b[d.i] == '+' || b[d.i] == '-') {
			d.i++
		}
		if d.i >= len(b) || b[d.i] < '0' || b[d.i] > '9' {
			d.fail()
			return ""
		}
		for d.i < len(b) && '0' <= b[d.i] && b[d.i] <= '9' {
			d.i++
		}
	}
	return json.Number(b[start:d.i])
}

// Append appends the JSON encoding of v to dst: what json.Marshal writes
// when escapeHTML is set, what an Encoder with SetEscapeHTML(false) writes
// (without the newline) otherwise. On error it returns dst as it was and
// encoding/json's error.
func Append(dst []byte, v any, escapeHTML bool) ([]byte, error) {
	e := jsonEncoder{escapeHTML: escapeHTML}
	n := len(dst)
	out, err := e.value(dst, v, 0)
	if err != nil {
		return dst[:n], err
	}
	return out, nil
}

// AppendString appends s as a JSON string, as Append does.
func AppendString(dst []byte, s string, escapeHTML bool) []byte {
	return appendJSONString(dst, s, escapeHTML)
}

type jsonEncoder struct{ escapeHTML bool }

// maxEncodeDepth hands deeper values to encoding/json, which detects
// cycles (a map holding itself) instead of recursing until the stack ends.
const maxEncodeDepth = 1000

func (e *jsonEncoder) value(dst []byte, v any, depth int) ([]byte, error) {
	if depth > maxEncodeDepth {
		return e.appendStd(dst, v)
	}
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case string:
		return appendJSONString(dst, x, e.escapeHTML), nil
	case bool:
		if x {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case json.Number:
		s := string(x)
		if s == "" {
			s = "0"
		}
		if !isValidJSONNumber(s) {
			return e.appendStd(dst, v) // its error
		}
		return append(dst, s...), nil
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case int32:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int16:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int8:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case uint:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint64:
		return strconv.AppendUint(dst, x, 10), nil
	case uint32:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint16:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint8:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case float64:
		return e.appendFloat(dst, x, 64, v)
	case float32:
		return e.appendFloat(dst, float64(x), 32, v)
	case map[string]any:
		if x == nil {
			return append(dst, "null"...), nil
		}
		var small [8]string
		keys := mapKeys(small[:0], len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, '{')
		var err error
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, k, e.escapeHTML)
			dst = append(dst, ':')
			if dst, err = e.value(dst, x[k], depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	case map[string]string:
		if x == nil {
			return append(dst, "null"...), nil
		}
		var small [8]string
		keys := mapKeys(small[:0], len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, k, e.escapeHTML)
			dst = append(dst, ':')
			dst = appendJSONString(dst, x[k], e.escapeHTML)
		}
		return append(dst, '}'), nil
	case []any:
		if x == nil {
			return append(dst, "null"...), nil
		}
		dst = append(dst, '[')
		var err error
		for i, el := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = e.value(dst, el, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case []string:
		if x == nil {
			return append(dst, "null"...), nil
		}
		dst = append(dst, '[')
		for i, s := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, s, e.escapeHTML)
		}
		return append(dst, ']'), nil
	case []map[string]any:
		if x == nil {
			return append(dst, "null"...), nil
		}
		dst = append(dst, '[')
		var err error
		for i, el := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = e.value(dst, el, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	}
	return e.appendStd(dst, v)
}

// mapKeys returns small, or a new slice when the map's n keys do not fit;
// the caller sorts them byte-wise, as encoding/json orders them.
func mapKeys(small []string, n int) []string {
	if n <= cap(small) {
		return small
	}
	return make([]string, 0, n)
}

// appendStd encodes v with encoding/json (values this file does not
// handle itself, and the errors of those it refuses).
func (e *jsonEncoder) appendStd(dst []byte, v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(e.escapeHTML)
	if err := enc.Encode(v); err != nil {
		return dst, err
	}
	return append(dst, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...), nil
}

// appendFloat is encoding/json's float encoding; NaN and infinities get
// its error.
func (e *jsonEncoder) appendFloat(dst []byte, f float64, bits int, v any) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return e.appendStd(dst, v)
	}
	abs := math.Abs(f)
	fmt := byte('f')
	if abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			fmt = 'e'
		}
	}
	dst = strconv.AppendFloat(dst, f, fmt, -1, bits)
	if fmt == 'e' {
		// e-09 becomes e-9
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, nil
}

const hexDigits = "0123456789abcdef"

// jsonSafe marks the ASCII bytes a JSON string holds as they are without
// HTML escaping (printable ones and DEL, except '"' and '\\'); htmlSafe,
// with it ('<', '>' and '&' too are escaped).
var jsonSafe, htmlSafe = func() (j, h [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		j[c] = c != '"' && c != '\\'
		h[c] = j[c] && c != '<' && c != '>' && c != '&'
	}
	return j, h
}()

// appendJSONString is encoding/json's string encoding: invalid UTF-8
// becomes \ufffd; U+2028 and U+2029 are escaped; with escapeHTML, '<',
// '>' and '&' too.
func appendJSONString(dst []byte, s string, escapeHTML bool) []byte {
	safe := &jsonSafe
	if escapeHTML {
		safe = &htmlSafe
	}
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if n := plainLen(unsafe.Pointer(unsafe.StringData(s[i:])), len(s)-i, escapeHTML); n > 0 {
			i += n
			if i == len(s) {
				break
			}
		}
		if c := s[i]; c < utf8.RuneSelf {
			if safe[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '\\', '"':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// plainLen returns how many of the n bytes at p a JSON string holds as
// they are (jsonSafe, or htmlSafe with escapeHTML): eight at a time with
// word-wide tests while it can, because a byte loop costs several times as
// much inside a WASM guest, then byte by byte up to the first that is
// not. p must point at n readable bytes.
func plainLen(p unsafe.Pointer, n int, escapeHTML bool) int {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	i := 0
	for ; i+8 <= n; i += 8 {
		x := *(*uint64)(unsafe.Add(p, i)) // unaligned loads are fine on every Go target
		// A byte >= 0x80, < 0x20, or equal to one of the escaped ones sets
		// its high bit in one of these (the lowest such byte always does).
		q := x ^ (ones * '"')
		bs := x ^ (ones * '\\')
		t := x | (x - ones*0x20) | (q-ones)&^q | (bs-ones)&^bs
		if escapeHTML {
			lt, gt, amp := x^(ones*'<'), x^(ones*'>'), x^(ones*'&')
			t |= (lt-ones)&^lt | (gt-ones)&^gt | (amp-ones)&^amp
		}
		if t&highs != 0 {
			break
		}
	}
	safe := &jsonSafe
	if escapeHTML {
		safe = &htmlSafe
	}
	for ; i < n; i++ {
		if c := *(*byte)(unsafe.Add(p, i)); c >= utf8.RuneSelf || !safe[c] {
			break
		}
	}
	return i
}

// isValidJSONNumber is JSON's number grammar (encoding/json's isValidNumber).
func isValidJSONNumber(s string) bool {
	i := 0
	digits := func() int {
		n := 0
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		digits()
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}
