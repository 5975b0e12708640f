package raft

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"hash"
	"hash/crc32"
	"io"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Snapshot stream format: the state range of a Pebble snapshot, in key order.
//
//	magic "WRSN" | version byte (1)
//	records:   uvarint key length (> 0) | key | uvarint value length | value
//	end:       uvarint 0
//	trailer:   CRC-32C (Castagnoli) of every byte before it, big endian
//
// The sender streams from a Pebble snapshot iterator and the receiver writes
// straight into an sstable, so neither side holds the state in memory.
const (
	snapMagic   = "WRSN"
	snapVersion = 1
	// maxSnapKey and maxSnapValue bound what a receiver allocates for one
	// record of a (possibly hostile or corrupt) stream.
	maxSnapKey   = 1 << 20
	maxSnapValue = 256 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// snapshotReader is the sender's side: an io.ReadCloser over a Pebble
// snapshot of the state range. Close releases the Pebble snapshot.
type snapshotReader struct {
	snap *pebble.Snapshot
	it   *pebble.Iterator
	buf  bytes.Buffer
	crc  hash.Hash32
	err  error
	done bool
}

func newSnapshotReader(snap *pebble.Snapshot) (*snapshotReader, error) {
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: stateStart, UpperBound: stateEnd})
	if err != nil {
		snap.Close()
		return nil, err
	}
	r := &snapshotReader{snap: snap, it: it, crc: crc32.New(crcTable)}
	r.buf.WriteString(snapMagic)
	r.buf.WriteByte(snapVersion)
	it.First()
	return r, nil
}

// fill encodes records until at least 64 KiB are buffered or the end.
func (r *snapshotReader) fill() {
	var tmp [binary.MaxVarintLen64]byte
	for r.buf.Len() < 64<<10 && !r.done {
		if !r.it.Valid() {
			if err := r.it.Error(); err != nil {
				r.err = err
				return
			}
			r.buf.Write(tmp[:binary.PutUvarint(tmp[:], 0)])
			r.done = true
			return
		}
		k, v := r.it.Key(), r.it.Value()
		r.buf.Write(tmp[:binary.PutUvarint(tmp[:], uint64(len(k)))])
		r.buf.Write(k)
		r.buf.Write(tmp[:binary.PutUvarint(tmp[:], uint64(len(v)))])
		r.buf.Write(v)
		r.it.Next()
	}
}

func (r *snapshotReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.buf.Len() == 0 {
		if r.done {
			if r.crc == nil {
				return 0, io.EOF
			}
			var sum [4]byte
			binary.BigEndian.PutUint32(sum[:], r.crc.Sum32())
			r.crc = nil
			r.buf.Write(sum[:])
		} else {
			r.fill()
			if r.err != nil {
				return 0, r.err
			}
		}
	}
	n, _ := r.buf.Read(p)
	if r.crc != nil {
		r.crc.Write(p[:n])
	}
	return n, nil
}

func (r *snapshotReader) Close() error {
	if r.it == nil {
		return nil
	}
	err := r.it.Close()
	if cerr := r.snap.Close(); err == nil {
		err = cerr
	}
	r.it = nil
	return err
}

// writeSnapshotSST reads a snapshot stream into a new sstable at path and
// returns the applied state it carries. The stream must hold only keys of the
// state range, in strictly increasing order, including the applied state,
// and end with a matching checksum; otherwise the file is removed and the
// error wraps ErrBadSnapshot.
func writeSnapshotSST(fs vfs.FS, path string, wo sstable.WriterOptions, body io.Reader) (st appliedState, err error) {
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return st, err
	}
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), wo)
	closed := false
	defer func() {
		if !closed {
			_ = w.Close()
		}
		if err != nil {
			_ = fs.Remove(path)
		}
	}()
	raw := bufio.NewReaderSize(body, 64<<10)
	br := &crcReader{r: raw, crc: crc32.New(crcTable)}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadSnapshot, fmt.Sprintf(format, args...))
	}
	head := make([]byte, len(snapMagic)+1)
	if _, err := io.ReadFull(br, head); err != nil {
		return st, bad("header: %v", err)
	}
	if string(head[:4]) != snapMagic || head[4] != snapVersion {
		return st, bad("unknown header")
	}
	var prev, key, val []byte
	sawApplied := false
	for {
		kl, err := binary.ReadUvarint(br)
		if err != nil {
			return st, bad("record: %v", err)
		}
		if kl == 0 {
			break
		}
		if kl > maxSnapKey {
			return st, bad("key of %d bytes", kl)
		}
		key = grow(key, int(kl))
		if _, err := io.ReadFull(br, key); err != nil {
			return st, bad("key: %v", err)
		}
		vl, err := binary.ReadUvarint(br)
		if err != nil || vl > maxSnapValue {
			return st, bad("value length")
		}
		val = grow(val, int(vl))
		if _, err := io.ReadFull(br, val); err != nil {
			return st, bad("value: %v", err)
		}
		if bytes.Compare(key, stateStart) < 0 || bytes.Compare(key, stateEnd) >= 0 {
			return st, bad("key outside the state range")
		}
		if prev != nil && bytes.Compare(key, prev) <= 0 {
			return st, bad("keys out of order")
		}
		prev = append(prev[:0], key...)
		if bytes.Equal(key, keyApplied) {
			if st, err = decodeApplied(val); err != nil {
				return st, bad("applied state: %v", err)
			}
			sawApplied = true
		}
		if err := w.Set(key, val); err != nil {
			return st, err
		}
	}
	// Every byte consumed so far went through the CRC; the trailer does not.
	var trailer [4]byte
	if _, err := io.ReadFull(raw, trailer[:]); err != nil {
		return st, bad("trailer: %v", err)
	}
	if binary.BigEndian.Uint32(trailer[:]) != br.crc.Sum32() {
		return st, bad("checksum mismatch")
	}
	if _, err := raw.ReadByte(); err != io.EOF {
		return st, bad("data after the trailer")
	}
	if !sawApplied {
		return st, bad("no applied state")
	}
	closed = true
	if err := w.Close(); err != nil { // Close syncs the file
		return st, err
	}
	return st, nil
}

// crcReader checksums the bytes its caller consumes (not what it buffers).
type crcReader struct {
	r   *bufio.Reader
	crc hash.Hash32
}

func (c *crcReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.crc.Write([]byte{b})
	}
	return b, err
}

func (c *crcReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.crc.Write(p[:n])
	return n, err
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}
