// Package storage defines Backend, the physical key/value store that sits under
// the barrier, and ships NewInmem, a small reference implementation for tests.
//
// A Backend stores opaque bytes under "/"-separated string keys. It knows
// nothing about encryption: everything above the seal and barrier layers hands
// it ciphertext, and it must never interpret, log or index values. Key names
// are not secret (the barrier stores them in the clear, as Vault does), but
// values are, so a Backend never puts a value into an error or a log line.
//
// The contract every Backend meets, including List's folder semantics and
// Batch's atomicity, is exercised by storagetest.Run; the durable
// implementation lives in the pebble subpackage.
package storage
