package raft

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Benchmarks run in-process on Pebble's in-memory filesystem (fsync is a
// no-op there: the figures measure the raft path's CPU cost) or, with
// WARD_RAFT_BENCH_DISK=1, on temporary directories on disk (fsync real;
// all nodes share one disk). Run:
//
//	go test -run '^$' -bench . ./kernel/raft/

var benchOnDisk = os.Getenv("WARD_RAFT_BENCH_DISK") != ""

func benchWrites(b *testing.B, size int, follower bool, writers int) {
	c := newCluster(b, size, clusterOpts{seed: 1, onDisk: benchOnDisk, tune: func(cfg *Config) {
		cfg.TickInterval = 50 * time.Millisecond
		cfg.Logger = quietRaftLogger{}
	}})
	n := c.leader()
	if follower {
		n = c.follower()
	}
	be := n.Backend()
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
}

func BenchmarkWrite(b *testing.B) {
	for _, size := range []int{1, 3} {
		for _, writers := range []int{1, 32, 256} {
			b.Run(fmt.Sprintf("nodes=%d/writers=%d", size, writers), func(b *testing.B) {
				benchWrites(b, size, false, writers)
			})
		}
	}
}

// BenchmarkReadFollower measures a linearizable read on a follower: a
// ReadIndex round trip to the leader, then a local read.
func BenchmarkReadFollower(b *testing.B) {
	for _, readers := range []int{1, 32} {
		b.Run(fmt.Sprintf("readers=%d", readers), func(b *testing.B) {
			c := newCluster(b, 3, clusterOpts{seed: 1, onDisk: benchOnDisk, tune: func(cfg *Config) {
				cfg.TickInterval = 50 * time.Millisecond
				cfg.Logger = quietRaftLogger{}
			}})
			mustPut(b, c.leader(), "k", "v")
			be := c.follower().Backend()
			b.ResetTimer()
			start := time.Now()
			b.SetParallelism(readers)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := be.Get(context.Background(), "k"); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "reads/s")
		})
	}
}
