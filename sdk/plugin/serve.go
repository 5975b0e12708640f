package plugin

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

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
	exitWhenOrphaned(orphanCheckInterval)
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
	logger *slog.Logger
	// chReady is closed once the host's data channel is up.
	chReady chan struct{}

	mu       sync.RWMutex // protects the fields below
	mounts   map[string]*mountBackend
	ch       *channel
	chOpened bool
	inflight map[uint64]context.CancelFunc
}

type mountBackend struct {
	backend logical.Backend
	storage logical.Storage
}

func (s *backendServer) Info(context.Context, *pb.InfoRequest) (*pb.InfoReply, error) {
	return &pb.InfoReply{Name: s.opts.Name, Type: string(s.opts.Type), Version: s.opts.Version,
		SdkVersion: SDKVersion, Capabilities: s.opts.Capabilities}, nil
}

// OpenChannel listens for the host's data channel on a unix socket in a
// fresh private directory and accepts exactly one authenticated connection.
func (s *backendServer) OpenChannel(ctx context.Context, _ *pb.Empty) (*pb.ChannelInfo, error) {
	s.mu.Lock()
	if s.chOpened {
		s.mu.Unlock()
		return nil, errors.New("data channel already opened")
	}
	s.chOpened = true
	s.mu.Unlock()
	dir, err := os.MkdirTemp("", "ward-plugin-")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "data.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		ln.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	go s.acceptChannel(ln.(*net.UnixListener), dir, nonce)
	return &pb.ChannelInfo{SocketPath: path, Nonce: nonce}, nil
}

