package jsonvalue

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// The hand-written JSON codec must read and write exactly what
// encoding/json does (sdk/plugin uses encoding/json over go-plugin, and a
// backend must see the same values over either transport). These are the
// reference implementations it is compared with.

func stdDecodeJSONMap(b []byte) (map[string]any, error) {
	if len(b) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

func stdEncodeJSON(v any, escapeHTML bool) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(escapeHTML)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func checkDecode(t *testing.T, in []byte) {
	t.Helper()
	want, wantErr := stdDecodeJSONMap(in)
	got, err := DecodeObject(in)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("decode %q: error %v, encoding/json %v", in, err, wantErr)
	}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("decode %q:\n got %#v\nwant %#v", in, got, want)
	}
	// ReadObject: the same object, and where it ends.
	if i := bytes.IndexByte(in, '{'); i >= 0 && len(bytes.TrimLeft(in[:i], " \t\r\n")) == 0 {
		got, n, err := ReadObject(in[i:])
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("ReadObject %q: error %v, encoding/json %v", in, err, wantErr)
		}
		if err == nil {
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("ReadObject %q:\n got %#v\nwant %#v", in, got, want)
			}
			if !json.Valid(in[i:i+n]) || in[i+n-1] != '}' {
				t.Fatalf("ReadObject %q: took %d bytes", in, n)
			}
		}
	}
}

func checkEncode(t *testing.T, v any) {
	t.Helper()
	for _, html := range []bool{false, true} {
		want, wantErr := stdEncodeJSON(v, html)
		prefix := []byte("prefix")
		got, err := Append(prefix, v, html)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("encode %#v (html %v): error %v, encoding/json %v", v, html, err, wantErr)
		}
		if err != nil {
			if err.Error() != wantErr.Error() || string(got) != "prefix" {
				t.Fatalf("encode %#v (html %v): error %q (%q), encoding/json %q", v, html, err, got, wantErr)
			}
			continue
		}
		if !bytes.Equal(got[len(prefix):], want) || string(got[:len(prefix)]) != "prefix" {
			t.Fatalf("encode %#v (html %v):\n got %s\nwant %s", v, html, got, want)
		}
		if s, ok := v.(string); ok {
			if got := AppendString(nil, s, html); !bytes.Equal(got, want) {
				t.Fatalf("AppendString %q (html %v): %s, want %s", s, html, got, want)
			}
		}
	}
}

