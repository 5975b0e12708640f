package plugin

import (
	"bufio"
	"context"
	"errors"
	"math"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/wardproject/ward/sdk/logical"
	pb "github.com/wardproject/ward/sdk/proto/ward/plugin/v1"
)

// pipeChannels returns two connected channels, with handlers.
func pipeChannels(t *testing.T, ha, hb func(*pb.Frame)) (*channel, *channel) {
	t.Helper()
	ca, cb := net.Pipe()
	a, b := newChannel(ca, ha), newChannel(cb, hb)
	go a.readLoop(bufio.NewReader(ca))
	go b.readLoop(bufio.NewReader(cb))
	t.Cleanup(func() { a.fail(errors.New("test done")); b.fail(errors.New("test done")) })
	return a, b
}

func TestChannelCallsMatchAnswersUnderConcurrency(t *testing.T) {
	var b *channel
	a, b := pipeChannels(t, nil, func(f *pb.Frame) {
		// Answer each request with its own path, out of order.
		go func() {
			time.Sleep(time.Duration(len(f.GetRequest().Request.Path)%3) * time.Millisecond)
			b.send(&pb.Frame{Id: f.Id, Body: &pb.Frame_Reply{Reply: &pb.HandleRequestReply{
				Response: &pb.Response{Warnings: []string{f.GetRequest().Request.Path}}}}})
		}()
	})
	var wg sync.WaitGroup
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			path := string(rune('a'+i%26)) + string(rune('a'+i/26))
			ans, err := a.call(context.Background(), &pb.Frame{Body: &pb.Frame_Request{Request: &pb.HandleRequestArgs{Request: &pb.Request{Path: path}}}})
			if err != nil || ans.GetReply().Response.Warnings[0] != path {
				t.Errorf("call %s: got %v %v", path, ans, err)
			}
		}(i)
	}
	wg.Wait()
}

