package transit

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rsa"
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

type signResult struct {
	Signature  string `json:"signature,omitempty"`
	KeyVersion int    `json:"key_version"`
	PublicKey  string `json:"publickey,omitempty"`
	Error      string `json:"error,omitempty"`
	Reference  string `json:"reference"`
}

type verifyResult struct {
	Valid     bool   `json:"valid"`
	Error     string `json:"error,omitempty"`
	Reference string `json:"reference"`
}

// optionalAlgorithm is the optional trailing "/<algorithm>" of sign/,
// verify/, hmac/ and hash/, captured as urlalgorithm. The URL wins over the
// body's hash_algorithm (or algorithm) field, so policies can deny, say,
// sign/<name>/sha1.
const optionalAlgorithm = `(/(?P<urlalgorithm>[^/]+))?`

const defaultHashAlgorithm = "sha2-256"

func signFields(what string) map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"name":         nameField(what),
		"urlalgorithm": {Type: framework.TypeString, Description: "Hash algorithm (URL form)."},
		"input":        {Type: framework.TypeString, Description: "Base64-encoded input."},
		"context": {Type: framework.TypeString,
			Description: "Base64-encoded context for derived (ed25519) keys."},
		"hash_algorithm": {Type: framework.TypeString,
			Description: "sha1, sha2-224, sha2-256 (default), sha2-384, sha2-512, sha3-224, sha3-256, sha3-384, sha3-512 or none (prehashed PKCS#1 v1.5 only). Ignored by ed25519."},
		"algorithm": {Type: framework.TypeString, Description: `Deprecated: use "hash_algorithm".`},
		"prehashed": {Type: framework.TypeBool,
			Description: "The input is already a hash (ECDSA and RSA); hash_algorithm names it."},
		"signature_algorithm": {Type: framework.TypeString,
			Description: "RSA: pss (default) or pkcs1v15."},
		"marshaling_algorithm": {Type: framework.TypeString, Default: "asn1",
			Description: "ECDSA: asn1 (default, as OpenSSL and X.509) or jws (r|s, base64url)."},
		"salt_length": {Type: framework.TypeString, Default: "auto",
			Description: "RSA-PSS salt length: auto (default), hash, or a number of bytes."},
		"reference":   referenceField,
		"batch_input": batchField,
	}
}

func (b *backend) pathSign() *framework.Path {
	fields := signFields("to sign with")
	fields["key_version"] = keyVersionField
	return &framework.Path{
		Pattern: "sign/" + framework.GenericNameRegex("name") + optionalAlgorithm,
		Fields:  fields,
		Operations: map[logical.Operation]framework.OperationFunc{
			logical.UpdateOperation: b.signWrite,
		},
		HelpSynopsis: "Sign input data with a named key.",
		HelpDescription: `Signatures are returned as vault:v<N>:<base64>. A batch answers 200 with
an error in each failed item, as in Vault.`,
	}
}

func (b *backend) pathVerify() *framework.Path {
	fields := signFields("that made the signature or HMAC")
	fields["signature"] = &framework.FieldSchema{Type: framework.TypeString, Description: "Signature from sign/."}
	fields["hmac"] = &framework.FieldSchema{Type: framework.TypeString, Description: "HMAC from hmac/."}
	return &framework.Path{
		Pattern: "verify/" + framework.GenericNameRegex("name") + optionalAlgorithm,
		Fields:  fields,
		Operations: map[logical.Operation]framework.OperationFunc{
			logical.UpdateOperation: b.verifyWrite,
		},
		HelpSynopsis: "Verify a signature or an HMAC of input data.",
	}
}

// hashAlgorithmOf picks the hash algorithm: URL, then hash_algorithm, then
// the deprecated algorithm field, then sha2-256.
func hashAlgorithmOf(d *framework.FieldData, bodyFields ...string) string {
	if s := d.Get("urlalgorithm").(string); s != "" {
		return s
	}
	for _, f := range bodyFields {
		if v, ok := d.GetOk(f); ok && v.(string) != "" {
			return v.(string)
		}
	}
	return defaultHashAlgorithm
}

