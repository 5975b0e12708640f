package audit

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"
)

// Many goroutines log through a broker to a file device (rotated under
// them) and a socket device; every file and the collected copy verify,
// and no entry is lost.
func TestHammer(t *testing.T) {
	const workers, each = 8, 100
	path := tempLog(t)
	store := &MemoryChainStore{}
	cfg := testDeviceConfig()
	cfg.Chain = store
	cfg.CheckpointEvery = 37
	cfg.CheckpointInterval = 20 * time.Millisecond
	fd := newTestFile(t, FileConfig{DeviceConfig: cfg, Path: path})
	c := newCollector(t, "tcp", "127.0.0.1:0")
	scfg := testDeviceConfig()
	scfg.CheckpointEvery = 37
	sd := newTestSocket(t, SocketConfig{DeviceConfig: scfg, Address: c.ln.Addr().String(), QueueSize: workers * each * 3})

	b := NewBroker(BrokerOptions{})
	b.Enable("file/", fd)
	b.Enable("socket/", sd)

	var rotated []string
	stop := make(chan struct{})
	var rot sync.WaitGroup
	rot.Add(1)
	go func() {
		defer rot.Done()
		for n := 1; ; n++ {
			select {
			case <-stop:
				return
			case <-time.After(15 * time.Millisecond):
			}
			name := fmt.Sprintf("%s.%d", path, n)
			if err := os.Rename(path, name); err != nil {
				t.Error(err)
				return
			}
			rotated = append(rotated, name)
			if err := b.Reopen(); err != nil {
				t.Error(err)
				return
			}
		}
	}()

	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for i := 0; i < each; i++ {
				n := w*each + i
				if err := b.LogRequest(ctx, sampleRequest(n)); err != nil {
					t.Error(err)
					return
				}
				if err := b.LogResponse(ctx, sampleResponse(n)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	rot.Wait()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	var all []string
	for _, name := range append(rotated, path) {
		lines := readLines(t, name)
		if len(lines) > 0 {
			mustVerify(t, joinLines(lines))
		}
		all = append(all, lines...)
	}
	res := mustVerify(t, joinLines(all))
	if res.Entries != 2*workers*each || res.UnverifiedTail != 0 {
		t.Fatalf("file: %+v", res)
	}
	if len(rotated) < 2 {
		t.Logf("only %d rotations", len(rotated))
	}

	st := sd.Stats()
	// Reopen reconnects: lines arrive over several connections, which the
	// collector reads concurrently; seq puts them back in order.
	got := sortBySeq(t, c.wait(t, int(st.Sent)))
	sres := mustVerify(t, joinLines(got))
	if sres.Entries != 2*workers*each || st.Dropped != 0 {
		t.Fatalf("socket: %+v %+v", sres, st)
	}
}

func sortBySeq(t *testing.T, lines []string) []string {
	type seqLine struct {
		seq  uint64
		line string
	}
	sl := make([]seqLine, len(lines))
	for i, l := range lines {
		var h lineHeader
		if err := json.Unmarshal([]byte(l), &h); err != nil || h.Seq == nil {
			t.Fatalf("bad line %q", l)
		}
		sl[i] = seqLine{*h.Seq, l}
	}
	slices.SortStableFunc(sl, func(a, b seqLine) int { return cmp.Compare(a.seq, b.seq) })
	sl = slices.CompactFunc(sl, func(a, b seqLine) bool { return a.seq == b.seq })
	out := make([]string, len(sl))
	for i, x := range sl {
		out[i] = x.line
	}
	return out
}
