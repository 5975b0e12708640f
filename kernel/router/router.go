// Package router maps request paths to the mount that serves them by
// longest prefix. It holds no data; it only answers "who serves this path".
package router

import (
	"context"
	"strings"
	"sync"

	radix "github.com/armon/go-radix"

	"github.com/wardproject/ward/sdk/logical"
)

// Handler serves the requests of one mount. Both in-kernel backends and
// plugin handles implement it.
type Handler interface {
	HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error)
	SpecialPaths() *logical.Paths
}

// Route is a mounted handler.
type Route struct {
	Prefix   string // "secret/"
	Type     string
	Accessor string
	Handler  Handler
	// Auth marks an auth method's mount: only its answers may carry an
	// Auth from which the kernel mints a token.
	Auth bool
}

// Router is safe for concurrent use.
type Router struct {
	mu   sync.RWMutex // protects tree
	tree *radix.Tree
}

// New returns an empty router.
func New() *Router { return &Router{tree: radix.New()} }

// Add mounts r at r.Prefix, replacing any route there.
func (rt *Router) Add(r *Route) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.tree.Insert(r.Prefix, r)
}

// Remove unmounts the route at prefix.
func (rt *Router) Remove(prefix string) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.tree.Delete(prefix)
}

// Match returns the route serving path and the path relative to it. A path
// equal to a mount without its slash ("secret") matches that mount.
func (rt *Router) Match(path string) (*Route, string) {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	prefix, v, ok := rt.tree.LongestPrefix(path)
	if !ok {
		if v, ok := rt.tree.Get(path + "/"); ok {
			return v.(*Route), ""
		}
		return nil, ""
	}
	return v.(*Route), strings.TrimPrefix(path, prefix)
}

// PathMatches reports whether rel matches one of the special path patterns
// (exact, or prefix when the pattern ends with "*").
func PathMatches(patterns []string, rel string) bool {
	for _, p := range patterns {
		if strings.HasSuffix(p, "*") {
			if strings.HasPrefix(rel, strings.TrimSuffix(p, "*")) {
				return true
			}
		} else if rel == p {
			return true
		}
	}
	return false
}