// parseSignOpts reads the signing options shared by sign/ and verify/.
func parseSignOpts(d *framework.FieldData) (*signOpts, error) {
	name := hashAlgorithmOf(d, "hash_algorithm", "algorithm")
	h, ok := hashAlgorithms[name]
	if !ok {
		return nil, logical.InvalidRequest("invalid hash algorithm %q", name)
	}
	o := &signOpts{hash: h, prehashed: d.Get("prehashed").(bool), sigAlg: d.Get("signature_algorithm").(string)}
	switch m := d.Get("marshaling_algorithm").(string); m {
	case "asn1":
	case "jws":
		o.jws = true
	default:
		return nil, logical.InvalidRequest("invalid marshaling type %q", m)
	}
	switch s := strings.ToLower(d.Get("salt_length").(string)); s {
	case "auto":
		o.saltLength = rsa.PSSSaltLengthAuto
	case "hash":
		o.saltLength = rsa.PSSSaltLengthEqualsHash
	default:
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, logical.InvalidRequest("salt length neither 'auto', 'hash', nor an int: %s", s)
		}
		if n < 0 {
			return nil, logical.InvalidRequest("salt length is invalid: %d", n)
		}
		o.saltLength = n
	}
	if h == 0 && (!o.prehashed || o.sigAlg != "pkcs1v15") {
		return nil, logical.InvalidRequest("hash_algorithm=none requires both prehashed=true and signature_algorithm=pkcs1v15")
	}
	return o, nil
}

// signItems returns batch_input, or the single item built from fields
// (input defaults to empty, as in Vault).
func signItems(d *framework.FieldData, fields ...string) ([]item, bool, error) {
	if raw, ok := d.Raw["batch_input"]; ok && raw != nil {
		items, err := decodeBatch(raw)
		return items, true, err
	}
	it := singleItem(d, fields...)
	if !it.has("input") {
		it.str["input"] = ""
	}
	return []item{it}, false, nil
}

// itemInputs decodes an item's input and context.
func itemInputs(it item) (input, context []byte, err error) {
	raw, ok := it.str["input"]
	if !ok {
		return nil, nil, logical.InvalidRequest("missing input")
	}
	if input, err = decodeB64(raw, "input"); err != nil {
		return nil, nil, err
	}
	if c := it.get("context"); c != "" {
		if context, err = base64.StdEncoding.DecodeString(c); err != nil {
			return nil, nil, logical.InvalidRequest("failed to base64-decode context")
		}
	}
	return input, context, nil
}

func (b *backend) signWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	o, err := parseSignOpts(d)
	if err != nil {
		return nil, err
	}
	kr, err := b.getKey(ctx, s, d.Get("name").(string))
	if err != nil {
		return nil, err
	}
	if kr == nil {
		return nil, logical.InvalidRequest("signing key not found")
	}
	if !kr.typ.signing() {
		return nil, logical.InvalidRequest("key type %v does not support signing", kr.typ)
	}
	items, batch, err := signItems(d, "input", "context")
	if err != nil {
		return nil, err
	}
	if kr, err = b.usableKey(ctx, s, kr); err != nil {
		return nil, err
	}
	results := make([]signResult, len(items))
	var out outcome
	for i, it := range items {
		input, context, err := itemInputs(it)
		var sig string
		var pub []byte
		var ver int
		if err == nil {
			sig, pub, ver, err = kr.sign(it.keyVersion, context, input, o)
		}
		if results[i].Error = out.record(err); err == nil {
			results[i].Signature, results[i].KeyVersion = sig, ver
			if len(pub) > 0 {
				results[i].PublicKey = base64.StdEncoding.EncodeToString(pub)
			}
		}
	}
	if batch {
		for i := range items {
			results[i].Reference = items[i].get("reference")
		}
		return &logical.Response{Data: map[string]any{"batch_results": results}}, nil
	}
	if r := results[0]; r.Error != "" {
		return nil, singleError(r.Error, out.internalErrors)
	}
	data := map[string]any{"signature": results[0].Signature, "key_version": results[0].KeyVersion}
	if results[0].PublicKey != "" {
		data["public_key"] = results[0].PublicKey
	}
	return &logical.Response{Data: data}, nil
}

