//go:build wasip1

package wasmhttp

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/wardproject/ward/sdk/wasmguest/abi"
	"github.com/wardproject/ward/sdk/wasmguest/internal/hostcall"
)

// RoundTrip sends the request to the host and waits for its answer.
func (Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		body, err = io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
	}
	msg := abi.AppendHTTPRequest(hostcall.Scratch(), &abi.HTTPRequest{
		Method: req.Method, URL: req.URL.String(), Header: req.Header, Body: body})
	raw, err := hostcall.HTTP(msg)
	if err != nil {
		return nil, err
	}
	res, err := abi.DecodeHTTPResponse(raw)
	if err != nil {
		return nil, errors.New("wasmhttp: malformed answer from the host")
	}
	if res.Err != nil {
		return nil, res.Err
	}
	h := http.Header(res.Header)
	if h == nil {
		h = http.Header{}
	}
	return &http.Response{
		Status:        strconv.Itoa(int(res.StatusCode)) + " " + http.StatusText(int(res.StatusCode)),
		StatusCode:    int(res.StatusCode),
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(res.Body)),
		ContentLength: int64(len(res.Body)),
		Request:       req,
	}, nil
}
