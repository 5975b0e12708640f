package wasm

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/wardproject/ward/sdk/wasmguest/abi"
)

// An import or export of a module, as its binary declares it.
type importEntry struct {
	module, name string
	kind         byte // 0 func, 1 table, 2 memory, 3 global, 4 tag
}

type exportEntry struct {
	name string
	kind byte
}

var errTruncated = errors.New("truncated or malformed WebAssembly binary")

// inspect reads the import and export sections of a binary without
// compiling it: registration refuses a module on these alone, in
// milliseconds, before spending seconds on compilation. Only the section
// framing and those two sections are read; wazero validates the rest.
func inspect(bin []byte) (imports []importEntry, exports []exportEntry, err error) {
	if len(bin) < 8 || !bytes.Equal(bin[:4], []byte("\x00asm")) {
		return nil, nil, errors.New("not a WebAssembly binary (bad magic)")
	}
	if !bytes.Equal(bin[4:8], []byte{1, 0, 0, 0}) {
		return nil, nil, errors.New("unsupported WebAssembly binary version (want 1)")
	}
	d := decoder{b: bin[8:]}
	for len(d.b) > 0 {
		id := d.byte()
		size := d.u32()
		body := d.bytes(int(size))
		if d.err != nil {
			return nil, nil, errTruncated
		}
		sd := decoder{b: body}
		switch id {
		case 2: // imports
			n := sd.u32()
			for i := uint32(0); i < n && sd.err == nil; i++ {
				e := importEntry{module: sd.name(), name: sd.name(), kind: sd.byte()}
				switch e.kind {
				case 0: // func: type index
					sd.u32()
				case 1: // table: reftype, limits
					sd.byte()
					sd.limits()
				case 2: // memory: limits
					sd.limits()
				case 3: // global: valtype, mutability
					sd.byte()
					sd.byte()
				case 4: // tag: attribute, type index
					sd.byte()
					sd.u32()
				default:
					sd.err = errTruncated
				}
				imports = append(imports, e)
			}
		case 7: // exports
			n := sd.u32()
			for i := uint32(0); i < n && sd.err == nil; i++ {
				e := exportEntry{name: sd.name(), kind: sd.byte()}
				sd.u32()
				exports = append(exports, e)
			}
		}
		if sd.err != nil {
			return nil, nil, errTruncated
		}
	}
	return imports, exports, nil
}

// decoder reads the LEB128 framing of a WebAssembly binary.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.err = errTruncated
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) u32() uint32 {
	var v uint32
	for shift := 0; shift < 35; shift += 7 {
		c := d.byte()
		if d.err != nil {
			return 0
		}
		v |= uint32(c&0x7f) << shift
		if c < 0x80 {
			return v
		}
	}
	d.err = errTruncated
	return 0
}

func (d *decoder) u64() uint64 {
	var v uint64
	for shift := 0; shift < 70; shift += 7 {
		c := d.byte()
		if d.err != nil {
			return 0
		}
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v
		}
	}
	d.err = errTruncated
	return 0
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil || n < 0 || n > len(d.b) {
		d.err = errTruncated
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) name() string { return string(d.bytes(int(d.u32()))) }

func (d *decoder) limits() {
	flags := d.byte()
	if flags&0x04 != 0 { // memory64: 64-bit limits
		d.u64()
		if flags&0x01 != 0 {
			d.u64()
		}
		return
	}
	d.u32()
	if flags&0x01 != 0 {
		d.u32()
	}
}

// The WASI preview 1 functions a module may import. Real ones: clocks and
// randomness (from the host's real sources), stdout/stderr (to the log,
// capped), proc_exit (discards the instance); args and environment are
// empty, stdin is empty. Inert ones are the read-only lookups Go's
// standard library links whether or not a plugin uses them (os.Open and
// os.Stat through net/http, x509's certificate directories through
// crypto/tls: KV imports path_open and path_filestat_get): nothing is
// preopened, so every path or directory call fails with EBADF. Refused:
// every socket function, every function that creates, changes or removes
// filesystem objects, and any name not listed here.
var wasiAllowed = map[string]bool{
	// real
	"args_get": true, "args_sizes_get": true, "environ_get": true, "environ_sizes_get": true,
	"clock_res_get": true, "clock_time_get": true, "random_get": true,
	"proc_exit": true, "sched_yield": true, "poll_oneoff": true,
	"fd_write": true, "fd_read": true, "fd_close": true,
	"fd_fdstat_get": true, "fd_fdstat_set_flags": true,
	"fd_prestat_get": true, "fd_prestat_dir_name": true,
	// inert: no file or directory can be opened
	"path_open": true, "path_filestat_get": true, "path_readlink": true,
	"fd_readdir": true, "fd_filestat_get": true, "fd_seek": true, "fd_tell": true, "fd_pread": true,
}

