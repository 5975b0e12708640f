// Command unknownimport imports a host function ABI v1 does not define.
package main

//go:wasmimport ward spawn_process
func spawn() int32

//go:wasmexport ward_abi_v1
func abi() int32 { return 0 }

//go:wasmexport ward_call
func call(op, n int32) int32 { return spawn() }

func main() {}
