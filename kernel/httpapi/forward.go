package httpapi

import (
	"errors"
	"net/http"
	"net/http/httputil"
	"net/url"
)

// forwardedHeader marks a request a standby forwarded, so that a node that
// is itself a standby when it arrives (leadership moved meanwhile) answers
// 503 instead of forwarding it again: no request circles between nodes.
const forwardedHeader = "X-Ward-Forwarded"

// forward sends a standby's request to the active node and relays its
// answer unchanged, as Vault's standbys do: the client may talk to any
// node. sys/init, sys/seal-status, sys/unseal, sys/health, sys/leader and
// sys/metrics are answered by every node itself and never come here.
func (s *server) forward(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(forwardedHeader) != "" {
		respondError(w, http.StatusServiceUnavailable, errors.New("the active node changed while the request was forwarded: retry"))
		return
	}
	addr := s.core.ActiveAPIAddress()
	target, err := url.Parse(addr)
	if addr == "" || err != nil || target.Host == "" {
		respondError(w, http.StatusServiceUnavailable, errors.New("this node is a standby and no active node is known: retry"))
		return
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
			pr.Out.Header.Set(forwardedHeader, "1")
		},
		Transport: s.opts.ForwardTransport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.opts.Logger.Warn("forwarding to the active node failed", "active_node", addr, "error", err)
			respondError(w, http.StatusBadGateway, errors.New("the active node could not be reached: retry"))
		},
	}
	proxy.ServeHTTP(w, r)
}
