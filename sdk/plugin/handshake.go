package plugin

import (
	goplugin "github.com/hashicorp/go-plugin"
)

// ProtocolVersion is the major version of the plugin protocol. It changes
// only with a breaking change to the protobuf contract.
const ProtocolVersion = 1

// SDKVersion is the release of this SDK; plugins report it in Info.
const SDKVersion = "1.0.0"

// pluginKey names the one plugin a Ward plugin binary dispenses.
const pluginKey = "backend"

// Handshake is shared by host and plugin. The cookie is not a secret: it
// only stops a plugin binary from being run by hand by mistake.
var Handshake = goplugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "WARD_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "b3f1d6a2-ward-plugin-v1-6c2e9f51",
}
