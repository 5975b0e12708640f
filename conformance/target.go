package conformance

import (
	"context"

	"github.com/wardproject/ward/sdk/logical"
)

// Target is a plugin under test, reached through one transport. NewGoPlugin
// and NewWasm return the two implementations.
type Target interface {
	// Transport names the transport: "go-plugin" or "wasm".
	Transport() string
	// Describe starts the plugin if it is not running (handshake with
	// protocol v1) and returns what it says about itself.
	Describe(ctx context.Context) (Info, error)
	// OfferUnknownMajor starts the plugin (a separate process or module
	// check) offering only a protocol major the SDK does not define. It
	// returns accepted == true, with what the plugin answered, when the
	// plugin claims to speak it; an error when the attempt itself failed.
	OfferUnknownMajor(ctx context.Context) (accepted bool, detail string, err error)
	// Mount sets a mount up the way the server does and returns it.
	Mount(ctx context.Context, spec MountSpec) (Mount, error)
	// ControlMount sets a mount up with the control plane exposed
	// (invalidation and cleanup, whose errors the server's runner does
	// not report). For go-plugin it is served by a second process.
	ControlMount(ctx context.Context, spec MountSpec) (ControlMount, error)
	// Restart stops the plugin (its process, or its instances) and starts
	// it again; mounts from Mount are set up again and stay usable.
	Restart(ctx context.Context) error
	// Generation changes whenever the plugin served by Mount restarts
	// ("" when the transport cannot tell).
	Generation() string
	// IsTransportError reports whether err means the plugin could not be
	// reached or failed as a whole (crashed, trapped, broke the protocol),
	// as opposed to an error the plugin returned.
	IsTransportError(err error) bool
	// Close stops everything the target started.
	Close(ctx context.Context)
}

// Info is what a plugin says about itself after the handshake.
type Info struct {
	Name         string              `json:"name"`
	Type         logical.BackendType `json:"type"`
	Version      string              `json:"version"`
	SDKVersion   string              `json:"sdk_version"`
	Capabilities []string            `json:"capabilities"`
	// Protocol is the negotiated protocol (go-plugin) or ABI (WASM) major.
	Protocol int `json:"protocol"`
}

// MountSpec describes one mount of the plugin under test.
type MountSpec struct {
	ID      string
	Path    string // "conformance-a/"
	Config  map[string]string
	Storage logical.Storage
}

// Mount is one mount served by the plugin under test.
type Mount interface {
	HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error)
	HandleExistenceCheck(ctx context.Context, req *logical.Request) (found, exists bool, err error)
	SpecialPaths() *logical.Paths
	Schema() *logical.Schema
	// Close tears the mount down.
	Close(ctx context.Context)
}

// ControlMount is a Mount with the plugin's control plane exposed.
type ControlMount interface {
	Mount
	// Type is the backend type the plugin's setup answered.
	Type() logical.BackendType
	InvalidateKey(ctx context.Context, key string) error
	// Cleanup tears the backend down inside the plugin; calling it again
	// must be harmless.
	Cleanup(ctx context.Context) error
	// Setup sets the mount up again (after a Cleanup).
	Setup(ctx context.Context) error
}
