package audit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// collector accepts connections and gathers the lines it reads.
type collector struct {
	ln    net.Listener
	mu    sync.Mutex
	lines []string
	wg    sync.WaitGroup
}

func newCollector(t *testing.T, network, addr string) *collector {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{ln: ln}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				defer conn.Close()
				s := bufio.NewScanner(conn)
				s.Buffer(nil, 1<<20)
				for s.Scan() {
					c.mu.Lock()
					c.lines = append(c.lines, s.Text())
					c.mu.Unlock()
				}
			}()
		}
	}()
	t.Cleanup(c.close)
	return c
}

func (c *collector) close() { c.ln.Close() }

func (c *collector) wait(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		got := append([]string(nil), c.lines...)
		c.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("collector got %d lines, want %d", len(got), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newTestSocket(t *testing.T, cfg SocketConfig) *SocketDevice {
	t.Helper()
	if cfg.DeviceConfig.HMACKey == nil {
		cfg.DeviceConfig = testDeviceConfig()
	}
	d, err := NewSocketDevice(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestSocketDelivers(t *testing.T) {
	c := newCollector(t, "tcp", "127.0.0.1:0")
	d := newTestSocket(t, SocketConfig{Address: c.ln.Addr().String()})
	logN(t, d, 0, 20)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	lines := c.wait(t, 22)
	res := mustVerify(t, joinLines(lines))
	if res.Entries != 20 || res.UnverifiedTail != 0 {
		t.Fatalf("%+v", res)
	}
	for _, s := range secretsOf(3) {
		if strings.Contains(joinLines(lines), s) {
			t.Fatalf("secret %q sent raw", s)
		}
	}
	if st := d.Stats(); st.Sent != 22 || st.Dropped != 0 || st.Logged != 20 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSocketUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	d := newTestSocket(t, SocketConfig{Network: "udp", Address: pc.LocalAddr().String()})
	logN(t, d, 0, 3)
	d.Close()
	var lines []string
	buf := make([]byte, 64<<10)
	pc.SetReadDeadline(time.Now().Add(2 * time.Second))
	for len(lines) < 5 {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("after %d datagrams: %v", len(lines), err)
		}
		lines = append(lines, strings.TrimSuffix(string(buf[:n]), "\n"))
	}
	mustVerify(t, joinLines(lines))
}

// A collector that is down never blocks Log: entries are refused as
// unavailable (or dropped once the queue is full), quickly.
func TestSocketClosedListenerDoesNotBlock(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	d := newTestSocket(t, SocketConfig{Address: addr, QueueSize: 8, WriteTimeout: time.Second})
	start := time.Now()
	for i := 0; i < 2000; i++ {
		err := d.Log(context.Background(), &Event{Request: sampleRequest(i)})
		if !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrQueueFull) {
			t.Fatalf("Log %d: %v", i, err)
		}
	}
	// Waiting on the dead collector would cost a dial per Log; 2000 Logs
	// that never wait take milliseconds, even under -race on a busy machine.
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("2000 Logs took %v", el)
	}
	st := d.Stats()
	if st.Healthy || st.Dropped < 1900 || st.Failed != 2000 || st.Err == "" {
		t.Fatalf("stats %+v", st)
	}
	start = time.Now()
	d.Close()
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("Close took %v", el)
	}
}

// A collector that accepts but never reads fills the socket buffers; the
// writer times out and Log keeps returning at once.
func TestSocketStalledListenerDoesNotBlock(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // never read
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	cfg := testDeviceConfig()
	cfg.LogRaw = true // keep the big values big
	// The writer blocks for up to WriteTimeout on the stalled connection; a
	// Log that waited for it would take that long. The bounds below are far
	// under it and far over a GC pause on a loaded CI machine.
	d := newTestSocket(t, SocketConfig{DeviceConfig: cfg, Address: ln.Addr().String(), QueueSize: 16, WriteTimeout: 3 * time.Second})
	big := strings.Repeat("x", 128<<10)
	start := time.Now()
	var slowest time.Duration
	for i := 0; i < 160; i++ {
		r := sampleRequest(i)
		r.Data = map[string]any{"blob": big}
		t0 := time.Now()
		d.Log(context.Background(), &Event{Request: r})
		slowest = max(slowest, time.Since(t0))
	}
	if el := time.Since(start); el > 20*time.Second {
		t.Fatalf("160 Logs took %v", el)
	}
	if slowest >= time.Second {
		t.Fatalf("slowest Log took %v: it waited for the stalled collector", slowest)
	}
	if d.Stats().Dropped == 0 {
		t.Fatalf("nothing dropped: %+v", d.Stats())
	}
}

