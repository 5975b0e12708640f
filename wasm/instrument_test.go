package wasm

import (
	"bytes"
	"testing"
)

// A hand-assembled module: one type () -> (), one function with a loop
// that calls itself, exported, a table with it, and a name section.
func tinyModule() []byte {
	sec := func(id byte, body ...byte) []byte {
		return append(append([]byte{id}, appendU32(nil, uint32(len(body)))...), body...)
	}
	var m []byte
	m = append(m, 0, 'a', 's', 'm', 1, 0, 0, 0)
	m = append(m, sec(1, 1, 0x60, 0, 0)...)                                       // types
	m = append(m, sec(2, 1, 1, 'e', 1, 'f', 0, 0)...)                             // import e.f: type 0
	m = append(m, sec(3, 1, 0)...)                                                // one function, type 0
	m = append(m, sec(4, 1, 0x70, 0, 1)...)                                       // table funcref min 1
	m = append(m, sec(7, 1, 1, 'g', 0, 1)...)                                     // export "g" = func 1
	m = append(m, sec(9, 1, 0, 0x41, 0, 0x0b, 1, 1)...)                           // elem: table 0 at 0: func 1
	body := []byte{0, 0x03, 0x40, 0x10, 0x00, 0x10, 0x01, 0x0c, 0x00, 0x0b, 0x0b} // loop; call 0; call 1; br 0; end; end
	m = append(m, sec(10, append([]byte{1, byte(len(body))}, body...)...)...)
	m = append(m, sec(0, 4, 'n', 'a', 'm', 'e', 1, 4, 1, 1, 1, 'g')...) // func 1 is "g"
	return m
}

func TestInstrumentRenumbers(t *testing.T) {
	out, err := instrument(tinyModule())
	if err != nil {
		t.Fatal(err)
	}
	imports, exports, err := inspect(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(imports) != 2 || imports[1].module != sandboxModule || imports[1].name != tickName {
		t.Fatalf("imports: %v", imports)
	}
	if len(exports) != 1 || exports[0].name != "g" {
		t.Fatalf("exports: %v", exports)
	}
	// The export, the element and the self-call now name function 2;
	// the call to the import (function 0) is unchanged.
	if !bytes.Contains(out, []byte{7, 5, 1, 1, 'g', 0, 2}) {
		t.Error("export not renumbered")
	}
	if !bytes.Contains(out, []byte{0x41, 0, 0x0b, 1, 2}) {
		t.Error("element segment not renumbered")
	}
	if !bytes.Contains(out, []byte{0x10, 0x00, 0x10, 0x02, 0x0c}) {
		t.Error("calls not renumbered")
	}
	if !bytes.Contains(out, []byte{1, 4, 1, 2, 1, 'g'}) {
		t.Error("name section not renumbered")
	}
}

func FuzzInstrument(f *testing.F) {
	f.Add(tinyModule())
	f.Add([]byte{0, 'a', 's', 'm', 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = inspect(b)
		_, _ = instrument(b)
	})
}
