package raft

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkTLSCluster measures writes on the leader of three nodes that
// talk over the TLS transport on loopback (real TCP, TLS 1.3, framing),
// to compare with BenchmarkWrite/nodes=3 on the in-memory network. Disk as
// in BenchmarkWrite (WARD_RAFT_BENCH_DISK=1 for real fsyncs).
func BenchmarkTLSCluster(b *testing.B) {
	for _, writers := range []int{1, 32} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			c, _ := newTLSCluster(b, 3, clusterOpts{seed: 1, onDisk: benchOnDisk, tune: func(cfg *Config) {
				cfg.TickInterval = 50 * time.Millisecond
				cfg.Logger = quietRaftLogger{}
			}})
			be := c.leader().Backend()
			val := make([]byte, 128)
			var next atomic.Int64
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						if err := be.Put(context.Background(), fmt.Sprintf("bench/%d/%d", w, i), val); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "writes/s")
		})
	}
}
