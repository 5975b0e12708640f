// Command sockimport imports a WASI socket function the sandbox refuses.
package main

//go:wasmimport wasi_snapshot_preview1 sock_accept
func accept(fd int32, flags int32, out *int32) uint32

//go:wasmexport ward_abi_v1
func abi() int32 { return 0 }

//go:wasmexport ward_call
func call(op, n int32) int32 {
	var fd int32
	return int32(accept(3, 0, &fd))
}

func main() {}
