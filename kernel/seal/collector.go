package seal

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/openbao/openbao/sdk/v2/helper/shamir"
)

// Collector gathers key shares towards a threshold: one per unseal, rekey
// or root generation attempt. It is not safe for concurrent use; its owner
// locks. It keeps copies of the shares and zeroes them when the attempt
// ends (Reset, or the threshold being reached).
type Collector struct {
	threshold int
	shareLen  int
	shares    [][]byte
	nonce     string
}

// NewCollector starts an attempt that needs threshold shares of shareLen
// bytes, named by a fresh random nonce.
func NewCollector(threshold, shareLen int) (*Collector, error) {
	nonce, err := newNonce()
	if err != nil {
		return nil, err
	}
	return &Collector{threshold: threshold, shareLen: shareLen, nonce: nonce}, nil
}

// Format prints only the type name: a Collector holds shares.
func (c *Collector) Format(f fmt.State, verb rune) {
	_, _ = f.Write([]byte("seal.Collector{redacted}"))
}

// Nonce names the attempt.
func (c *Collector) Nonce() string { return c.nonce }

// Progress is the number of shares given so far.
func (c *Collector) Progress() int { return len(c.shares) }

// Threshold is the number of shares needed.
func (c *Collector) Threshold() int { return c.threshold }

// Add adds a copy of share. It returns ErrInvalidShare for a share of the
// wrong length and ErrDuplicateShare for one already given (neither is
// counted). When the threshold is reached it combines the shares, zeroes
// them and returns the key (which the caller must zero); the shares are
// then gone, so the next Add starts counting again. Shares that cannot be
// combined yield ErrBadShares.
func (c *Collector) Add(share []byte) (key []byte, err error) {
	if len(share) != c.shareLen {
		return nil, ErrInvalidShare
	}
	for _, have := range c.shares {
		if subtle.ConstantTimeCompare(have, share) == 1 {
			return nil, ErrDuplicateShare
		}
	}
	c.shares = append(c.shares, slices.Clone(share))
	if len(c.shares) < c.threshold {
		return nil, nil
	}
	key, err = combine(c.shares)
	zeroAll(c.shares)
	c.shares = nil
	if err != nil {
		// Combine fails on shares from different splits that happen to
		// share an x coordinate: wrong shares like any other.
		return nil, ErrBadShares
	}
	return key, nil
}

// Reset zeroes and forgets the shares given so far.
func (c *Collector) Reset() {
	if c == nil {
		return
	}
	zeroAll(c.shares)
	c.shares = nil
}

// shareLen is the length of every share of a key split n ways: the key
// itself for one share, otherwise the key plus Shamir's one-byte x
// coordinate.
func shareLen(n int) int {
	if n == 1 {
		return keySize
	}
	return keySize + 1
}

// split splits a key into n shares needing threshold of them; a 1-of-1
// split hands out the key itself, as Vault does.
func split(key []byte, n, threshold int) ([][]byte, error) {
	if n == 1 {
		return [][]byte{slices.Clone(key)}, nil
	}
	shares, err := shamir.Split(key, n, threshold)
	if err != nil {
		return nil, fmt.Errorf("seal: split key: %w", err)
	}
	return shares, nil
}

// combine recovers a key from shares. A single share is the key itself
// (the 1-of-1 configuration).
func combine(shares [][]byte) ([]byte, error) {
	if len(shares) == 1 {
		return slices.Clone(shares[0]), nil
	}
	return shamir.Combine(shares)
}

// newNonce returns a random RFC 4122 version 4 UUID naming an attempt.
func newNonce() (string, error) {
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		return "", fmt.Errorf("seal: generate nonce: %w", err)
	}
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

func zeroAll(bs [][]byte) {
	for _, b := range bs {
		clear(b)
	}
}
