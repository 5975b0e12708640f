package raft

import "errors"

var (
	// ErrNoLeader is returned by writes and linearizable reads that could not
	// complete within their bounded wait because this node knew no leader
	// (an election in progress, or this node cut off from a quorum). Nothing
	// was written. The operation may be retried, here or on another node.
	ErrNoLeader = errors.New("raft: no leader (retryable)")
	// ErrTimeout is returned by writes and reads that did not complete within
	// their bounded wait although a leader was known. For a write the outcome
	// is unknown: it may still be applied. Retrying it is safe for idempotent
	// writes (Put, Delete, Batch of puts and deletes).
	ErrTimeout = errors.New("raft: request timed out, outcome unknown (retryable)")
	// ErrRemoved is returned by every operation on a node that has been
	// removed from the cluster. A removed node never serves reads or writes
	// again; its ID is never reused.
	ErrRemoved = errors.New("raft: node removed from the cluster")
	// ErrIDReused is returned by AddLearner and AddVoter for a node ID that
	// was a member of the cluster once and has been removed.
	ErrIDReused = errors.New("raft: node ID was removed from the cluster and cannot be reused")
	// ErrCorrupt is returned by Open (and wraps errors of the raft loop) when
	// stored state cannot be decoded.
	ErrCorrupt = errors.New("raft: stored state is corrupt")
	// ErrStopped is returned after the node stopped because of a storage
	// failure; the node must be restarted. Close returns the cause.
	ErrStopped = errors.New("raft: node stopped after a storage failure")
	// ErrBadSnapshot is returned by ReceiveSnapshot for a snapshot stream that
	// is truncated, out of order or does not match its metadata.
	ErrBadSnapshot = errors.New("raft: malformed snapshot stream")
)

// IsRetryable reports whether err is a condition that a caller may retry,
// possibly on another node: no leader, timeout (idempotent writes only).
func IsRetryable(err error) bool {
	return errors.Is(err, ErrNoLeader) || errors.Is(err, ErrTimeout)
}
