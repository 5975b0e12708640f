//go:build !wasip1

package jwt

import (
	"crypto/tls"
	"net"
	"net/http"
)

// newHTTPClient builds the client for discovery and JWKS requests:
// bounded in time, TLS 1.2+ with caPEM as the only roots when given, and
// following redirects only to the same host over the same or a stronger
// scheme.
func newHTTPClient(caPEM string) (*http.Client, error) {
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if caPEM != "" {
		pool, err := certPool(caPEM)
		if err != nil {
			return nil, err
		}
		tlsConf.RootCAs = pool
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: fetchTimeout}).DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   fetchTimeout,
		ResponseHeaderTimeout: fetchTimeout,
		ForceAttemptHTTP2:     true,
		// Fetches are rare; idle connections would outlive the client.
		DisableKeepAlives: true,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       fetchTimeout,
		CheckRedirect: checkRedirect,
	}, nil
}
