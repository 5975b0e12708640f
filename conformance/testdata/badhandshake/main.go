// Command badhandshake is a broken sample plugin: it gives no name in
// Info (core.handshake) and claims whatever protocol major the host
// offers, even one SDK v1 does not define (core.version.unknown-major).
package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/wardproject/ward/conformance/testdata/sample"
	"github.com/wardproject/ward/sdk/logical"
	sdkplugin "github.com/wardproject/ward/sdk/plugin"
)

func main() {
	claimOfferedVersion()
	sdkplugin.Serve(sdkplugin.ServeOpts{Name: "", Version: "1.0.0", Type: logical.TypeSecret,
		Factory: func(context.Context, *logical.BackendConfig) (logical.Backend, error) { return sample.Item(nil), nil }})
}

// claimOfferedVersion rewrites the protocol version in go-plugin's
// handshake line (CORE|APP|NETWORK|ADDR|PROTOCOL|CERT) to the highest one
// the host offers.
func claimOfferedVersion() {
	highest := 0
	for _, v := range strings.Split(os.Getenv("PLUGIN_PROTOCOL_VERSIONS"), ",") {
		if n, err := strconv.Atoi(v); err == nil && n > highest {
			highest = n
		}
	}
	if highest == 0 {
		return
	}
	r, w, err := os.Pipe()
	if err != nil {
		return
	}
	stdout := os.Stdout
	os.Stdout = w
	go func() {
		br := bufio.NewReader(r)
		line, _ := br.ReadString('\n')
		if parts := strings.Split(line, "|"); len(parts) > 2 {
			parts[1] = strconv.Itoa(highest)
			line = strings.Join(parts, "|")
		}
		_, _ = stdout.WriteString(line)
		_, _ = io.Copy(stdout, br)
	}()
}