// Lines dropped while the collector is away leave a gap in seq, which
// verification of the collected copy reports.
func TestSocketGapOnDrop(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "c.sock")
	d := newTestSocket(t, SocketConfig{Network: "unix", Address: sock, QueueSize: 4})
	for i := 0; i < 20; i++ {
		d.Log(context.Background(), &Event{Request: sampleRequest(i)}) // ErrUnavailable or ErrQueueFull
	}
	if d.Stats().Dropped == 0 {
		t.Fatal("nothing dropped")
	}
	c := newCollector(t, "unix", sock)
	c.wait(t, 1) // reconnected: the queued lines arrive
	for i := 20; i < 25; i++ {
		d.Log(context.Background(), &Event{Request: sampleRequest(i)})
		time.Sleep(2 * time.Millisecond)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	st := d.Stats()
	if st.Sent+st.Dropped != st.Seq {
		t.Fatalf("sent %d + dropped %d != lines %d", st.Sent, st.Dropped, st.Seq)
	}
	got := c.wait(t, int(st.Sent))
	_, err := Verify(strings.NewReader(joinLines(got)), testPub)
	var ve *VerifyError
	if !errors.As(err, &ve) || !strings.Contains(ve.Reason, "removed") {
		t.Fatalf("want a gap, got %v\n%s", err, joinLines(got))
	}
}

// The remote copy's chain continues across a restart of the device.
func TestSocketRestartWithChainStore(t *testing.T) {
	c := newCollector(t, "tcp", "127.0.0.1:0")
	store := &MemoryChainStore{}
	cfg := testDeviceConfig()
	cfg.Chain = store
	cfg.CheckpointEvery = 4
	for round := 0; round < 2; round++ {
		d := newTestSocket(t, SocketConfig{DeviceConfig: cfg, Address: c.ln.Addr().String()})
		logN(t, d, round*10, 10)
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// 2 × (open + 10 entries + 2 checkpoints + close)
	got := sortBySeq(t, c.wait(t, 28))
	res := mustVerify(t, joinLines(got))
	if res.Entries != 20 || res.FirstSeq != 1 || res.UnverifiedTail != 0 {
		t.Fatalf("%+v", res)
	}
}

// A line too large for one datagram is dropped (a seq gap), and the lines
// after it still arrive: the device does not wedge retrying it.
func TestSocketUDPOversizedLineDropped(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	d := newTestSocket(t, SocketConfig{Network: "udp", Address: pc.LocalAddr().String()})
	huge := sampleRequest(0)
	huge.Data = map[string]any{}
	for i := range 2000 { // values are HMAC'd, so size comes from many of them
		huge.Data[fmt.Sprintf("key-%04d", i)] = "v"
	}
	if err := d.Log(context.Background(), &Event{Request: huge}); err != nil {
		t.Fatal(err)
	}
	logN(t, d, 1, 2)
	buf := make([]byte, 64<<10)
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := 0
	for got < 2 {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("after %d datagrams: %v (the device wedged on the oversized line?)", got, err)
		}
		if strings.Contains(string(buf[:n]), `"type":"request"`) || strings.Contains(string(buf[:n]), `"type":"response"`) {
			got++
		}
	}
	d.Close()
	if d.Stats().Dropped == 0 {
		t.Fatal("the oversized line was not counted as dropped")
	}
}
