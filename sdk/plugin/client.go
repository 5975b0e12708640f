package plugin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/wardproject/ward/sdk/logical"
	pb "github.com/wardproject/ward/sdk/proto/ward/plugin/v1"
)

// StorageResolver gives the host's storage view for a mount served by one
// plugin process; ok is false for any mount that process does not serve.
type StorageResolver func(mountID string) (s logical.Storage, ok bool)

// HostPlugins is the plugin set a host hands to go-plugin's ClientConfig.
// Only protocol version 1 is listed, so go-plugin refuses other majors.
func HostPlugins() map[int]goplugin.PluginSet {
	return map[int]goplugin.PluginSet{ProtocolVersion: {pluginKey: &grpcPlugin{}}}
}

// ErrTransport marks a failure to reach the plugin (as opposed to an error
// the plugin returned): the process died or broke the protocol.
var ErrTransport = errors.New("plugin unreachable")

func transportErr(err error) error { return fmt.Errorf("%w: %v", ErrTransport, err) }

// Client is the host side of one plugin process: the gRPC control plane
// and the data channel.
type Client struct {
	backend pb.BackendClient
	resolve StorageResolver
	ch      *channel
	// inflight bounds the storage calls one plugin process can have running
	// on the host; past it the channel's read loop waits, which pushes back
	// on that plugin alone.
	inflight chan struct{}
}

// maxInflightStorage bounds a plugin's concurrent storage calls on the host.
const maxInflightStorage = 256

// Connect dispenses the backend from a started go-plugin client and opens
// the data channel. resolve confines the plugin's storage calls.
func Connect(ctx context.Context, c *goplugin.Client, resolve StorageResolver) (*Client, error) {
	rpc, err := c.Client()
	if err != nil {
		return nil, err
	}
	raw, err := rpc.Dispense(pluginKey)
	if err != nil {
		return nil, err
	}
	backend, ok := raw.(pb.BackendClient)
	if !ok {
		return nil, fmt.Errorf("plugin dispensed %T, not a Ward backend", raw)
	}
	cl := &Client{backend: backend, resolve: resolve, inflight: make(chan struct{}, maxInflightStorage)}
	info, err := backend.OpenChannel(ctx, &pb.Empty{})
	if err != nil {
		return nil, transportErr(fmt.Errorf("open data channel: %w", err))
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", info.SocketPath)
	if err != nil {
		return nil, transportErr(fmt.Errorf("connect data channel: %w", err))
	}
	cl.ch = newChannel(conn, cl.handleFrame)
	if err := cl.ch.send(&pb.Frame{Body: &pb.Frame_Hello{Hello: &pb.Hello{Nonce: info.Nonce, ProtocolVersion: ProtocolVersion}}}); err != nil {
		conn.Close()
		return nil, transportErr(err)
	}
	go cl.ch.readLoop(bufio.NewReaderSize(conn, 64<<10))
	return cl, nil
}

// Broken reports whether the data channel is gone (the process is useless).
func (c *Client) Broken() bool { return c.ch.closed() }

// Close closes the data channel.
func (c *Client) Close() { c.ch.fail(errors.New("closed by the host")) }

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
		MountType: m.MountType, Config: m.Config})
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

// ExistenceCheck asks the mount's backend whether the target of a write
// exists (see logical.ExistenceChecker).
func (c *Client) ExistenceCheck(ctx context.Context, mountID string, req *logical.Request) (found, exists bool, err error) {
	r, err := c.exchange(ctx, mountID, req, true)
	if err != nil {
		return false, false, err
	}
	if r.Error != nil {
		return false, false, errorFromProto(r.Error)
	}
	return r.CheckFound, r.Exists, nil
}

