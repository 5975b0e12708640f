// Package plugin owns the plugin catalog and the runner that starts plugin
// processes with hashicorp/go-plugin, supervises them and routes mount
// requests to them.
//
// The catalog pins every plugin to a SHA-256 digest; the digest is checked
// before every launch. A plugin process is started with only the
// environment its catalog entry lists (never the server's), serves every
// mount of its plugin (multiplexing), and reaches storage only through the
// host's Storage service, which confines each call to the storage view of a
// mount that process serves. A crashed process is restarted on the next
// request, with backoff when it keeps crashing; a crash never propagates
// beyond the requests it was serving.
//
// This package must never hold a mount's data itself nor import plugins/.
package plugin