// wasiClass names the family of a refused WASI function for the error.
func wasiClass(name string) string {
	switch {
	case strings.HasPrefix(name, "sock_"):
		return "a WASI socket function"
	case strings.HasPrefix(name, "path_"), strings.HasPrefix(name, "fd_"):
		return "a WASI filesystem function"
	}
	return "an unknown WASI function"
}

// wardImports are the host functions of module "ward" (abi.Import*).
var wardImports = map[string]bool{
	abi.ImportInput: true, abi.ImportOutput: true, abi.ImportStorage: true,
	abi.ImportHTTP: true, abi.ImportTake: true, abi.ImportLog: true,
	abi.ImportLock: true,
}

// checkSurface applies the registration rules to a module's imports and
// exports; minor is the ABI minor the module's marker will be asked for.
func checkSurface(imports []importEntry, exports []exportEntry) error {
	var markers []string
	hasCall, hasMemory := false, false
	for _, e := range exports {
		switch {
		case e.kind == 0 && strings.HasPrefix(e.name, abi.MarkerPrefix):
			markers = append(markers, e.name)
		case e.kind == 0 && e.name == abi.Call:
			hasCall = true
		case e.kind == 2 && e.name == "memory":
			hasMemory = true
		}
	}
	switch len(markers) {
	case 0:
		return compileError(ErrNotWardModule, "%v: it exports no %sN function declaring its ABI version; this server speaks ABI v%d",
			ErrNotWardModule, abi.MarkerPrefix, abi.Major)
	case 1:
	default:
		sort.Strings(markers)
		return compileError(ErrABIVersion, "%v: the module declares several ABI versions (%s); this server speaks v%d",
			ErrABIVersion, strings.Join(markers, ", "), abi.Major)
	}
	if markers[0] != abi.Marker {
		v := strings.TrimPrefix(markers[0], abi.MarkerPrefix)
		if n, err := strconv.Atoi(v); err == nil {
			v = strconv.Itoa(n)
		} else {
			v = strconv.Quote(v)
		}
		return compileError(ErrABIVersion, "%v: the module speaks Ward WASM ABI v%s; this server speaks v%d",
			ErrABIVersion, v, abi.Major)
	}
	if !hasCall || !hasMemory {
		return compileError(ErrNotWardModule, "%v: ABI v%d needs the exports %q and \"memory\"", ErrNotWardModule, abi.Major, abi.Call)
	}
	for _, im := range imports {
		if im.kind != 0 {
			return compileError(ErrForbiddenImport, "%v: it imports %s.%s, which is not a function (the sandbox provides functions only)",
				ErrForbiddenImport, im.module, im.name)
		}
		switch im.module {
		case "wasi_snapshot_preview1":
			if !wasiAllowed[im.name] {
				return compileError(ErrForbiddenImport, "%v: it imports %s.%s, %s; the sandbox gives modules no filesystem, sockets or environment",
					ErrForbiddenImport, im.module, im.name, wasiClass(im.name))
			}
		case abi.ImportModule:
			if !wardImports[im.name] {
				return compileError(ErrForbiddenImport, "%v: it imports %s.%s, which ABI v%d does not define",
					ErrForbiddenImport, im.module, im.name, abi.Major)
			}
		default:
			return compileError(ErrForbiddenImport, "%v: it imports %s.%s from an unknown module %q",
				ErrForbiddenImport, im.module, im.name, im.module)
		}
	}
	return nil
}

func (e importEntry) String() string { return fmt.Sprintf("%s.%s", e.module, e.name) }