func (s *backendServer) acceptChannel(ln *net.UnixListener, dir string, nonce []byte) {
	defer os.RemoveAll(dir)
	_ = ln.SetDeadline(time.Now().Add(30 * time.Second))
	conn, err := ln.Accept()
	ln.Close()
	os.RemoveAll(dir)
	if err != nil {
		s.logger.Error("data channel: no connection from the host", "error", err)
		return
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	hello, err := readFrame(br)
	h := hello.GetHello()
	if err != nil || h == nil || subtle.ConstantTimeCompare(h.Nonce, nonce) != 1 {
		s.logger.Error("data channel: the first frame is not the host's hello; closing")
		conn.Close()
		return
	}
	ch := newChannel(conn, s.handleFrame)
	s.mu.Lock()
	s.ch = ch
	s.mu.Unlock()
	close(s.chReady)
	ch.readLoop(br)
}

// readFrame reads one frame (used for the hello, before the read loop).
func readFrame(br *bufio.Reader) (*pb.Frame, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(hdr[:])
	if size > 1<<16 {
		return nil, errors.New("hello frame too large")
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(br, buf); err != nil {
		return nil, err
	}
	f := &pb.Frame{}
	return f, proto.Unmarshal(buf, f)
}

// channel waits for the data channel (Setup may come right after OpenChannel).
func (s *backendServer) channel(ctx context.Context) (*channel, error) {
	select {
	case <-s.chReady:
	case <-ctx.Done():
		return nil, fmt.Errorf("data channel not connected: %w", ctx.Err())
	case <-time.After(30 * time.Second):
		return nil, errors.New("data channel not connected")
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.ch, nil
}

// handleFrame dispatches a frame from the host. It runs on the read loop,
// so it only registers work and returns.
func (s *backendServer) handleFrame(f *pb.Frame) {
	switch body := f.Body.(type) {
	case *pb.Frame_Request:
		ctx, cancel := context.Background(), context.CancelFunc(func() {})
		if d := body.Request.DeadlineUnixNano; d > 0 {
			ctx, cancel = context.WithDeadline(ctx, time.Unix(0, d))
		} else {
			ctx, cancel = context.WithCancel(ctx)
		}
		s.mu.Lock()
		s.inflight[f.Id] = cancel
		ch := s.ch
		s.mu.Unlock()
		go func() {
			defer func() {
				s.mu.Lock()
				delete(s.inflight, f.Id)
				s.mu.Unlock()
				cancel()
			}()
			reply := s.handleRequest(ctx, body.Request)
			err := ch.send(&pb.Frame{Id: f.Id, Body: &pb.Frame_Reply{Reply: reply}})
			if errors.Is(err, errFrameTooLarge) {
				reply = &pb.HandleRequestReply{Error: errorToProto(errors.New("response too large for the plugin channel"))}
				err = ch.send(&pb.Frame{Id: f.Id, Body: &pb.Frame_Reply{Reply: reply}})
			}
			if err != nil {
				ch.fail(err)
			}
		}()
	case *pb.Frame_Cancel:
		s.mu.Lock()
		cancel := s.inflight[f.Id]
		s.mu.Unlock()
		if cancel != nil {
			cancel()
		}
	}
}

func (s *backendServer) Setup(ctx context.Context, req *pb.SetupRequest) (reply *pb.SetupReply, err error) {
	defer recoverAs(&err, s.logger, "setup")
	ch, err := s.channel(ctx)
	if err != nil {
		return &pb.SetupReply{Error: errorToProto(err)}, nil
	}
	st := &channelStorage{ch: ch, mountID: req.MountId}
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

// handleRequest serves one request from the data channel.
func (s *backendServer) handleRequest(ctx context.Context, args *pb.HandleRequestArgs) (reply *pb.HandleRequestReply) {
	defer func() {
		if r := recover(); r != nil {
			s.logger.Error("plugin panicked", "during", "request", "stack", string(debug.Stack()))
			reply = &pb.HandleRequestReply{Error: errorToProto(errors.New("plugin panicked during request"))}
		}
	}()
	m := s.mount(args.MountId)
	if m == nil {
		return &pb.HandleRequestReply{Error: errorToProto(errMountNotSetUp)}
	}
	req, err := RequestFromProto(args.Request)
	if err != nil {
		return &pb.HandleRequestReply{Error: errorToProto(err)}
	}
	req.Storage = m.storage
	if args.ExistenceCheck {
		ec, ok := m.backend.(logical.ExistenceChecker)
		if !ok {
			return &pb.HandleRequestReply{NilResponse: true}
		}
		found, exists, err := ec.HandleExistenceCheck(ctx, req)
		if err != nil {
			return &pb.HandleRequestReply{Error: errorToProto(err)}
		}
		return &pb.HandleRequestReply{NilResponse: true, CheckFound: found, Exists: exists}
	}
	resp, err := m.backend.HandleRequest(ctx, req)
	if err != nil {
		return &pb.HandleRequestReply{Error: errorToProto(err)}
	}
	if resp == nil {
		return &pb.HandleRequestReply{NilResponse: true}
	}
	pr, err := ResponseToProto(resp)
	if err != nil {
		return &pb.HandleRequestReply{Error: errorToProto(fmt.Errorf("encode response: %w", err))}
	}
	return &pb.HandleRequestReply{Response: pr}
}

var errMountNotSetUp = logical.Errorf(logical.CodeUnavailable, "mount is not set up in this plugin process")

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

// channelStorage is a mount's storage view seen from the plugin: every
// call is a frame to the host, which confines it to that mount's view.
type channelStorage struct {
	ch      *channel
	mountID string
}

var _ logical.BatchStorage = (*channelStorage)(nil)

func (c *channelStorage) do(ctx context.Context, call *pb.StorageCall) (*pb.StorageResult, error) {
	call.MountId = c.mountID
	f, err := c.ch.call(ctx, &pb.Frame{Body: &pb.Frame_StorageCall{StorageCall: call}})
	if err != nil {
		return nil, err
	}
	r := f.GetStorageResult()
	if r == nil {
		return nil, errors.New("storage: malformed answer from the host")
	}
	if r.Error != nil {
		return nil, errorFromProto(r.Error)
	}
	return r, nil
}

func (c *channelStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	r, err := c.do(ctx, &pb.StorageCall{Op: pb.StorageCall_GET, Key: key})
	if err != nil || !r.Found {
		return nil, err
	}
	return &logical.StorageEntry{Key: key, Value: r.Value}, nil
}

func (c *channelStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	_, err := c.do(ctx, &pb.StorageCall{Op: pb.StorageCall_PUT, Key: e.Key, Value: e.Value})
	return err
}

func (c *channelStorage) Delete(ctx context.Context, key string) error {
	_, err := c.do(ctx, &pb.StorageCall{Op: pb.StorageCall_DELETE, Key: key})
	return err
}

// Batch implements logical.BatchStorage: one frame, one atomic commit.
func (c *channelStorage) Batch(ctx context.Context, ops []logical.StorageOp) error {
	call := &pb.StorageCall{Op: pb.StorageCall_BATCH, Ops: make([]*pb.StorageOp, len(ops))}
	for i, op := range ops {
		call.Ops[i] = &pb.StorageOp{Key: op.Key, Value: op.Value, Delete: op.Delete}
	}
	_, err := c.do(ctx, call)
	return err
}

func (c *channelStorage) List(ctx context.Context, prefix string) ([]string, error) {
	r, err := c.do(ctx, &pb.StorageCall{Op: pb.StorageCall_LIST, Key: prefix})
	if err != nil {
		return nil, err
	}
	return r.Keys, nil
}

// grpcPlugin binds the Backend service to go-plugin on both sides.
type grpcPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
	serve *ServeOpts // plugin side only
}

func (p *grpcPlugin) GRPCServer(broker *goplugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterBackendServer(s, &backendServer{
		opts: p.serve, mounts: map[string]*mountBackend{}, inflight: map[uint64]context.CancelFunc{},
		chReady: make(chan struct{}), logger: newPluginLogger(p.serve.Name),
	})
	return nil
}

func (p *grpcPlugin) GRPCClient(ctx context.Context, broker *goplugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return pb.NewBackendClient(conn), nil
}
