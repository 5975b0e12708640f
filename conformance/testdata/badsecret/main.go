// Command badsecret is a broken sample plugin declaring the kv and
// leasing profiles. Its reads drop every value that is not a string
// (kv.roundtrip), its listings are empty (kv.list) and its deletes do
// nothing (kv.delete). For role "bad", the one its fixture names, it
// issues a lease with a negative TTL (leasing.issue), answers renewals
// with nothing (leasing.renew) and refuses a second revocation
// (leasing.revoke); other roles behave, so that the core checks pass.
package main

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
	sdkplugin "github.com/wardproject/ward/sdk/plugin"
)

func main() {
	sdkplugin.Serve(sdkplugin.ServeOpts{Name: "badsecret", Version: "1.0.0", Type: logical.TypeSecret, Factory: factory,
		Capabilities: []string{"kv", "leasing"}})
}

var (
	mu      sync.Mutex // protects revoked
	revoked = map[string]bool{}
)

func factory(context.Context, *logical.BackendConfig) (logical.Backend, error) {
	b := &framework.Backend{Help: "A broken key-value store with leases.", BackendType: logical.TypeSecret}
	b.Paths = []*framework.Path{
		{
			Pattern:             "data/" + framework.MatchAllRegex("key"),
			TakesArbitraryInput: true,
			Operations: map[logical.Operation]framework.OperationFunc{
				logical.UpdateOperation: func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
					v, err := json.Marshal(req.Data)
					if err != nil {
						return nil, err
					}
					return nil, req.Storage.Put(ctx, &logical.StorageEntry{Key: "data/" + d.Get("key").(string), Value: v})
				},
				logical.ReadOperation: func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
					e, err := req.Storage.Get(ctx, "data/"+d.Get("key").(string))
					if err != nil || e == nil {
						return nil, err
					}
					var all map[string]any
					if err := json.Unmarshal(e.Value, &all); err != nil {
						return nil, err
					}
					strs := map[string]any{}
					for k, v := range all {
						if s, ok := v.(string); ok {
							strs[k] = s
						}
					}
					return &logical.Response{Data: strs}, nil
				},
				logical.ListOperation: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
					return nil, nil
				},
				logical.DeleteOperation: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
					return nil, nil
				},
			},
			Fields:       map[string]*framework.FieldSchema{"key": {Type: framework.TypeString, Description: "The key."}},
			HelpSynopsis: "Objects at keys.",
		},
		{
			Pattern:      "creds/" + framework.GenericNameRegex("name"),
			Fields:       map[string]*framework.FieldSchema{"name": {Type: framework.TypeString, Description: "The role."}},
			Operations:   map[logical.Operation]framework.OperationFunc{logical.ReadOperation: issue},
			HelpSynopsis: "Issue a credential under a lease.",
		},
	}
	b.SecretRenew = func(ctx context.Context, req *logical.Request) (*logical.Response, error) {
		if req.Secret.InternalData["role"] == "bad" {
			return nil, nil
		}
		return &logical.Response{Secret: &logical.Secret{TTL: time.Hour, Renewable: true, InternalData: req.Secret.InternalData}}, nil
	}
	b.SecretRevoke = func(ctx context.Context, req *logical.Request) (*logical.Response, error) {
		mu.Lock()
		defer mu.Unlock()
		if req.Secret.InternalData["role"] == "bad" && revoked[req.Secret.LeaseID] {
			return nil, logical.InvalidRequest("lease already revoked")
		}
		revoked[req.Secret.LeaseID] = true
		return nil, nil
	}
	return b, nil
}

func issue(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	role := d.Get("name").(string)
	ttl := time.Hour
	if role == "bad" {
		ttl = -5 * time.Second
	}
	return &logical.Response{
		Data:   map[string]any{"username": "u-" + role},
		Secret: &logical.Secret{TTL: ttl, MaxTTL: 2 * time.Hour, Renewable: true, InternalData: map[string]any{"role": role}},
	}, nil
}