func TestJSONDecodeMatchesEncodingJSON(t *testing.T) {
	for _, in := range []string{
		``, ` `, `null`, `null `, ` null x`, `nullx`, `nul`, `{}`, ` {} `, `{}x`, `{} {"a":1}`, `[]`, `"s"`, `1`, `true`,
		`{"a":1,"b":-0.5e+10,"c":"x","d":true,"e":false,"f":null,"g":[],"h":{},"i":[1,"2",[3],{"4":5}]}`,
		`{"n":12345678901234567890123,"m":-0,"e":1E5,"f":1.0e-2}`,
		`{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":+1}`, `{"a":1e}`, `{"a":1e+}`, `{"a":-}`, `{"a":--1}`, `{"a":0x1}`,
		`{"a":1,}`, `{,}`, `{"a"}`, `{"a":}`, `{"a" 1}`, `{a:1}`, `{'a':1}`, `{"a":1 "b":2}`, `{"a":[1,]}`, `{"a":[,1]}`,
		`{"a":tru}`, `{"a":True}`, `{"a":nan}`, `{"a":Infinity}`, `{"a":"b`, `{"a":"\`, `{"a":1`, `{"a"`, `{`,
		`{"dup":1,"dup":2}`, `{"dup":{"x":1},"dup":{"y":2}}`,
		"{\"ctl\":\"a\x01b\"}", "{\"tab\":\"a\tb\"}", "{\"del\":\"a\x7fb\"}", "{\"nl\":\"a\nb\"}",
		`{"esc":"\" \\ \/ \b \f \n \r \t \u0041 \u00e9 \u20ac \ud83d\ude00"}`,
		`{"bad":"\x"}`, `{"bad":"\u12"}`, `{"bad":"\u12g4"}`, `{"bad":"\U0041"}`,
		`{"sur":"\ud83d"}`, `{"sur":"\ud83dx"}`, `{"sur":"\ude00\ud83d"}`, `{"sur":"\ud83d\u0041"}`, `{"sur":"\ud83d\ud83d\ude00"}`,
		`{"sur":"\ud83d\u"}`, `{"sur":"\ud83d\`,
		"{\"utf8\":\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\"}", "{\"inv\":\"a\xffb\xc3(c\xed\xa0\x80\"}", "{\"k\xff\":1}",
		`{"\u0000":"nul key"}`, "\t\n\r {\t\"a\"\n:\r1 } ",
		`{"a":[[[[[[[[[[]]]]]]]]]]}`,
	} {
		checkDecode(t, []byte(in))
	}
	// Nesting limit: encoding/json allows 10,000 levels.
	for _, depth := range []int{9999, 10000, 10001} {
		in := strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth)
		checkDecode(t, []byte(in))
		in = `{"a":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + "}"
		checkDecode(t, []byte(in))
	}
}

type marshaler struct{ s string }

func (m marshaler) MarshalJSON() ([]byte, error) { return json.Marshal("m:" + m.s) }

type namedMap map[string]any

type namedString string

type failing struct{}

func (failing) MarshalJSON() ([]byte, error) { return nil, errors.New("no") }

func TestJSONEncodeMatchesEncodingJSON(t *testing.T) {
	cyclic := map[string]any{}
	cyclic["self"] = cyclic
	deep := map[string]any{}
	for cur, i := deep, 0; i < 1500; i++ {
		next := map[string]any{}
		cur["d"] = next
		cur = next
	}
	var nilMap map[string]any
	var nilSlice []any
	for _, v := range []any{
		nil, map[string]any{}, nilMap, nilSlice, []any{}, []string(nil), []string{}, map[string]string(nil), map[string]string{},
		map[string]any{"b": 1, "a": "x", "c": nil, "ab": true, "A": false, "": "empty", "é": 1, "\u2028": 2},
		map[string]any{"s": "<>&\"\\/\b\f\n\r\t\x00\x1f\x7f \u2028\u2029 é€😀 a\xffb\xed\xa0\x80"},
		map[string]any{"ints": []any{int(-1), int8(-8), int16(-16), int32(-32), int64(math.MinInt64), uint(1), uint8(8), uint16(16), uint32(32), uint64(math.MaxUint64)}},
		map[string]any{"floats": []any{0.0, math.Copysign(0, -1), 1.5, -2.25, 1e20, 1e21, 1e-6, 1e-7, 123456789.123, float32(1.1), float32(1e21), float32(1e-7), math.MaxFloat64, math.SmallestNonzeroFloat64}},
		map[string]any{"nan": math.NaN()}, map[string]any{"inf": math.Inf(1)}, map[string]any{"f32inf": float32(math.Inf(-1))},
		map[string]any{"num": json.Number("12345678901234567890.5e-3"), "zero": json.Number(""), "neg": json.Number("-0")},
		map[string]any{"badnum": json.Number("1.")}, map[string]any{"badnum": json.Number("abc")},
		map[string]any{"strs": []string{"a", "", "\n"}, "smap": map[string]string{"z": "1", "a": "<"}, "maps": []map[string]any{{"x": 1}, nil}},
		map[string]any{"nested": map[string]any{"k": []any{"v", true, nil, map[string]any{"deep": []any{[]any{}}}}}},
		map[string]any{"struct": struct {
			A int    `json:"a"`
			B string `json:"b,omitempty"`
		}{A: 1}, "time": time.Unix(1700000000, 5).UTC(), "dur": time.Second, "ptr": new(int), "bytes": []byte("<raw>")},
		map[string]any{"raw": json.RawMessage(`{"b":1, "a" : [ 2 ]}`), "marshaler": marshaler{"<x>"}, "named": namedMap{"b": 1, "a": 2}, "ns": namedString("<s>")},
		map[string]any{"ints": []int{1, 2}, "mapint": map[int]string{2: "b", 1: "a"}, "anymap": map[string]int{"b": 2, "a": 1}},
		map[string]any{"fail": failing{}}, map[string]any{"chan": make(chan int)}, map[string]any{"func": func() {}},
		map[string]any{"cycle": cyclic}, deep,
		"top-level string", 42, []any{1, "a"}, "<a href=\"x\">&amp;</a>", "",
	} {
		checkEncode(t, v)
	}
}

// What Append writes DecodeObject reads back identically (numbers stay
// json.Number, nothing is lost).
func TestJSONRoundTrip(t *testing.T) {
	in := map[string]any{"n": json.Number("1.50"), "s": "x\u2028y<&>", "l": []any{json.Number("1"), nil, false}, "m": map[string]any{}}
	for _, html := range []bool{false, true} {
		b, err := Append(nil, in, html)
		if err != nil {
			t.Fatal(err)
		}
		out, err := DecodeObject(b)
		if err != nil || !reflect.DeepEqual(out, in) {
			t.Fatalf("round trip: %#v, %v", out, err)
		}
	}
}

func FuzzJSONDecode(f *testing.F) {
	for _, s := range []string{`{"a":1,"b":[true,null,"x\u00e9\ud83d\ude00"],"c":{"d":-1.5e3}}`, `null`, `{"a":"\ud83d"}`, "{\"a\":\"\xff\"}", `{} x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkDecode(t, in)
	})
}

// FuzzJSONEncode encodes whatever encoding/json decodes from the input,
// with numbers as json.Number and as float64, and compares the bytes.
func FuzzJSONEncode(f *testing.F) {
	for _, s := range []string{`{"a":1,"b":[true,null,"x<>&\u2028\u00e9"],"c":{"d":-1.5e-7,"e":1e21}}`, "{\"a\":\"\\u0001\\u007f\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if m, err := stdDecodeJSONMap(in); err == nil {
			checkEncode(t, m)
		}
		var m map[string]any
		if json.Unmarshal(in, &m) == nil {
			checkEncode(t, m)
		}
		// Strings that are not valid UTF-8 only reach the encoder from Go.
		checkEncode(t, map[string]any{string(in): string(in)})
		checkEncode(t, string(in))
	})
}

// plainLen's word-wide test must stop at exactly the first byte a JSON
// string cannot hold as it is, wherever it sits in a word.
func TestPlainLen(t *testing.T) {
	for c := 0; c < 256; c++ {
		safe := c >= 0x20 && c < 0x80 && c != '"' && c != '\\'
		for pos := 0; pos < 20; pos++ {
			buf := []byte(strings.Repeat("a", 20))
			buf[pos] = byte(c)
			// Neighbours that sit just beside the boundaries of the tests.
			if pos > 0 {
				buf[pos-1] = 0x20
			}
			if pos < 19 {
				buf[pos+1] = 0x7f
			}
			want := 20
			if !safe {
				want = pos
			}
			if got := plainLen(unsafe.Pointer(&buf[0]), len(buf), false); got != want {
				t.Fatalf("byte %#x at %d: plainLen = %d, want %d", c, pos, got, want)
			}
			if !safe || c == '<' || c == '>' || c == '&' {
				want = pos
			}
			if got := plainLen(unsafe.Pointer(&buf[0]), len(buf), true); got != want {
				t.Fatalf("byte %#x at %d: plainLen(html) = %d, want %d", c, pos, got, want)
			}
		}
	}
}
