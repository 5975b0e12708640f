// Package hostcall declares the host functions of Ward's WASM ABI v1 (module
// "ward") for Go guests, and the pull pattern around them: a call returns
// the length of its result, which the guest then takes into memory it
// allocated itself. Outside GOOS=wasip1 it holds nothing.
//
// A guest is single-threaded and serves one call at a time, so the package
// keeps one reusable scratch buffer; callers must be done with a result
// before the next call.
package hostcall
