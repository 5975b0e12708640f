package abi

import (
	"errors"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// ErrMalformed is returned by every Decode function for input that is not
// a valid encoding of the expected message.
var ErrMalformed = errors.New("abi: malformed message")

// --- writing ---------------------------------------------------------------

func putString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// putStringAlways writes s even when empty (elements of repeated fields).
func putStringAlways(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func putBytes(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func putVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func putInt64(b []byte, num protowire.Number, v int64) []byte { return putVarint(b, num, uint64(v)) }

// putInt32 sign-extends, as protobuf does for int32.
func putInt32(b []byte, num protowire.Number, v int32) []byte {
	return putVarint(b, num, uint64(int64(v)))
}

func putBool(b []byte, num protowire.Number, v bool) []byte {
	if !v {
		return b
	}
	return putVarint(b, num, 1)
}

func putStrings(b []byte, num protowire.Number, ss []string) []byte {
	for _, s := range ss {
		b = putStringAlways(b, num, s)
	}
	return b
}

// putMessage writes a length-delimited submessage produced by body. The
// field is present even when body writes nothing.
func putMessage(b []byte, num protowire.Number, body func([]byte) []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	start := len(b)
	b = append(b, 0) // one-byte length placeholder
	b = body(b)
	n := len(b) - start - 1
	if n < 0x80 {
		b[start] = byte(n)
		return b
	}
	sz := protowire.SizeVarint(uint64(n))
	b = append(b, make([]byte, sz-1)...)
	copy(b[start+sz:], b[start+1:start+1+n])
	protowire.AppendVarint(b[start:start], uint64(n))
	return b
}

func putStringMap(b []byte, num protowire.Number, m map[string]string) []byte {
	for k, v := range m {
		b = putMessage(b, num, func(b []byte) []byte {
			b = putString(b, 1, k)
			return putString(b, 2, v)
		})
	}
	return b
}

func putHeaderMap(b []byte, num protowire.Number, m map[string][]string) []byte {
	for k, vs := range m {
		b = putMessage(b, num, func(b []byte) []byte {
			b = putString(b, 1, k)
			return putMessage(b, 2, func(b []byte) []byte { return putStrings(b, 1, vs) })
		})
	}
	return b
}

// --- reading ---------------------------------------------------------------

// reader walks the fields of one message. Fields of an unexpected wire
// type are skipped, as protobuf-go treats them as unknown.
type reader struct {
	b   []byte
	num protowire.Number
	typ protowire.Type
	err error
}

// next advances to the next field; false at the end or on error.
func (r *reader) next() bool {
	if r.err != nil || len(r.b) == 0 {
		return false
	}
	num, typ, n := protowire.ConsumeTag(r.b)
	if n < 0 || num < protowire.MinValidNumber || num > protowire.MaxValidNumber {
		r.err = ErrMalformed
		return false
	}
	r.b, r.num, r.typ = r.b[n:], num, typ
	return true
}

func (r *reader) skip() {
	n := protowire.ConsumeFieldValue(r.num, r.typ, r.b)
	if n < 0 {
		r.err = ErrMalformed
		return
	}
	r.b = r.b[n:]
}

// bytes reads a length-delimited value; ok is false when the field has
// another wire type (and was skipped).
func (r *reader) bytes() (v []byte, ok bool) {
	if r.typ != protowire.BytesType {
		r.skip()
		return nil, false
	}
	v, n := protowire.ConsumeBytes(r.b)
	if n < 0 {
		r.err = ErrMalformed
		return nil, false
	}
	r.b = r.b[n:]
	return v, true
}

// str reads a string field, refusing invalid UTF-8 as protobuf-go does.
func (r *reader) str(dst *string) {
	v, ok := r.bytes()
	if !ok {
		return
	}
	if !utf8.Valid(v) {
		r.err = ErrMalformed
		return
	}
	*dst = string(v)
}

func (r *reader) appendStr(dst *[]string) {
	var s string
	v, ok := r.bytes()
	if !ok {
		return
	}
	if !utf8.Valid(v) {
		r.err = ErrMalformed
		return
	}
	s = string(v)
	*dst = append(*dst, s)
}

// copyBytes reads a bytes field into a fresh slice (never aliasing the input).
func (r *reader) copyBytes(dst *[]byte) {
	v, ok := r.bytes()
	if ok {
		*dst = append([]byte(nil), v...)
	}
}

func (r *reader) varint() (uint64, bool) {
	if r.typ != protowire.VarintType {
		r.skip()
		return 0, false
	}
	v, n := protowire.ConsumeVarint(r.b)
	if n < 0 {
		r.err = ErrMalformed
		return 0, false
	}
	r.b = r.b[n:]
	return v, true
}

func (r *reader) int64(dst *int64) {
	if v, ok := r.varint(); ok {
		*dst = int64(v)
	}
}

func (r *reader) int32(dst *int32) {
	if v, ok := r.varint(); ok {
		*dst = int32(v)
	}
}

func (r *reader) bool(dst *bool) {
	if v, ok := r.varint(); ok {
		*dst = v != 0
	}
}

// message reads a submessage with fn; ok is false when the field has
// another wire type.
func (r *reader) message(fn func(*reader)) bool {
	v, ok := r.bytes()
	if !ok {
		return false
	}
	sub := reader{b: v}
	fn(&sub)
	if sub.err != nil {
		r.err = sub.err
	}
	return r.err == nil
}

func (r *reader) stringMapEntry(m *map[string]string) {
	var k, v string
	r.message(func(e *reader) {
		for e.next() {
			switch e.num {
			case 1:
				e.str(&k)
			case 2:
				e.str(&v)
			default:
				e.skip()
			}
		}
	})
	if r.err == nil {
		if *m == nil {
			*m = map[string]string{}
		}
		(*m)[k] = v
	}
}

func (r *reader) headerMapEntry(m *map[string][]string) {
	var k string
	var vs []string
	r.message(func(e *reader) {
		for e.next() {
			switch e.num {
			case 1:
				e.str(&k)
			case 2:
				e.message(func(h *reader) {
					for h.next() {
						if h.num == 1 {
							h.appendStr(&vs)
						} else {
							h.skip()
						}
					}
				})
			default:
				e.skip()
			}
		}
	})
	if r.err == nil {
		if *m == nil {
			*m = map[string][]string{}
		}
		(*m)[k] = vs
	}
}
