// Package wasmhttp gives a Ward WASM module outbound HTTP through the host:
// an http.RoundTripper whose requests the host makes only to hosts the
// mount grants (deny by default; every redirect hop and the resolved
// address are checked by the host, which also follows redirects). A module
// has no sockets of its own.
//
//	client := &http.Client{Transport: wasmhttp.Transport{}}
//
// A refused request fails with a *logical.Error of CodePermissionDenied.
// Outside GOOS=wasip1 Transport refuses every request.
package wasmhttp

import "errors"

// Transport is an http.RoundTripper that asks the host to make the request.
type Transport struct{}

var errNotWASM = errors.New("wasmhttp: only available inside a Ward WASM module")