func (b *backend) verifyWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	items, batch, err := signItems(d, "input", "context", "signature", "hmac")
	if err != nil {
		return nil, err
	}
	// Every item verifies a signature, or every item an HMAC.
	var sigFound, hmacFound, missing bool
	for _, it := range items {
		sig, mac := it.has("signature"), it.has("hmac")
		sigFound = sigFound || sig
		hmacFound = hmacFound || mac
		missing = missing || (!sig && !mac)
	}
	switch {
	case !batch && sigFound && hmacFound:
		return nil, logical.InvalidRequest("provide one of 'signature' or 'hmac'")
	case !batch && !sigFound && !hmacFound:
		return nil, logical.InvalidRequest("neither a 'signature' nor an 'hmac' were given to verify")
	case sigFound && hmacFound:
		return nil, logical.InvalidRequest("elements of batch_input must all provide 'signature' or all provide 'hmac'")
	case missing && sigFound:
		return nil, logical.InvalidRequest("some elements of batch_input are missing 'signature'")
	case missing && hmacFound:
		return nil, logical.InvalidRequest("some elements of batch_input are missing 'hmac'")
	case missing:
		return nil, logical.InvalidRequest("no batch_input elements have 'signature' or 'hmac'")
	case hmacFound:
		return b.hmacVerify(ctx, s, d, items, batch)
	}

	o, err := parseSignOpts(d)
	if err != nil {
		return nil, err
	}
	kr, err := b.getKey(ctx, s, d.Get("name").(string))
	if err != nil {
		return nil, err
	}
	if kr == nil {
		return nil, logical.InvalidRequest("signature verification key not found")
	}
	if !kr.typ.signing() {
		return nil, logical.InvalidRequest("key type %v does not support verification", kr.typ)
	}
	results := make([]verifyResult, len(items))
	var out outcome
	for i, it := range items {
		input, context, err := itemInputs(it)
		valid := false
		if err == nil {
			valid, err = kr.verify(context, input, it.get("signature"), o)
		}
		if results[i].Error = out.record(err); err == nil {
			results[i].Valid = valid
		}
	}
	return verifyResponse(results, items, batch, &out)
}

func verifyResponse(results []verifyResult, items []item, batch bool, out *outcome) (*logical.Response, error) {
	if batch {
		for i := range items {
			results[i].Reference = items[i].get("reference")
		}
		return &logical.Response{Data: map[string]any{"batch_results": results}}, nil
	}
	if results[0].Error != "" {
		return nil, singleError(results[0].Error, out.internalErrors)
	}
	return &logical.Response{Data: map[string]any{"valid": results[0].Valid}}, nil
}

// hmacResult is a batch item of hmac/ and of verify/ with HMACs (Vault
// omits "valid" when false there).
type hmacResult struct {
	HMAC      string `json:"hmac,omitempty"`
	Valid     bool   `json:"valid,omitempty"`
	Error     string `json:"error,omitempty"`
	Reference string `json:"reference"`
}

func (b *backend) pathHMAC() *framework.Path {
	return &framework.Path{
		Pattern: "hmac/" + framework.GenericNameRegex("name") + optionalAlgorithm,
		Fields: map[string]*framework.FieldSchema{
			"name":         nameField("whose HMAC key to use"),
			"urlalgorithm": {Type: framework.TypeString, Description: "Hash algorithm (URL form)."},
			"algorithm": {Type: framework.TypeString, Default: defaultHashAlgorithm,
				Description: "sha2-224, sha2-256 (default), sha2-384, sha2-512, sha3-224, sha3-256, sha3-384 or sha3-512."},
			"input":       {Type: framework.TypeString, Description: "Base64-encoded input."},
			"key_version": keyVersionField,
			"reference":   referenceField,
			"batch_input": batchField,
		},
		Operations: map[logical.Operation]framework.OperationFunc{
			logical.UpdateOperation: b.hmacWrite,
		},
		HelpSynopsis: "Generate an HMAC of input data with a named key.",
		HelpDescription: `Every version of every key type has an HMAC key of its own (for hmac keys,
the key itself). The result is vault:v<N>:<base64>.`,
	}
}

