// Package pebble is the durable storage.Backend: a Pebble LSM database in
// one directory.
//
// It owns that directory and nothing else. Every write (Put, Delete, Batch)
// is synced to the write-ahead log before it returns; Pebble group-commits
// concurrent synced writes, so writers are never serialised here. The package
// must never hold its own lock across a write (that would defeat group commit)
// and must never hand out a slice that aliases Pebble's internal buffers.
//
// Values are opaque (ciphertext from the barrier); they are never logged, and
// Pebble's own logging defaults to errors only.
package pebble
