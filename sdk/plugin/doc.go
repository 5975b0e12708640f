// Package plugin is the go-plugin (gRPC subprocess) transport of the Ward
// plugin protocol v1: Serve for plugin binaries, Client for the host.
//
// The handshake carries protocol version 1 and a magic cookie; a host
// refuses any other major. Every message is defined in
// sdk/proto/ward/plugin/v1 and shared with the WASM transport.
package plugin
