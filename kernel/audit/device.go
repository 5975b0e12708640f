package audit

import (
	"context"
	"crypto/ed25519"
)

// Device is an audit device: it formats, redacts and chains entries and
// records them somewhere. The Broker consumes it; FileDevice and
// SocketDevice implement it. All methods are safe for concurrent use.
type Device interface {
	// Log records one entry. For a synchronous device a nil error means
	// the entry was written; for an asynchronous one, that it was queued
	// while the device was connected.
	Log(ctx context.Context, ev *Event) error
	// Synchronous reports whether a nil error from Log means the entry is
	// recorded. Only synchronous devices count for failing closed when
	// any is enabled.
	Synchronous() bool
	// Hash returns the HMAC of value under the device's key, as the device
	// writes it (sys/audit-hash).
	Hash(value string) string
	// Reopen closes and reopens the output (SIGHUP after log rotation).
	Reopen() error
	// Close writes a final checkpoint, saves the chain state and releases
	// the output. Log fails with ErrClosed afterwards.
	Close() error
	// Stats reports the device's counters.
	Stats() DeviceStats
}

// DeviceStats are a device's counters since it was created.
type DeviceStats struct {
	// Logged counts entries recorded (synchronous) or queued while
	// connected (asynchronous); Failed counts entries Log returned an
	// error for (including Dropped).
	Logged, Failed uint64
	// Dropped counts entries an asynchronous device dropped because its
	// queue was full; Sent the lines it delivered.
	Dropped, Sent uint64
	// Checkpoints counts checkpoint lines written or queued.
	Checkpoints uint64
	// Resyncs counts the times the chain continued from the file's last
	// line rather than from the stored state.
	Resyncs uint64
	// Seq is the sequence number of the last line.
	Seq uint64
	// LastCheckpoint is the last checkpoint written (Seq 0: none); it is
	// the anchor for VerifyOptions.
	LastCheckpoint Checkpoint
	// Healthy is false while the output is broken (the last open or write
	// failed); Err is the last error then ("" when healthy).
	Healthy bool
	Err     string
}

var (
	_ Device = (*FileDevice)(nil)
	_ Device = (*SocketDevice)(nil)
)

// publicKey returns the verification key of a signing key.
func publicKey(k ed25519.PrivateKey) ed25519.PublicKey {
	return k.Public().(ed25519.PublicKey)
}
