package raft

import (
	"testing"

	"github.com/wardproject/ward/kernel/storage"
	"github.com/wardproject/ward/kernel/storage/storagetest"
)

// TestConformanceSingleNode runs the storage.Backend suite on a one-node
// cluster.
func TestConformanceSingleNode(t *testing.T) {
	checkNoLeaks(t)
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		c := newCluster(t, 1, clusterOpts{seed: 1})
		return c.leader().Backend()
	})
}

// TestConformanceFollower runs the suite against a follower of a three-node
// cluster: its writes are forwarded to the leader and its reads go through
// ReadIndex.
func TestConformanceFollower(t *testing.T) {
	checkNoLeaks(t)
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		c := newCluster(t, 3, clusterOpts{seed: 2})
		return c.follower().Backend()
	})
}
