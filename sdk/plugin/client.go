package plugin

import (
	"context"
	"errors"
	"fmt"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/wardproject/ward/sdk/logical"
	pb "github.com/wardproject/ward/sdk/proto/ward/plugin/v1"
)

// StorageResolver gives the host's storage view for a mount served by one
// plugin process; ok is false for any mount that process does not serve.
type StorageResolver func(mountID string) (s logical.Storage, ok bool)

// HostPlugins is the plugin set a host hands to go-plugin's ClientConfig.
// Only protocol version 1 is listed, so go-plugin refuses other majors.
func HostPlugins(resolve StorageResolver) map[int]goplugin.PluginSet {
	return map[int]goplugin.PluginSet{
		ProtocolVersion: {pluginKey: &grpcPlugin{storage: resolve}},
	}
}

// Dispense connects to a started go-plugin client and returns the Backend client.
func Dispense(c *goplugin.Client) (*Client, error) {
	rpc, err := c.Client()
	if err != nil {
		return nil, err
	}
	raw, err := rpc.Dispense(pluginKey)
	if err != nil {
		return nil, err
	}
	cl, ok := raw.(*Client)
	if !ok {
		return nil, fmt.Errorf("plugin dispensed %T, not a Ward backend", raw)
	}
	return cl, nil
}

// ErrTransport marks a failure to reach the plugin (as opposed to an error
// the plugin returned): the process died, hung past the deadline, or broke
// the protocol.
var ErrTransport = errors.New("plugin unreachable")

func transportErr(err error) error { return fmt.Errorf("%w: %v", ErrTransport, err) }

// Client is the host side of one plugin process.
type Client struct {
	backend         pb.BackendClient
	storageBrokerID uint32
}

// SetupResult is what a plugin reports about a mount it set up.
type SetupResult struct {
	Type         logical.BackendType
	SpecialPaths *logical.Paths
	Schema       *logical.Schema
}

// MountConfig is what the host tells a plugin about a mount.
type MountConfig struct {
	ID         string
	MountPoint string
	MountType  string
	Config     map[string]string
}

// Info returns the plugin's self-description.
func (c *Client) Info(ctx context.Context) (*pb.InfoReply, error) {
	r, err := c.backend.Info(ctx, &pb.InfoRequest{HostSdkVersion: SDKVersion})
	if err != nil {
		return nil, transportErr(err)
	}
	return r, nil
}

// Setup builds the backend for one mount inside the plugin.
func (c *Client) Setup(ctx context.Context, m MountConfig) (*SetupResult, error) {
	r, err := c.backend.Setup(ctx, &pb.SetupRequest{MountId: m.ID, MountPoint: m.MountPoint,
		MountType: m.MountType, Config: m.Config, StorageBrokerId: c.storageBrokerID})
	if err != nil {
		return nil, transportErr(err)
	}
	if r.Error != nil {
		return nil, errorFromProto(r.Error)
	}
	sp := &logical.Paths{}
	if r.SpecialPaths != nil {
		sp.Root, sp.Unauthenticated = r.SpecialPaths.Root, r.SpecialPaths.Unauthenticated
	}
	return &SetupResult{Type: logical.BackendType(r.Type), SpecialPaths: sp, Schema: SchemaFromProto(r.Schema)}, nil
}

// HandleRequest sends one request to the mount's backend.
func (c *Client) HandleRequest(ctx context.Context, mountID string, req *logical.Request) (*logical.Response, error) {
	preq, err := RequestToProto(req)
	if err != nil {
		return nil, logical.InvalidRequest("request data cannot be encoded")
	}
	r, err := c.backend.HandleRequest(ctx, &pb.HandleRequestArgs{MountId: mountID, Request: preq})
	if err != nil {
		return nil, transportErr(err)
	}
	if r.Error != nil {
		return nil, errorFromProto(r.Error)
	}
	if r.NilResponse || r.Response == nil {
		return nil, nil
	}
	resp, err := ResponseFromProto(r.Response)
	if err != nil {
		return nil, transportErr(fmt.Errorf("malformed response: %w", err))
	}
	return resp, nil
}

// InvalidateKey tells the mount's backend a storage key changed.
func (c *Client) InvalidateKey(ctx context.Context, mountID, key string) error {
	if _, err := c.backend.InvalidateKey(ctx, &pb.InvalidateKeyArgs{MountId: mountID, Key: key}); err != nil {
		return transportErr(err)
	}
	return nil
}

// Cleanup tears the mount's backend down inside the plugin.
func (c *Client) Cleanup(ctx context.Context, mountID string) error {
	if _, err := c.backend.Cleanup(ctx, &pb.MountRef{MountId: mountID}); err != nil {
		return transportErr(err)
	}
	return nil
}

// storageServer is the host's Storage service for one plugin process.
type storageServer struct {
	pb.UnimplementedStorageServer
	resolve StorageResolver
}

var errNotYourMount = logical.Errorf(logical.CodePermissionDenied, "storage: mount is not served by this plugin process")

func (s *storageServer) view(mountID string) (logical.Storage, error) {
	if s.resolve == nil {
		return nil, errNotYourMount
	}
	st, ok := s.resolve(mountID)
	if !ok {
		return nil, errNotYourMount
	}
	return st, nil
}

func (s *storageServer) Get(ctx context.Context, a *pb.StorageGetArgs) (*pb.StorageGetReply, error) {
	st, err := s.view(a.MountId)
	if err != nil {
		return &pb.StorageGetReply{Error: errorToProto(err)}, nil
	}
	e, err := st.Get(ctx, a.Key)
	if err != nil {
		return &pb.StorageGetReply{Error: errorToProto(err)}, nil
	}
	if e == nil {
		return &pb.StorageGetReply{}, nil
	}
	return &pb.StorageGetReply{Found: true, Value: e.Value}, nil
}

func (s *storageServer) Put(ctx context.Context, a *pb.StoragePutArgs) (*pb.StorageReply, error) {
	st, err := s.view(a.MountId)
	if err == nil {
		err = st.Put(ctx, &logical.StorageEntry{Key: a.Key, Value: a.Value})
	}
	return &pb.StorageReply{Error: errorToProto(err)}, nil
}

func (s *storageServer) Delete(ctx context.Context, a *pb.StorageDeleteArgs) (*pb.StorageReply, error) {
	st, err := s.view(a.MountId)
	if err == nil {
		err = st.Delete(ctx, a.Key)
	}
	return &pb.StorageReply{Error: errorToProto(err)}, nil
}

func (s *storageServer) List(ctx context.Context, a *pb.StorageListArgs) (*pb.StorageListReply, error) {
	st, err := s.view(a.MountId)
	if err != nil {
		return &pb.StorageListReply{Error: errorToProto(err)}, nil
	}
	keys, err := st.List(ctx, a.Prefix)
	return &pb.StorageListReply{Keys: keys, Error: errorToProto(err)}, nil
}
