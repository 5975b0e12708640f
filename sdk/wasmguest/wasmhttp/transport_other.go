//go:build !wasip1

package wasmhttp

import "net/http"

// RoundTrip always fails outside a WASM module.
func (Transport) RoundTrip(*http.Request) (*http.Response, error) { return nil, errNotWASM }
