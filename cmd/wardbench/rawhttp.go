package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/url"
	"strconv"
)

// rawConn is a minimal keep-alive HTTP/1.1 client for one connection. The
// load generator shares the machine with the server it measures, so it
// must cost as little CPU as possible: requests are pre-formatted bytes and
// responses are parsed only as far as the status and body length.
type rawConn struct {
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(addr string) (*rawConn, error) {
	u, err := url.Parse(addr)
	if err != nil {
		return nil, err
	}
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		return nil, err
	}
	return &rawConn{c: c, br: bufio.NewReaderSize(c, 16<<10)}, nil
}

// formatRequest builds the bytes of one request.
func formatRequest(method, path, token string, body []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: ward\r\nX-Vault-Token: %s\r\n", method, path, token)
	if body != nil {
		fmt.Fprintf(&b, "Content-Type: application/json\r\nContent-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}

// do sends req and reads the response, returning its status code.
func (r *rawConn) do(req []byte) (int, error) {
	if _, err := r.c.Write(req); err != nil {
		return 0, err
	}
	line, err := r.br.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 12 {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	length, chunked := -1, false
	for {
		h, err := r.br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(h) <= 2 {
			break
		}
		switch {
		case hasPrefixFold(h, "content-length:"):
			length, err = strconv.Atoi(string(bytes.TrimSpace(h[len("content-length:"):])))
			if err != nil {
				return 0, fmt.Errorf("bad content-length %q", h)
			}
		case hasPrefixFold(h, "transfer-encoding:") && bytes.Contains(bytes.ToLower(h), []byte("chunked")):
			chunked = true
		}
	}
	switch {
	case chunked:
		return status, r.skipChunks()
	case length > 0:
		_, err = r.br.Discard(length)
		return status, err
	}
	return status, nil
}

func (r *rawConn) skipChunks() error {
	for {
		line, err := r.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
		if err != nil {
			return fmt.Errorf("bad chunk size %q", line)
		}
		if _, err := r.br.Discard(int(n) + 2); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
	}
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && bytes.EqualFold(b[:len(prefix)], []byte(prefix))
}