// HandleRequest sends one request to the mount's backend over the data
// channel. If ctx ends first, the plugin is told to cancel and ctx's error
// is returned.
func (c *Client) HandleRequest(ctx context.Context, mountID string, req *logical.Request) (*logical.Response, error) {
	r, err := c.exchange(ctx, mountID, req, false)
	if err != nil {
		return nil, err
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

// exchange sends a request frame and returns the plugin's reply.
func (c *Client) exchange(ctx context.Context, mountID string, req *logical.Request, existenceCheck bool) (*pb.HandleRequestReply, error) {
	preq, err := RequestToProto(req)
	if err != nil {
		return nil, logical.InvalidRequest("request data cannot be encoded")
	}
	args := &pb.HandleRequestArgs{MountId: mountID, Request: preq, ExistenceCheck: existenceCheck}
	if d, ok := ctx.Deadline(); ok {
		args.DeadlineUnixNano = d.UnixNano()
	}
	f := &pb.Frame{Body: &pb.Frame_Request{Request: args}}
	ans, err := c.ch.call(ctx, f)
	if err != nil {
		if errors.Is(err, errFrameTooLarge) {
			return nil, logical.InvalidRequest("request too large for the plugin")
		}
		if errors.Is(err, errFrameEncode) {
			// protobuf strings must be UTF-8; the request was not sent.
			return nil, logical.InvalidRequest("request cannot be passed to the plugin: its path or another string is not valid UTF-8")
		}
		if ctx.Err() != nil {
			_ = c.ch.send(&pb.Frame{Id: f.Id, Body: &pb.Frame_Cancel{Cancel: &pb.Cancel{}}})
			return nil, ctx.Err()
		}
		return nil, transportErr(err)
	}
	r := ans.GetReply()
	if r == nil {
		return nil, transportErr(errors.New("malformed reply"))
	}
	return r, nil
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

var errNotYourMount = logical.Errorf(logical.CodePermissionDenied, "storage: mount is not served by this plugin process")

// handleFrame serves the plugin's storage calls. It runs on the read loop,
// so the work happens in its own goroutine.
func (c *Client) handleFrame(f *pb.Frame) {
	call := f.GetStorageCall()
	if call == nil {
		return
	}
	select {
	case c.inflight <- struct{}{}:
	case <-c.ch.done:
		return
	}
	go func() {
		defer func() { <-c.inflight }()
		res := c.storage(call)
		err := c.ch.send(&pb.Frame{Id: f.Id, Body: &pb.Frame_StorageResult{StorageResult: res}})
		if errors.Is(err, errFrameTooLarge) {
			// Answer this call with an error; the channel stays up.
			res = &pb.StorageResult{Error: errorToProto(logical.InvalidRequest("storage result too large for the plugin channel"))}
			err = c.ch.send(&pb.Frame{Id: f.Id, Body: &pb.Frame_StorageResult{StorageResult: res}})
		}
		if err != nil {
			c.ch.fail(err)
		}
	}()
}

// storageTimeout bounds one storage call made by a plugin.
const storageTimeout = 30 * time.Second

func (c *Client) storage(call *pb.StorageCall) *pb.StorageResult {
	st, ok := c.resolve(call.MountId)
	if !ok {
		return &pb.StorageResult{Error: errorToProto(errNotYourMount)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), storageTimeout)
	defer cancel()
	switch call.Op {
	case pb.StorageCall_GET:
		e, err := st.Get(ctx, call.Key)
		if err != nil {
			return &pb.StorageResult{Error: errorToProto(err)}
		}
		if e == nil {
			return &pb.StorageResult{}
		}
		return &pb.StorageResult{Found: true, Value: e.Value}
	case pb.StorageCall_PUT:
		return &pb.StorageResult{Error: errorToProto(st.Put(ctx, &logical.StorageEntry{Key: call.Key, Value: call.Value}))}
	case pb.StorageCall_DELETE:
		return &pb.StorageResult{Error: errorToProto(st.Delete(ctx, call.Key))}
	case pb.StorageCall_LIST:
		keys, err := st.List(ctx, call.Key)
		return &pb.StorageResult{Keys: keys, Error: errorToProto(err)}
	case pb.StorageCall_BATCH:
		bs, ok := st.(logical.BatchStorage)
		if !ok {
			return &pb.StorageResult{Error: errorToProto(logical.Errorf(logical.CodeUnsupportedOperation, "storage: this host cannot apply batches atomically"))}
		}
		ops := make([]logical.StorageOp, len(call.Ops))
		for i, op := range call.Ops {
			ops[i] = logical.StorageOp{Key: op.Key, Value: op.Value, Delete: op.Delete}
		}
		return &pb.StorageResult{Error: errorToProto(bs.Batch(ctx, ops))}
	}
	return &pb.StorageResult{Error: errorToProto(logical.InvalidRequest("unknown storage operation"))}
}
