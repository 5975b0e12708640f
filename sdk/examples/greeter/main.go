// Command greeter is a complete third-party Ward secret engine, written only
// against the SDK: the worked example of docs/plugins.md.
//
//	go build -o /etc/ward/plugins/greeter ./sdk/examples/greeter
//	ward plugin register -sha256=$(sha256sum /etc/ward/plugins/greeter | cut -d' ' -f1) secret greeter
//	ward secrets enable -path=hello greeter
//	ward write hello/config greeting=Bonjour
//	ward read hello/greet/ada        # message: Bonjour, ada!
package main

import (
	"context"
	"fmt"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
	"github.com/wardproject/ward/sdk/plugin"
)

func main() {
	plugin.Serve(plugin.ServeOpts{
		Name:    "greeter",
		Type:    logical.TypeSecret,
		Version: "1.0.0",
		Factory: Factory,
	})
}

// Factory builds one greeter backend per mount.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	return &framework.Backend{
		Help: "Greets people. The greeting is stored in the mount's storage.",
		Paths: []*framework.Path{
			{
				Pattern: "config",
				Fields: map[string]*framework.FieldSchema{
					"greeting": {Type: framework.TypeString, Description: "Greeting word.", Default: "Hello"},
				},
				Operations: map[logical.Operation]framework.OperationFunc{
					logical.ReadOperation:   readConfig,
					logical.UpdateOperation: writeConfig,
				},
				HelpSynopsis: "Configure the greeting.",
			},
			{
				Pattern: "greet/" + framework.GenericNameRegex("name"),
				Fields: map[string]*framework.FieldSchema{
					"name": {Type: framework.TypeString, Description: "Who to greet."},
				},
				Operations: map[logical.Operation]framework.OperationFunc{
					logical.ReadOperation: greet,
				},
				HelpSynopsis: "Greet someone.",
			},
		},
	}, nil
}

type config struct {
	Greeting string `json:"greeting"`
}

func loadConfig(ctx context.Context, s logical.Storage) (*config, error) {
	e, err := s.Get(ctx, "config")
	if err != nil {
		return nil, err
	}
	c := &config{Greeting: "Hello"}
	if e != nil {
		if err := e.DecodeJSON(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func readConfig(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	c, err := loadConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{"greeting": c.Greeting}}, nil
}

func writeConfig(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	g := d.Get("greeting").(string)
	if g == "" {
		return nil, logical.InvalidRequest("greeting must not be empty")
	}
	e, err := logical.StorageEntryJSON("config", config{Greeting: g})
	if err != nil {
		return nil, err
	}
	return nil, req.Storage.Put(ctx, e)
}

func greet(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	c, err := loadConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{"message": fmt.Sprintf("%s, %s!", c.Greeting, d.Get("name"))}}, nil
}
