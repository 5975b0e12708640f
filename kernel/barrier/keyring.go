package barrier

import (
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// keyringVersion is the version of the keyring's JSON form.
const keyringVersion = 1

// keyringJSON is the decoded form of the keyring plaintext:
//
//	{"version":1,"active_term":2,"keys":[{"term":1,"key":"<base64>","installed":"<RFC 3339>"},...]}
type keyringJSON struct {
	Version    int    `json:"version"`
	ActiveTerm uint32 `json:"active_term"`
	Keys       []struct {
		Term      uint32    `json:"term"`
		Key       []byte    `json:"key"`
		Installed time.Time `json:"installed"`
	} `json:"keys"`
}

// sealKeyring renders keys as keyring JSON with the given active term and
// encrypts it with the root key AEAD. The plaintext is zeroed before
// returning.
func sealKeyring(root cipher.AEAD, active uint32, keys []*termKey) []byte {
	plaintext := encodeKeyring(active, keys)
	defer clear(plaintext)
	return sealRecord(root, rootTerm, plaintext, bytesOf(keyringPath))
}

// encodeKeyring renders the keyring JSON by hand into a buffer sized up front
// so it never reallocates (a reallocation would strand a copy of the keys
// where it cannot be zeroed). encoding/json is not used for the same reason:
// it renders into a pooled buffer that keeps the bytes after Marshal returns.
func encodeKeyring(active uint32, keys []*termKey) []byte {
	buf := make([]byte, 0, keyringCap(len(keys)))
	buf = append(buf, `{"version":`...)
	buf = strconv.AppendInt(buf, keyringVersion, 10)
	buf = append(buf, `,"active_term":`...)
	buf = strconv.AppendUint(buf, uint64(active), 10)
	buf = append(buf, `,"keys":[`...)
	for i, k := range keys {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"term":`...)
		buf = strconv.AppendUint(buf, uint64(k.term), 10)
		buf = append(buf, `,"key":"`...)
		buf = base64.StdEncoding.AppendEncode(buf, k.key)
		buf = append(buf, `","installed":"`...)
		buf = k.installed.UTC().AppendFormat(buf, time.RFC3339Nano)
		buf = append(buf, `"}`...)
	}
	return append(buf, "]}"...)
}

// keyringCap bounds the length of encodeKeyring's output for n keys: the
// fixed text with the widest numbers, plus per key the fixed text, a 10-digit
// term, the base64 key and a 35-byte RFC 3339 timestamp, rounded up.
func keyringCap(n int) int {
	const perKey = len(`,{"term":,"key":"","installed":""}`) + 10 + 35
	return 64 + n*(perKey+base64.StdEncoding.EncodedLen(KeySize))
}

// decodeKeyring parses keyring JSON into term keys with their AEADs. The key
// slices it returns are the ones json.Unmarshal allocated (it decodes base64
// straight from the input without an intermediate copy); the caller zeroes
// the input.
func decodeKeyring(plaintext []byte) (active uint32, terms map[uint32]*termKey, err error) {
	var kr keyringJSON
	if err := json.Unmarshal(plaintext, &kr); err != nil {
		// The error from encoding/json may quote the input; never return it.
		return 0, nil, fmt.Errorf("%w: keyring is not valid JSON", ErrCorrupt)
	}
	defer func() {
		if err != nil { // the term keys share these slices
			for _, k := range kr.Keys {
				clear(k.Key)
			}
		}
	}()
	if kr.Version != keyringVersion {
		return 0, nil, fmt.Errorf("%w: keyring version %d", ErrCorrupt, kr.Version)
	}
	terms = make(map[uint32]*termKey, len(kr.Keys))
	for _, k := range kr.Keys {
		if k.Term == rootTerm || len(k.Key) != KeySize || terms[k.Term] != nil {
			return 0, nil, fmt.Errorf("%w: keyring entry for term %d is invalid", ErrCorrupt, k.Term)
		}
		aead, err := newAEAD(k.Key)
		if err != nil {
			return 0, nil, err
		}
		terms[k.Term] = &termKey{term: k.Term, key: k.Key, installed: k.Installed, aead: aead}
	}
	for term := range terms {
		if term > kr.ActiveTerm {
			return 0, nil, fmt.Errorf("%w: keyring term %d is newer than the active term", ErrCorrupt, term)
		}
	}
	if terms[kr.ActiveTerm] == nil {
		return 0, nil, fmt.Errorf("%w: keyring has no key for its active term", ErrCorrupt)
	}
	return kr.ActiveTerm, terms, nil
}
