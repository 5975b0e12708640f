package transit

import (
	"context"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"strconv"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// maxRandomBytes bounds random/ (Vault's limit).
const maxRandomBytes = 128 * 1024

func (b *backend) pathRandom() *framework.Path {
	return &framework.Path{
		Pattern: `random(/(?P<urlsource>[^/]+))?(/(?P<urlbytes>[^/]+))?`,
		Fields: map[string]*framework.FieldSchema{
			"urlsource": {Type: framework.TypeString, Description: "Source, or the byte count (URL form)."},
			"urlbytes":  {Type: framework.TypeString, Description: "Byte count (URL form)."},
			"bytes": {Type: framework.TypeInt, Default: 32,
				Description: "Number of bytes, 1 to 131072 (default 32)."},
			"format": {Type: framework.TypeString, Default: "base64", Description: "base64 (default) or hex."},
			"source": {Type: framework.TypeString, Default: "platform",
				Description: "platform (default), seal or all; all read the platform's generator (crypto/rand)."},
		},
		Operations: map[logical.Operation]framework.OperationFunc{
			logical.UpdateOperation: b.randomWrite,
		},
		HelpSynopsis: "Generate random bytes.",
	}
}

func (b *backend) randomWrite(_ context.Context, _ *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	source := d.Get("source").(string)
	n := d.Get("bytes").(int)
	urlSource, urlBytes := d.Get("urlsource").(string), d.Get("urlbytes").(string)
	switch {
	case urlSource == "":
	case urlBytes == "" && validRandomSource(urlSource):
		source = urlSource
	case urlBytes == "":
		// random/<bytes>: the first segment is the count.
		c, err := strconv.Atoi(urlSource)
		if err != nil {
			return nil, logical.InvalidRequest("error parsing url-set byte count: %q is not a number", urlSource)
		}
		n = c
	default:
		source = urlSource
		c, err := strconv.Atoi(urlBytes)
		if err != nil {
			return nil, logical.InvalidRequest("error parsing url-set byte count: %q is not a number", urlBytes)
		}
		n = c
	}
	if !validRandomSource(source) {
		return nil, logical.InvalidRequest("unsupported entropy source %q; must be \"platform\", \"seal\", or \"all\"", source)
	}
	if n < 1 {
		return nil, logical.InvalidRequest("bytes must be positive")
	}
	if n > maxRandomBytes {
		return nil, logical.InvalidRequest("bytes cannot be more than %d", maxRandomBytes)
	}
	format := d.Get("format").(string)
	var out string
	switch format {
	case "base64":
		out = base64.StdEncoding.EncodeToString(randomBytes(n))
	case "hex":
		out = hex.EncodeToString(randomBytes(n))
	default:
		return nil, logical.InvalidRequest("unsupported encoding format %q; must be \"hex\" or \"base64\"", format)
	}
	return &logical.Response{Data: map[string]any{"random_bytes": out}}, nil
}

func validRandomSource(s string) bool { return s == "platform" || s == "seal" || s == "all" }

func (b *backend) pathHash() *framework.Path {
	return &framework.Path{
		Pattern: "hash" + optionalAlgorithm,
		Fields: map[string]*framework.FieldSchema{
			"urlalgorithm": {Type: framework.TypeString, Description: "Algorithm (URL form)."},
			"algorithm": {Type: framework.TypeString, Default: defaultHashAlgorithm,
				Description: "sha2-224, sha2-256 (default), sha2-384, sha2-512, sha3-224, sha3-256, sha3-384 or sha3-512."},
			"input":  {Type: framework.TypeString, Description: "Base64-encoded input."},
			"format": {Type: framework.TypeString, Default: "hex", Description: "hex (default) or base64."},
		},
		Operations: map[logical.Operation]framework.OperationFunc{
			logical.UpdateOperation: b.hashWrite,
		},
		HelpSynopsis: "Hash input data.",
	}
}

func (b *backend) hashWrite(_ context.Context, _ *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	raw, ok := d.GetOk("input")
	if !ok {
		return nil, logical.InvalidRequest("input missing")
	}
	input, err := decodeB64(raw.(string), "input")
	if err != nil {
		return nil, err
	}
	format := d.Get("format").(string)
	if format != "hex" && format != "base64" {
		return nil, logical.InvalidRequest("unsupported encoding format %s; must be \"hex\" or \"base64\"", format)
	}
	algorithm := hashAlgorithmOf(d, "algorithm")
	var h hash.Hash
	switch algorithm {
	case "sha2-224":
		h = sha256.New224()
	case "sha2-256":
		h = sha256.New()
	case "sha2-384":
		h = sha512.New384()
	case "sha2-512":
		h = sha512.New()
	case "sha3-224":
		h = sha3.New224()
	case "sha3-256":
		h = sha3.New256()
	case "sha3-384":
		h = sha3.New384()
	case "sha3-512":
		h = sha3.New512()
	default:
		return nil, logical.InvalidRequest("unsupported algorithm %s", algorithm)
	}
	h.Write(input)
	sum := h.Sum(nil)
	out := hex.EncodeToString(sum)
	if format == "base64" {
		out = base64.StdEncoding.EncodeToString(sum)
	}
	return &logical.Response{Data: map[string]any{"sum": out}}, nil
}
