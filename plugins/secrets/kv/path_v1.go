package kv

import (
	"context"
	"fmt"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// v1Paths is KV v1: every path is a secret or a folder of secrets.
func (b *backend) v1Paths() []*framework.Path {
	return []*framework.Path{{
		// No Fields: the secret is the whole request body, so no body key
		// may be checked against a schema.
		Pattern:             framework.MatchAllRegex("path"),
		TakesArbitraryInput: true,
		ExistenceCheck:      b.v1Exists,
		Operations: map[logical.Operation]framework.OperationFunc{
			logical.ReadOperation:   b.v1Read,
			logical.CreateOperation: b.v1Write,
			logical.UpdateOperation: b.v1Write,
			logical.DeleteOperation: b.v1Delete,
			logical.ListOperation:   b.v1List,
		},
		HelpSynopsis: "Read, write, delete or list unversioned secrets.",
		HelpDescription: `Writing a path stores the request's JSON object as the secret, replacing
any previous one; reading returns it unchanged. Listing a folder (a path
ending in "/", or the mount root) returns the secrets and sub-folders (with a
trailing "/") directly under it. Path segments must be non-empty and must not
be "." or "..".`,
	}}
}

func (b *backend) v1Exists(ctx context.Context, req *logical.Request, _ *framework.FieldData) (bool, error) {
	if validateKey(req.Path) != nil {
		return false, nil // the handler reports the error
	}
	s, err := b.storage(req)
	if err != nil {
		return false, err
	}
	e, err := s.Get(ctx, v1Prefix+req.Path)
	if err != nil {
		return false, fmt.Errorf("kv: storage get: %w", err)
	}
	return e != nil, nil
}

func (b *backend) v1Read(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	if err := validateKey(req.Path); err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	e, err := s.Get(ctx, v1Prefix+req.Path)
	if err != nil {
		return nil, fmt.Errorf("kv: storage get: %w", err)
	}
	if e == nil {
		return nil, nil
	}
	data, err := decodeObject(e.Value)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: data}, nil
}

func (b *backend) v1Write(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	if err := validateKey(req.Path); err != nil {
		return nil, err
	}
	if len(req.Data) == 0 {
		return nil, errMissingDataFields
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	raw, err := encodeObject(req.Data)
	if err != nil {
		return nil, err
	}
	if err := s.Put(ctx, &logical.StorageEntry{Key: v1Prefix + req.Path, Value: raw}); err != nil {
		return nil, fmt.Errorf("kv: storage put: %w", err)
	}
	return nil, nil
}

func (b *backend) v1Delete(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	if err := validateKey(req.Path); err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	return nil, deleteKey(ctx, s, v1Prefix+req.Path)
}

func (b *backend) v1List(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	prefix, err := listPrefix(req.Path)
	if err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	keys, err := s.List(ctx, v1Prefix+prefix)
	if err != nil {
		return nil, fmt.Errorf("kv: storage list: %w", err)
	}
	return logical.ListResponse(keys), nil
}
