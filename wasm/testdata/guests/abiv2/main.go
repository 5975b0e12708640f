// Command abiv2 declares Ward WASM ABI v2, which this host must refuse.
package main

//go:wasmexport ward_abi_v2
func abiV2() int32 { return 0 }

//go:wasmexport ward_call
func call(op, n int32) int32 { return 0 }

func main() {}
