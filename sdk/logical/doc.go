// Package logical holds the Go types of Ward's plugin contract (SDK v1):
// requests, responses, storage and the Backend interface every secret engine
// and auth method implements.
//
// This package is what both sides of a plugin boundary agree on. The kernel
// converts these types to and from protobuf (see sdk/plugin) and never hands
// a plugin anything that is not in here. It must never import the kernel.
package logical
