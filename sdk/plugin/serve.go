package plugin

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/wardproject/ward/sdk/logical"
	pb "github.com/wardproject/ward/sdk/proto/ward/plugin/v1"
)

// ServeOpts describes the plugin a binary serves.
type ServeOpts struct {
	// Name and Version identify the plugin in Info.
	Name    string
	Version string
	// Type is "secret" or "auth".
	Type logical.BackendType
	// Factory builds one backend per mount.
	Factory logical.Factory
	// Capabilities declares conformance profiles (for example "kv").
	Capabilities []string
}

// Serve runs the plugin until the host stops it. Call it from main. It
// never returns normally; run by hand (without the host's handshake) it
// prints a short message and exits 1.
func Serve(opts ServeOpts) {
	if opts.Factory == nil {
		fmt.Fprintln(os.Stderr, "ward plugin: ServeOpts.Factory is required")
		os.Exit(1)
	}
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: Handshake,
		VersionedPlugins: map[int]goplugin.PluginSet{
			ProtocolVersion: {pluginKey: &grpcPlugin{serve: &opts}},
		},
		GRPCServer: goplugin.DefaultGRPCServer,
	})
}

// newPluginLogger writes JSON lines go-plugin's host re-logs at their level.
func newPluginLogger(name string) *slog.Logger {
	h := slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.LevelKey:
				return slog.String("@level", levelName(a.Value.Any()))
			case slog.MessageKey:
				return slog.String("@message", a.Value.String())
			case slog.TimeKey:
				return slog.Attr{Key: "@timestamp", Value: a.Value}
			}
			return a
		},
	})
	return slog.New(h).With("@module", name)
}

func levelName(v any) string {
	l, _ := v.(slog.Level)
	switch {
	case l >= slog.LevelError:
		return "error"
	case l >= slog.LevelWarn:
		return "warn"
	case l >= slog.LevelInfo:
		return "info"
	}
	return "debug"
}

// backendServer is the plugin side of the Backend service.
type backendServer struct {
	pb.UnimplementedBackendServer
	opts   *ServeOpts
	broker *goplugin.GRPCBroker
	logger *slog.Logger

	mu       sync.RWMutex // protects the fields below
	mounts   map[string]*mountBackend
	storage  pb.StorageClient
	brokerID uint32
}

type mountBackend struct {
	backend logical.Backend
	storage logical.Storage
}

func (s *backendServer) Info(context.Context, *pb.InfoRequest) (*pb.InfoReply, error) {
	return &pb.InfoReply{Name: s.opts.Name, Type: string(s.opts.Type), Version: s.opts.Version,
		SdkVersion: SDKVersion, Capabilities: s.opts.Capabilities}, nil
}

// storageClient dials the host's storage service once per process.
func (s *backendServer) storageClient(id uint32) (pb.StorageClient, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.storage != nil && s.brokerID == id {
		return s.storage, nil
	}
	conn, err := s.broker.Dial(id)
	if err != nil {
		return nil, fmt.Errorf("dial host storage: %w", err)
	}
	s.storage, s.brokerID = pb.NewStorageClient(conn), id
	return s.storage, nil
}

func (s *backendServer) Setup(ctx context.Context, req *pb.SetupRequest) (reply *pb.SetupReply, err error) {
	defer recoverAs(&err, s.logger, "setup")
	sc, err := s.storageClient(req.StorageBrokerId)
	if err != nil {
		return &pb.SetupReply{Error: errorToProto(err)}, nil
	}
	st := &grpcStorage{client: sc, mountID: req.MountId}
	b, err := s.opts.Factory(ctx, &logical.BackendConfig{
		StorageView: st, Config: req.Config, MountPoint: req.MountPoint, MountType: req.MountType,
		Logger: s.logger.With("mount", req.MountPoint),
	})
	if err == nil {
		err = b.Initialize(ctx)
	}
	if err != nil {
		return &pb.SetupReply{Error: errorToProto(err)}, nil
	}
	s.mu.Lock()
	old := s.mounts[req.MountId]
	s.mounts[req.MountId] = &mountBackend{backend: b, storage: st}
	s.mu.Unlock()
	if old != nil {
		old.backend.Cleanup(ctx)
	}
	sp := b.SpecialPaths()
	if sp == nil {
		sp = &logical.Paths{}
	}
	return &pb.SetupReply{
		SpecialPaths: &pb.Paths{Root: sp.Root, Unauthenticated: sp.Unauthenticated},
		Schema:       SchemaToProto(b.Schema()),
		Type:         string(b.Type()),
	}, nil
}

func (s *backendServer) mount(id string) *mountBackend {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.mounts[id]
}