// hmacHash resolves the hash of hmac/ and HMAC verification.
func hmacHash(name string) (crypto.Hash, error) {
	h, ok := hashAlgorithms[name]
	if !ok || h == 0 {
		return 0, logical.InvalidRequest("unsupported algorithm %q", name)
	}
	return h, nil
}

func (b *backend) hmacWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	kr, err := b.existingKey(ctx, s, d.Get("name").(string))
	if err != nil {
		return nil, err
	}
	if kr, err = b.usableKey(ctx, s, kr); err != nil {
		return nil, err
	}
	key, ver, err := kr.hmacKeyFor(d.Get("key_version").(int))
	if err != nil {
		return nil, err
	}
	h, err := hmacHash(hashAlgorithmOf(d, "algorithm"))
	if err != nil {
		return nil, err
	}
	var items []item
	batch := false
	if raw, ok := d.Raw["batch_input"]; ok && raw != nil {
		if items, err = decodeBatch(raw); err != nil {
			return nil, err
		}
		batch = true
	} else {
		if _, ok := d.GetOk("input"); !ok {
			return nil, logical.InvalidRequest("missing input for HMAC")
		}
		items = []item{singleItem(d, "input")}
	}
	results := make([]hmacResult, len(items))
	for i, it := range items {
		raw, ok := it.str["input"]
		if !ok {
			results[i].Error = "missing input for HMAC"
			continue
		}
		input, err := decodeB64(raw, "input")
		if err != nil {
			results[i].Error = err.Error()
			continue
		}
		results[i].HMAC = formatVersioned(ver, hmacSum(h, key, input), base64.StdEncoding)
	}
	if batch {
		for i := range items {
			results[i].Reference = items[i].get("reference")
		}
		return &logical.Response{Data: map[string]any{"batch_results": results}}, nil
	}
	if results[0].Error != "" {
		return nil, logical.InvalidRequest("%s", results[0].Error)
	}
	return &logical.Response{Data: map[string]any{"hmac": results[0].HMAC}}, nil
}

func (b *backend) hmacVerify(ctx context.Context, s logical.Storage, d *framework.FieldData, items []item, batch bool) (*logical.Response, error) {
	kr, err := b.existingKey(ctx, s, d.Get("name").(string))
	if err != nil {
		return nil, err
	}
	h, err := hmacHash(hashAlgorithmOf(d, "hash_algorithm", "algorithm"))
	if err != nil {
		return nil, err
	}
	results := make([]hmacResult, len(items))
	for i, it := range items {
		valid, err := verifyHMAC(kr, h, it)
		if err != nil {
			results[i].Error = err.Error()
			continue
		}
		results[i].Valid = valid
	}
	if batch {
		for i := range items {
			results[i].Reference = items[i].get("reference")
		}
		return &logical.Response{Data: map[string]any{"batch_results": results}}, nil
	}
	if results[0].Error != "" {
		return nil, logical.InvalidRequest("%s", results[0].Error)
	}
	return &logical.Response{Data: map[string]any{"valid": results[0].Valid}}, nil
}

// verifyHMAC checks one item's hmac against its input, in constant time.
func verifyHMAC(kr *keyring, h crypto.Hash, it item) (bool, error) {
	raw, ok := it.str["input"]
	if !ok {
		return false, logical.InvalidRequest("missing input")
	}
	input, err := decodeB64(raw, "input")
	if err != nil {
		return false, err
	}
	tag, ok := it.str["hmac"]
	if !ok {
		return false, logical.InvalidRequest("missing hmac")
	}
	if !strings.HasPrefix(tag, versionPrefix) {
		return false, logical.InvalidRequest("invalid HMAC to verify: no prefix")
	}
	ver, payload, err := parseVersioned(tag, "HMAC")
	if err != nil {
		return false, err
	}
	sum, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		return false, logical.InvalidRequest("unable to decode verification HMAC as base64")
	}
	switch {
	case ver > kr.rec.LatestVersion:
		return false, logical.InvalidRequest("invalid HMAC: version is too new")
	case ver < kr.rec.MinDecryptionVersion:
		return false, logical.InvalidRequest("cannot verify HMAC: version is too old (disallowed by policy)")
	}
	return hmac.Equal(hmacSum(h, kr.versions[ver].entry.HMACKey, input), sum), nil
}
