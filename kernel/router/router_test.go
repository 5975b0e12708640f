package router

import (
	"context"
	"testing"

	"github.com/wardproject/ward/sdk/logical"
)

type nop struct{}

func (nop) HandleRequest(context.Context, *logical.Request) (*logical.Response, error) {
	return nil, nil
}
func (nop) SpecialPaths() *logical.Paths { return &logical.Paths{} }

func TestLongestPrefix(t *testing.T) {
	r := New()
	for _, p := range []string{"secret/", "secret/team/", "sys/", "auth/token/"} {
		r.Add(&Route{Prefix: p, Handler: nop{}})
	}
	cases := []struct{ path, prefix, rel string }{
		{"secret/data/x", "secret/", "data/x"},
		{"secret/team/data/x", "secret/team/", "data/x"},
		{"secret/teamx", "secret/", "teamx"},
		{"secret", "secret/", ""},
		{"auth/token/create", "auth/token/", "create"},
		{"nosuch/x", "", ""},
		{"secre", "", ""},
	}
	for _, c := range cases {
		route, rel := r.Match(c.path)
		got := ""
		if route != nil {
			got = route.Prefix
		}
		if got != c.prefix || rel != c.rel {
			t.Errorf("Match(%q) = %q,%q want %q,%q", c.path, got, rel, c.prefix, c.rel)
		}
	}
	r.Remove("secret/team/")
	if route, rel := r.Match("secret/team/data/x"); route.Prefix != "secret/" || rel != "team/data/x" {
		t.Errorf("after remove: %q %q", route.Prefix, rel)
	}
}

func TestPathMatches(t *testing.T) {
	pats := []string{"login", "login/*", "exact"}
	for p, want := range map[string]bool{"login": true, "login/alice": true, "exact": true, "exactly": false, "other": false} {
		if got := PathMatches(pats, p); got != want {
			t.Errorf("PathMatches(%q) = %v", p, got)
		}
	}
}
