package wasm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/wardproject/ward/sdk/logical"
	"github.com/wardproject/ward/sdk/wasmguest/abi"
)

// httpGate makes a mount's outbound HTTP requests: deny by default, only
// to granted hosts, every redirect hop checked again, and no connection to
// a non-public address (checked on the address actually dialled, after
// DNS) unless granted.
type httpGate struct {
	grant  HTTPGrant
	client *http.Client // nil when nothing is granted
}

const maxRedirects = 10

func newHTTPGate(g HTTPGrant) *httpGate {
	h := &httpGate{grant: g}
	if len(g.Hosts) == 0 {
		return h
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second, Control: h.checkDial}
	h.client = &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil, // never the server's proxy environment
			DialContext:            dialer.DialContext,
			TLSHandshakeTimeout:    10 * time.Second,
			MaxResponseHeaderBytes: 1 << 20,
			ForceAttemptHTTP2:      true,
			MaxIdleConnsPerHost:    4,
			IdleConnTimeout:        90 * time.Second,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return errors.New("too many redirects")
			}
			return h.allowed(req.URL)
		},
	}
	return h
}

var errHTTPDenied = logical.Errorf(logical.CodePermissionDenied, "outbound HTTP is not granted to this mount")

// allowed checks a URL (the first one and every redirect target) against
// the grant.
func (h *httpGate) allowed(u *url.URL) error {
	port := u.Port()
	switch u.Scheme {
	case "https":
		if port == "" {
			port = "443"
		}
	case "http":
		if !h.grant.AllowPlainHTTP {
			return logical.Errorf(logical.CodePermissionDenied, "outbound HTTP: plain http:// is not granted to this mount")
		}
		if port == "" {
			port = "80"
		}
	default:
		return logical.Errorf(logical.CodePermissionDenied, "outbound HTTP: scheme %q is not allowed", u.Scheme)
	}
	if u.User != nil {
		return logical.InvalidRequest("outbound HTTP: URLs with user information are not allowed")
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	for _, g := range h.grant.Hosts {
		if grantMatches(strings.ToLower(g), host, port) {
			return nil
		}
	}
	return logical.Errorf(logical.CodePermissionDenied, "outbound HTTP to %s:%s is not granted to this mount", host, port)
}

// grantMatches matches "host", "host:port", "*.domain" and "*.domain:port".
func grantMatches(g, host, port string) bool {
	gh, gp := g, ""
	if h, p, err := net.SplitHostPort(g); err == nil {
		gh, gp = h, p
	}
	if gp == "" {
		if port != "443" && port != "80" {
			return false
		}
	} else if gp != port {
		return false
	}
	if rest, ok := strings.CutPrefix(gh, "*."); ok {
		return strings.HasSuffix(host, "."+rest)
	}
	return gh == host
}

// checkDial runs for every connection attempt with the resolved address.
func (h *httpGate) checkDial(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("outbound HTTP: unexpected dial address %q", address)
	}
	ip := ap.Addr().Unmap()
	if isPublic(ip) {
		return nil
	}
	for _, p := range h.grant.PrivateNetworks {
		if p.Contains(ip) {
			return nil
		}
	}
	return fmt.Errorf("outbound HTTP: %s is not a public address and is not granted", ip)
}

var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // CGNAT
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"), // NAT64 can reach IPv4 private space
	netip.MustParsePrefix("2001:db8::/32"),
}

func isPublic(ip netip.Addr) bool {
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// do makes one exchange. Every failure is an HTTPResponse.error the guest
// sees; none reaches the server log with the URL.
func (h *httpGate) do(ctx context.Context, r *abi.HTTPRequest, maxBody int) *abi.HTTPResponse {
	if h.client == nil {
		return &abi.HTTPResponse{Err: errHTTPDenied}
	}
	u, err := url.Parse(r.URL)
	if err != nil || !u.IsAbs() {
		return &abi.HTTPResponse{Err: logical.InvalidRequest("outbound HTTP: invalid URL")}
	}
	if err := h.allowed(u); err != nil {
		return &abi.HTTPResponse{Err: err}
	}
	method := r.Method
	if method == "" {
		method = http.MethodGet
	}
	ctx, cancel := context.WithTimeout(ctx, h.grant.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(append([]byte(nil), r.Body...)))
	if err != nil {
		return &abi.HTTPResponse{Err: logical.InvalidRequest("outbound HTTP: invalid request")}
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := h.client.Do(req)
	if err != nil {
		var le *logical.Error
		if errors.As(err, &le) {
			return &abi.HTTPResponse{Err: le}
		}
		return &abi.HTTPResponse{Err: logical.Errorf(logical.CodeUnavailable, "outbound HTTP failed: %v", err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(maxBody)+1))
	if err != nil {
		return &abi.HTTPResponse{Err: logical.Errorf(logical.CodeUnavailable, "outbound HTTP: reading the response: %v", err)}
	}
	if len(body) > maxBody-64<<10 { // leave room for the headers in the message
		return &abi.HTTPResponse{Err: logical.Errorf(logical.CodeUnavailable, "outbound HTTP: response body exceeds the message limit")}
	}
	return &abi.HTTPResponse{StatusCode: int32(resp.StatusCode), Header: resp.Header, Body: body}
}
