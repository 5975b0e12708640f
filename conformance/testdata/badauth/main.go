// Command badauth is a broken sample auth method declaring auth-login.
// For user "fixture-user", the one its fixture names, its login is not an
// unauthenticated path and answers an Auth without an alias (auth.login),
// whatever the password (auth.login.refused); its tokens claim to be
// renewable but it serves no renewal (auth.renew). Other users are
// refused, so that the core checks pass.
package main

import (
	"context"
	"time"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
	sdkplugin "github.com/wardproject/ward/sdk/plugin"
)

func main() {
	sdkplugin.Serve(sdkplugin.ServeOpts{Name: "badauth", Version: "1.0.0", Type: logical.TypeAuth, Factory: factory,
		Capabilities: []string{"auth-login"}})
}

func factory(context.Context, *logical.BackendConfig) (logical.Backend, error) {
	b := &framework.Backend{Help: "A broken auth method.", BackendType: logical.TypeAuth}
	b.Paths = []*framework.Path{{
		Pattern: "login",
		Fields: map[string]*framework.FieldSchema{
			"user":     {Type: framework.TypeString, Description: "User name."},
			"password": {Type: framework.TypeString, Description: "Password."},
		},
		Operations: map[logical.Operation]framework.OperationFunc{
			logical.UpdateOperation: func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
				if d.Get("user").(string) != "fixture-user" {
					return nil, logical.InvalidRequest("invalid user or password")
				}
				return &logical.Response{Auth: &logical.Auth{DisplayName: "fixture-user", Policies: []string{"reader"},
					TTL: time.Hour, Renewable: true}}, nil
			},
		},
		HelpSynopsis: "Log in.",
	}}
	return b, nil
}