func TestChannelFailureReleasesCallers(t *testing.T) {
	a, b := pipeChannels(t, nil, func(*pb.Frame) {}) // never answers
	done := make(chan error, 1)
	go func() {
		_, err := a.call(context.Background(), &pb.Frame{Body: &pb.Frame_Request{Request: &pb.HandleRequestArgs{}}})
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	b.conn.Close() // the peer dies
	select {
	case err := <-done:
		if !errors.Is(err, errChannelClosed) {
			t.Fatalf("want errChannelClosed, got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a caller stayed blocked after the channel died")
	}
	if !a.closed() {
		t.Fatal("channel not marked closed")
	}
}

func TestChannelCallHonoursContext(t *testing.T) {
	a, _ := pipeChannels(t, nil, func(*pb.Frame) {})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := a.call(ctx, &pb.Frame{Body: &pb.Frame_Request{Request: &pb.HandleRequestArgs{}}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want deadline exceeded, got %v", err)
	}
}

func TestOversizedFrameFailsTheChannel(t *testing.T) {
	ca, cb := net.Pipe()
	a := newChannel(ca, func(*pb.Frame) {})
	go a.readLoop(bufio.NewReader(ca))
	// A hostile peer announces a frame beyond the limit.
	go cb.Write([]byte{0xff, 0xff, 0xff, 0xff})
	deadline := time.Now().Add(5 * time.Second)
	for !a.closed() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if !a.closed() {
		t.Fatal("channel accepted a frame size beyond the limit")
	}
	cb.Close()
}

// TestStorageCallsOnlyReachOwnMounts drives the host's storage service the
// way a hostile plugin would: naming a mount it does not serve.
func TestStorageCallsOnlyReachOwnMounts(t *testing.T) {
	own := logical.NewInmemStorage()
	c := &Client{resolve: func(id string) (logical.Storage, bool) {
		if id == "mine" {
			return own, true
		}
		return nil, false
	}}
	res := c.storage(&pb.StorageCall{MountId: "someone-else", Op: pb.StorageCall_GET, Key: "k"})
	if res.Error == nil || logical.Code(res.Error.Code) != logical.CodePermissionDenied {
		t.Fatalf("foreign mount: %v", res)
	}
	res = c.storage(&pb.StorageCall{MountId: "mine", Op: pb.StorageCall_PUT, Key: "k", Value: []byte("v")})
	if res.Error != nil {
		t.Fatal(res.Error)
	}
	if e, _ := own.Get(context.Background(), "k"); e == nil || string(e.Value) != "v" {
		t.Fatal("own mount write lost")
	}
	res = c.storage(&pb.StorageCall{MountId: "mine", Op: pb.StorageCall_OP_UNSPECIFIED})
	if res.Error == nil {
		t.Fatal("unknown op accepted")
	}
}

func TestDuplicateAnswersDoNotWedgeTheReadLoop(t *testing.T) {
	var b *channel
	a, b := pipeChannels(t, nil, func(f *pb.Frame) {
		go func() {
			for i := 0; i < 5; i++ { // a hostile peer answers five times
				b.send(&pb.Frame{Id: f.Id, Body: &pb.Frame_Reply{Reply: &pb.HandleRequestReply{NilResponse: true}}})
			}
		}()
	})
	for i := 0; i < 20; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := a.call(ctx, &pb.Frame{Body: &pb.Frame_Request{Request: &pb.HandleRequestArgs{}}})
		cancel()
		if err != nil {
			t.Fatalf("call %d after duplicate answers: %v", i, err)
		}
	}
}

func TestOversizedSendFailsOnlyThatCall(t *testing.T) {
	a, b := pipeChannels(t, nil, func(f *pb.Frame) {})
	big := &pb.Frame{Body: &pb.Frame_Request{Request: &pb.HandleRequestArgs{Request: &pb.Request{DataJson: make([]byte, maxFrameSize+1)}}}}
	if _, err := a.call(context.Background(), big); !errors.Is(err, errFrameTooLarge) {
		t.Fatalf("want errFrameTooLarge, got %v", err)
	}
	if a.closed() || b.closed() {
		t.Fatal("an oversized frame closed the channel")
	}
}

func TestStalledPeerFailsTheChannelNotTheHost(t *testing.T) {
	ca, cb := net.Pipe() // cb is never read: the peer stalls
	a := newChannel(ca, func(*pb.Frame) {})
	a.writeTimeout = 200 * time.Millisecond
	defer cb.Close()
	payload := &pb.Frame{Body: &pb.Frame_Request{Request: &pb.HandleRequestArgs{Request: &pb.Request{DataJson: make([]byte, 8<<20)}}}}
	var failed bool
	for i := 0; i < 40 && !failed; i++ { // 320 MiB offered, more than the queue bound
		if err := a.send(payload); err != nil {
			failed = true
		}
	}
	if !failed && !a.closed() {
		t.Fatal("the write queue grew without bound behind a stalled peer")
	}
	a.wmu.Lock()
	queued := len(a.wbuf)
	a.wmu.Unlock()
	if queued > maxQueuedBytes {
		t.Fatalf("queued %d bytes, bound is %d", queued, maxQueuedBytes)
	}
}

func TestFromSecondsSaturates(t *testing.T) {
	if got := fromSeconds(1 << 62); got != math.MaxInt64 {
		t.Fatalf("huge: %v", got)
	}
	if got := fromSeconds(-(1 << 62)); got >= 0 {
		t.Fatalf("huge negative became %v", got)
	}
	if got := fromSeconds(90); got != 90*time.Second {
		t.Fatalf("90s: %v", got)
	}
}

// A frame protobuf cannot encode (a string that is not UTF-8) fails only
// that call, with errFrameEncode (the client answers it as a bad request).
func TestUnencodableSendFailsOnlyThatCall(t *testing.T) {
	a, b := pipeChannels(t, nil, func(f *pb.Frame) {})
	bad := &pb.Frame{Body: &pb.Frame_Request{Request: &pb.HandleRequestArgs{Request: &pb.Request{Path: "data/\xff"}}}}
	if _, err := a.call(context.Background(), bad); !errors.Is(err, errFrameEncode) {
		t.Fatalf("want errFrameEncode, got %v", err)
	}
	if a.closed() || b.closed() {
		t.Fatal("an unencodable frame closed the channel")
	}
}
