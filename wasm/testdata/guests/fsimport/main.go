// Command fsimport imports a WASI filesystem function the sandbox refuses.
package main

import "unsafe"

//go:wasmimport wasi_snapshot_preview1 path_unlink_file
func unlink(fd int32, path unsafe.Pointer, n uint32) uint32

//go:wasmexport ward_abi_v1
func abi() int32 { return 0 }

//go:wasmexport ward_call
func call(op, n int32) int32 {
	p := []byte("/etc/passwd")
	return int32(unlink(3, unsafe.Pointer(&p[0]), uint32(len(p))))
}

func main() {}
