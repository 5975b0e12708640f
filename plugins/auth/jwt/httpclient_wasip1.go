//go:build wasip1

package jwt

import (
	"errors"
	"net/http"

	"github.com/wardproject/ward/sdk/wasmguest/wasmhttp"
)

// errCAPEMUnsupported refuses jwks_ca_pem and oidc_discovery_ca_pem in a
// WASM module: the host makes the request and verifies TLS against its own
// roots, and the ABI (v1) has no way to hand it others.
var errCAPEMUnsupported = errors.New("a CA PEM is not supported by the WASM build of jwt (the host verifies TLS with its own roots); use the go-plugin build")

// newHTTPClient builds the client for discovery and JWKS requests in a
// WASM module: the host makes them, to the hosts the mount grants
// (wasm_allowed_hosts), and follows redirects itself, checking each hop
// against the grant rather than against checkRedirect's same-host rule.
// The host also bounds the request by the call's deadline.
func newHTTPClient(caPEM string) (*http.Client, error) {
	if caPEM != "" {
		return nil, errCAPEMUnsupported
	}
	return &http.Client{
		Transport:     wasmhttp.Transport{},
		Timeout:       fetchTimeout,
		CheckRedirect: checkRedirect,
	}, nil
}