func (s *backendServer) HandleRequest(ctx context.Context, args *pb.HandleRequestArgs) (reply *pb.HandleRequestReply, err error) {
	defer recoverAs(&err, s.logger, "request")
	m := s.mount(args.MountId)
	if m == nil {
		return &pb.HandleRequestReply{Error: errorToProto(logical.Errorf(logical.CodeUnavailable, "mount is not set up in this plugin process"))}, nil
	}
	req, err := RequestFromProto(args.Request)
	if err != nil {
		return &pb.HandleRequestReply{Error: errorToProto(err)}, nil
	}
	req.Storage = m.storage
	resp, err := m.backend.HandleRequest(ctx, req)
	if err != nil {
		return &pb.HandleRequestReply{Error: errorToProto(err)}, nil
	}
	if resp == nil {
		return &pb.HandleRequestReply{NilResponse: true}, nil
	}
	pr, err := ResponseToProto(resp)
	if err != nil {
		return &pb.HandleRequestReply{Error: errorToProto(fmt.Errorf("encode response: %w", err))}, nil
	}
	return &pb.HandleRequestReply{Response: pr}, nil
}

func (s *backendServer) InvalidateKey(ctx context.Context, args *pb.InvalidateKeyArgs) (_ *pb.Empty, err error) {
	defer recoverAs(&err, s.logger, "invalidate")
	if m := s.mount(args.MountId); m != nil {
		m.backend.InvalidateKey(ctx, args.Key)
	}
	return &pb.Empty{}, nil
}

func (s *backendServer) Cleanup(ctx context.Context, ref *pb.MountRef) (_ *pb.Empty, err error) {
	defer recoverAs(&err, s.logger, "cleanup")
	s.mu.Lock()
	m := s.mounts[ref.MountId]
	delete(s.mounts, ref.MountId)
	s.mu.Unlock()
	if m != nil {
		m.backend.Cleanup(ctx)
	}
	return &pb.Empty{}, nil
}

// recoverAs turns a panic in plugin code into an internal error so one bad
// request does not kill the process serving every mount. The panic value is
// not returned to the host (it may hold secret data); the stack goes to the
// plugin's own log.
func recoverAs(err *error, logger *slog.Logger, what string) {
	if r := recover(); r != nil {
		logger.Error("plugin panicked", "during", what, "stack", string(debug.Stack()))
		*err = fmt.Errorf("plugin panicked during %s", what)
	}
}

// grpcStorage is a mount's storage view seen from the plugin.
type grpcStorage struct {
	client  pb.StorageClient
	mountID string
}

var _ logical.Storage = (*grpcStorage)(nil)

func (g *grpcStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	r, err := g.client.Get(ctx, &pb.StorageGetArgs{MountId: g.mountID, Key: key})
	if err != nil {
		return nil, err
	}
	if r.Error != nil {
		return nil, errorFromProto(r.Error)
	}
	if !r.Found {
		return nil, nil
	}
	return &logical.StorageEntry{Key: key, Value: r.Value}, nil
}

func (g *grpcStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	r, err := g.client.Put(ctx, &pb.StoragePutArgs{MountId: g.mountID, Key: e.Key, Value: e.Value})
	if err != nil {
		return err
	}
	return errorFromProto(r.Error)
}

func (g *grpcStorage) Delete(ctx context.Context, key string) error {
	r, err := g.client.Delete(ctx, &pb.StorageDeleteArgs{MountId: g.mountID, Key: key})
	if err != nil {
		return err
	}
	return errorFromProto(r.Error)
}

func (g *grpcStorage) List(ctx context.Context, prefix string) ([]string, error) {
	r, err := g.client.List(ctx, &pb.StorageListArgs{MountId: g.mountID, Prefix: prefix})
	if err != nil {
		return nil, err
	}
	return r.Keys, errorFromProto(r.Error)
}

// grpcPlugin binds the Backend service to go-plugin on both sides.
type grpcPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
	serve   *ServeOpts      // plugin side
	storage StorageResolver // host side
}

func (p *grpcPlugin) GRPCServer(broker *goplugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterBackendServer(s, &backendServer{
		opts: p.serve, broker: broker, mounts: map[string]*mountBackend{},
		logger: newPluginLogger(p.serve.Name),
	})
	return nil
}

func (p *grpcPlugin) GRPCClient(ctx context.Context, broker *goplugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	id := broker.NextId()
	go broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
		s := grpc.NewServer(opts...)
		pb.RegisterStorageServer(s, &storageServer{resolve: p.storage})
		return s
	})
	return &Client{backend: pb.NewBackendClient(conn), storageBrokerID: id}, nil
}
