package barrier

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/wardproject/ward/kernel/storage"
)

// reencryptChunk is how many records Reencrypt rewrites per atomic batch;
// writers wait for one chunk at most.
const reencryptChunk = 128

// ReencryptResult reports a Reencrypt run.
type ReencryptResult struct {
	// Term is the active term the entries were rewritten under.
	Term uint32
	// Scanned counts the records examined, Rewritten those that were under
	// an older term.
	Scanned, Rewritten int
	// OldestTerm is the oldest term any record uses after the run (Term if
	// no record is older, 0 for an empty store).
	OldestTerm uint32
	Duration   time.Duration
}

// Reencrypt rewrites every entry encrypted under a term older than the
// active one with the active term, so that old terms protect nothing. The
// plaintext of a seal-wrapped entry is the wrapper's blob, which is copied
// as is: re-encryption never calls the seal. Entries are rewritten in
// chunks, each atomically and while writers wait, so a concurrent write is
// never lost; an entry written meanwhile already uses the active term. Old
// terms stay in the keyring (backups may still need them). Only one run
// happens at a time; progress, if not nil, is called after every chunk.
func (b *Barrier) Reencrypt(ctx context.Context, progress func(ReencryptResult)) (ReencryptResult, error) {
	b.reencryptMu.Lock()
	defer b.reencryptMu.Unlock()
	start := time.Now()
	term, _, _ := b.KeyStatus()
	if term == 0 {
		return ReencryptResult{}, ErrSealed
	}
	res := ReencryptResult{Term: term}
	var chunk []string
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		scanned, n, oldest, err := b.reencryptKeys(ctx, chunk, term)
		chunk = chunk[:0]
		if err != nil {
			return err
		}
		res.Scanned += scanned
		res.Rewritten += n
		if oldest != 0 && (res.OldestTerm == 0 || oldest < res.OldestTerm) {
			res.OldestTerm = oldest
		}
		if progress != nil {
			progress(res)
		}
		return nil
	}
	err := b.walk(ctx, dataPrefix, func(pkey string) error {
		chunk = append(chunk, pkey)
		if len(chunk) == reencryptChunk {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	res.Duration = time.Since(start)
	return res, err
}

// reencryptKeys rewrites the records of pkeys that are older than term. It
// returns how many records exist, how many it rewrote and the oldest term
// among them after the rewrite (0 if none exists).
func (b *Barrier) reencryptKeys(ctx context.Context, pkeys []string, term uint32) (int, int, uint32, error) {
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	var ops []storage.Op
	var oldest uint32
	scanned := 0
	for _, pkey := range pkeys {
		raw, err := b.phys.Get(ctx, pkey)
		if err != nil {
			return 0, 0, 0, err
		}
		if len(raw) < headerSize {
			continue // gone (or a folder), or not a record (reported by Get when read)
		}
		scanned++
		t := binary.BigEndian.Uint32(raw[1:5])
		if t >= term {
			if oldest == 0 || t < oldest {
				oldest = t
			}
			continue
		}
		rec, err := b.rewriteRecord(raw, pkey)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("re-encrypt: %w", err)
		}
		ops = append(ops, storage.Op{Kind: storage.OpPut, Key: pkey, Value: rec})
		if oldest == 0 || term < oldest {
			oldest = term
		}
	}
	if len(ops) == 0 {
		return scanned, 0, oldest, nil
	}
	if err := b.phys.Batch(ctx, ops); err != nil {
		return 0, 0, 0, err
	}
	return scanned, len(ops), oldest, nil
}

// rewriteRecord decrypts a record and encrypts it again under the active
// term, keeping its version (a seal-wrapped record stays seal-wrapped).
func (b *Barrier) rewriteRecord(raw []byte, pkey string) ([]byte, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.active == nil {
		return nil, ErrSealed
	}
	key := pkey[len(dataPrefix):]
	version, pt, err := openRecord(raw, bytesOf(key), b.aeadLocked)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	if version == sealWrappedVersion {
		return b.sealWrappedLocked(pt, key), nil
	}
	return b.sealLocked(pt, bytesOf(key)), nil
}

// TermUsage counts the records under each term by reading every record's
// header (nothing is decrypted). It is meant for tests and diagnostics: it
// reads the whole store.
func (b *Barrier) TermUsage(ctx context.Context) (map[uint32]int, error) {
	if b.Sealed() {
		return nil, ErrSealed
	}
	out := map[uint32]int{}
	err := b.walk(ctx, dataPrefix, func(pkey string) error {
		raw, err := b.phys.Get(ctx, pkey)
		if err != nil || len(raw) < headerSize {
			return err
		}
		out[binary.BigEndian.Uint32(raw[1:5])]++
		return nil
	})
	return out, err
}

// Terms returns the active term and the number of terms in the keyring
// (0, 0 while sealed).
func (b *Barrier) Terms() (active uint32, count int) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.active == nil {
		return 0, 0
	}
	return b.active.term, len(b.terms)
}

// AddEncryptions adds n to the encryption count of term if it is the
// active term; the kernel uses it to carry the count across restarts
// (KeyStatus only counts since unseal otherwise).
func (b *Barrier) AddEncryptions(term uint32, n uint64) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.active != nil && b.active.term == term {
		b.active.encryptions.Add(n)
	}
}
