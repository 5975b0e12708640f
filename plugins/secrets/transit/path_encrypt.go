package transit

import (
	"context"
	"encoding/base64"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// Batch result items, with Vault's JSON names (reference is always
// present; the rest only when set).
type encryptResult struct {
	Ciphertext string `json:"ciphertext,omitempty"`
	KeyVersion int    `json:"key_version,omitempty"`
	Error      string `json:"error,omitempty"`
	Reference  string `json:"reference"`
}

type decryptResult struct {
	Plaintext string `json:"plaintext"`
	Error     string `json:"error,omitempty"`
	Reference string `json:"reference"`
}

func nameField(what string) *framework.FieldSchema {
	return &framework.FieldSchema{Type: framework.TypeString, Description: "Name of the key " + what + "."}
}

var (
	contextField = &framework.FieldSchema{Type: framework.TypeString,
		Description: "Base64-encoded context for key derivation; required for derived keys."}
	aadField = &framework.FieldSchema{Type: framework.TypeString,
		Description: "Base64-encoded associated data, authenticated but not encrypted (AEAD key types)."}
	nonceField = &framework.FieldSchema{Type: framework.TypeString,
		Description: "Accepted for compatibility; Vault only honours it for keys of its legacy convergent version 1, which Ward never creates, so any non-empty value is refused."}
	keyVersionField = &framework.FieldSchema{Type: framework.TypeInt,
		Description: "Key version to use; 0 (default) means the latest. Must not be below min_encryption_version."}
	batchField = &framework.FieldSchema{Type: framework.TypeSlice,
		Description: "List of items to process in one request; the single-item fields are then ignored. Results keep the input order."}
	partialFailureField = &framework.FieldSchema{Type: framework.TypeInt,
		Description: "Status to answer instead of 400 when some but not all batch items fail."}
	referenceField = &framework.FieldSchema{Type: framework.TypeString,
		Description: "Echoed in the matching batch result (batch items only)."}
)

func (b *backend) pathEncrypt() *framework.Path {
	return &framework.Path{
		Pattern: "encrypt/" + framework.GenericNameRegex("name"),
		Fields: map[string]*framework.FieldSchema{
			"name":            nameField("to encrypt with"),
			"plaintext":       {Type: framework.TypeString, Description: "Base64-encoded plaintext."},
			"context":         contextField,
			"associated_data": aadField,
			"nonce":           nonceField,
			"key_version":     keyVersionField,
			"reference":       referenceField,
			"batch_input":     batchField,
			"type": {Type: framework.TypeString, Default: "aes256-gcm96",
				Description: "When the key does not exist and is created by this request: its type (aes128-gcm96, aes256-gcm96, chacha20-poly1305, xchacha20-poly1305)."},
			"convergent_encryption": {Type: framework.TypeBool,
				Description: "When the key is created by this request: whether it uses convergent encryption (requires a context)."},
			"partial_failure_response_code": partialFailureField,
		},
		ExistenceCheck: b.keyExists,
		Operations: map[logical.Operation]framework.OperationFunc{
			logical.CreateOperation: b.encryptWrite,
			logical.UpdateOperation: b.encryptWrite,
		},
		HelpSynopsis: "Encrypt a plaintext value or a batch of plaintexts with a named key.",
		HelpDescription: `The plaintext must be base64-encoded. If the key does not exist and the
caller may create it (the create capability), it is created with the given
type, derived when a context is given, unless config/keys disables upserts.`,
	}
}

// keyExists is the existence check of encrypt/: a write to a missing key
// is a create (an upsert of the key), else an update.
func (b *backend) keyExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	s, err := b.storage(req)
	if err != nil {
		return false, err
	}
	kr, err := b.getKey(ctx, s, d.Get("name").(string))
	return kr != nil, err
}

func (b *backend) encryptWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	name := d.Get("name").(string)
	batchRaw, batch := d.Raw["batch_input"]
	if !batch || batchRaw == nil {
		return b.encryptOne(ctx, s, req, d, name)
	}
	items, err := decodeBatch(batchRaw)
	if err != nil {
		return nil, err
	}
	contextSet, err := contextsConsistent(items)
	if err != nil {
		return nil, err
	}

	// Decode every item before touching the key, as Vault does.
	results := make([]encryptResult, len(items))
	plaintexts := make([][]byte, len(items))
	contexts := make([][]byte, len(items))
	var out outcome
	for i, it := range items {
		if !it.has("plaintext") {
			results[i].Error = out.record(logical.InvalidRequest("missing plaintext to encrypt"))
			continue
		}
		if plaintexts[i], err = decodeB64(it.get("plaintext"), "plaintext"); err == nil && contextSet {
			contexts[i], err = decodeB64(it.get("context"), "context")
		}
		if err != nil {
			results[i].Error = out.record(err)
		}
	}

	kr, err := b.getKey(ctx, s, name)
	if err != nil {
		return nil, err
	}
	// Only a create upserts: the kernel sends one when the existence check
	// found no key and the caller holds the create capability. An update
	// never creates a key, as in Vault.
	var warning string
	if req.Operation == logical.CreateOperation {
		if kr, warning, err = b.upsertForEncrypt(ctx, s, name, d, contextSet, kr); err != nil {
			return nil, err
		}
	}
	if kr == nil {
		return nil, errKeyNotFound
	}
	if kr, err = b.usableKey(ctx, s, kr); err != nil {
		return nil, err
	}

	for i, it := range items {
		if results[i].Error != "" {
			continue
		}
		ct, ver, err := encryptItem(kr, i, it, contexts[i], plaintexts[i])
		if results[i].Error = out.record(err); err == nil {
			results[i].Ciphertext, results[i].KeyVersion = ct, ver
		}
	}

	for i := range items {
		results[i].Reference = items[i].get("reference")
	}
	resp := &logical.Response{Data: map[string]any{"batch_results": results}}
	out.apply(d, resp)
	if warning != "" {
		resp.AddWarning(warning)
	}
	return resp, nil
}

// encryptOne is encrypt/ without batch_input: the hot path, kept free of
// the batch bookkeeping (in WASM every allocation counts).
func (b *backend) encryptOne(ctx context.Context, s logical.Storage, req *logical.Request, d *framework.FieldData, name string) (*logical.Response, error) {
	raw, ok := d.GetOk("plaintext")
	if !ok {
		return nil, logical.InvalidRequest("missing plaintext to encrypt")
	}
	plaintext, err := decodeB64(raw.(string), "plaintext")
	if err != nil {
		return nil, err
	}
	var context []byte
	if c := d.Get("context").(string); c != "" {
		if context, err = decodeB64(c, "context"); err != nil {
			return nil, err
		}
	}
	kr, err := b.getKey(ctx, s, name)
	if err != nil {
		return nil, err
	}
	var warning string
	if req.Operation == logical.CreateOperation { // see encryptWrite
		if kr, warning, err = b.upsertForEncrypt(ctx, s, name, d, context != nil, kr); err != nil {
			return nil, err
		}
	}
	if kr == nil {
		return nil, errKeyNotFound
	}
	if kr, err = b.usableKey(ctx, s, kr); err != nil {
		return nil, err
	}
	if d.Get("nonce").(string) != "" {
		return nil, errNonce
	}
	var aad []byte
	if a := d.Get("associated_data").(string); a != "" {
		if !kr.typ.symmetric() {
			return nil, logical.InvalidRequest("'[0].associated_data' provided for non-AEAD cipher suite %v", kr.typ)
		}
		if aad, err = decodeB64(a, "associated_data"); err != nil {
			return nil, err
		}
	}
	ct, ver, err := kr.encrypt(d.Get("key_version").(int), context, plaintext, aad)
	if err != nil {
		return nil, err
	}
	resp := &logical.Response{Data: map[string]any{"ciphertext": ct, "key_version": ver}}
	if warning != "" {
		resp.AddWarning(warning)
	}
	return resp, nil
}

// encryptItem encrypts one decoded item.
func encryptItem(kr *keyring, i int, it item, context, plaintext []byte) (string, int, error) {
	if it.get("nonce") != "" {
		return "", 0, errNonce
	}
	aad, err := itemAAD(kr, i, it)
	if err != nil {
		return "", 0, err
	}
	return kr.encrypt(it.keyVersion, context, plaintext, aad)
}

// itemAAD decodes an item's associated_data, refused for non-AEAD keys.
func itemAAD(kr *keyring, i int, it item) ([]byte, error) {
	raw := it.get("associated_data")
	if raw == "" {
		return nil, nil
	}
	if !kr.typ.symmetric() {
		return nil, logical.InvalidRequest("'[%d].associated_data' provided for non-AEAD cipher suite %v", i, kr.typ)
	}
	return decodeB64(raw, "associated_data")
}

// upsertForEncrypt creates a missing key for encrypt/ (Vault's upsert):
// type from the request, derived when the request carries contexts. It
// returns the key (cur when it exists) and, when the key existed after
// all, Vault's warning; nil when config/keys disables upserts.
func (b *backend) upsertForEncrypt(ctx context.Context, s logical.Storage, name string, d *framework.FieldData, contextSet bool, cur *keyring) (*keyring, string, error) {
	const existed = "Attempted creation of the key during the encrypt operation, but it was created beforehand"
	convergent := d.Get("convergent_encryption").(bool)
	if convergent && !contextSet {
		return nil, "", logical.InvalidRequest("convergent encryption requires derivation to be enabled, so context is required")
	}
	typName := d.Get("type").(string)
	t, ok := parseKeyType(typName)
	switch {
	case !ok:
		return nil, "", logical.InvalidRequest("unknown key type %v", typName)
	case !t.symmetric():
		return nil, "", logical.InvalidRequest("key type %v not supported for this operation", typName)
	}
	if cur != nil {
		return cur, existed, nil
	}
	cfg, err := b.readConfigKeys(ctx, s)
	if err != nil {
		return nil, "", err
	}
	if cfg.DisableUpsert {
		return nil, "", nil
	}
	kr, created, err := b.createKey(ctx, s, createParams{name: name, typ: t, derived: contextSet, convergent: convergent})
	if err != nil {
		return nil, "", err
	}
	if !created {
		return kr, existed, nil
	}
	return kr, "", nil
}

func (b *backend) pathDecrypt() *framework.Path {
	return &framework.Path{
		Pattern: "decrypt/" + framework.GenericNameRegex("name"),
		Fields: map[string]*framework.FieldSchema{
			"name":                          nameField("to decrypt with"),
			"ciphertext":                    {Type: framework.TypeString, Description: "Ciphertext to decrypt (vault:v<N>:...)."},
			"context":                       contextField,
			"associated_data":               aadField,
			"nonce":                         {Type: framework.TypeString, Description: "Ignored (the nonce is part of the ciphertext)."},
			"reference":                     referenceField,
			"batch_input":                   batchField,
			"partial_failure_response_code": partialFailureField,
		},
		Operations: map[logical.Operation]framework.OperationFunc{
			logical.UpdateOperation: b.decryptWrite,
		},
		HelpSynopsis:    "Decrypt a ciphertext or a batch of ciphertexts with a named key.",
		HelpDescription: "The plaintext is returned base64-encoded.",
	}
}

func (b *backend) decryptWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	items, batch, err := cipherItems(d, "decrypt")
	if err != nil {
		return nil, err
	}
	results := make([]decryptResult, len(items))
	contexts, out, err := decodeContexts(items, func(i int, msg string) { results[i].Error = msg })
	if err != nil {
		return nil, err
	}
	kr, err := b.existingKey(ctx, s, d.Get("name").(string))
	if err != nil {
		return nil, err
	}
	for i, it := range items {
		if results[i].Error != "" {
			continue
		}
		aad, err := itemAAD(kr, i, it)
		var pt []byte
		if err == nil {
			pt, _, err = kr.decrypt(contexts[i], it.get("ciphertext"), aad)
		}
		if results[i].Error = out.record(err); err == nil {
			results[i].Plaintext = base64.StdEncoding.EncodeToString(pt)
		}
	}
	resp := &logical.Response{}
	if batch {
		for i := range items {
			results[i].Reference = items[i].get("reference")
		}
		resp.Data = map[string]any{"batch_results": results}
		out.apply(d, resp)
		return resp, nil
	}
	if results[0].Error != "" {
		return nil, singleError(results[0].Error, out.internalErrors)
	}
	resp.Data = map[string]any{"plaintext": results[0].Plaintext}
	return resp, nil
}

// cipherItems reads the items of decrypt/ and rewrap/: batch_input, or the
// single ciphertext (required).
func cipherItems(d *framework.FieldData, op string) ([]item, bool, error) {
	if raw, ok := d.Raw["batch_input"]; ok && raw != nil {
		items, err := decodeBatch(raw)
		return items, true, err
	}
	if d.Get("ciphertext").(string) == "" {
		return nil, false, logical.InvalidRequest("missing ciphertext to %s", op)
	}
	return []item{singleItem(d, "ciphertext", "context", "associated_data")}, false, nil
}

// decodeContexts checks the batch's context rule and decodes each item's
// context; an item without ciphertext or with a bad context fails through
// fail. It returns the outcome tally so far.
func decodeContexts(items []item, fail func(i int, msg string)) ([][]byte, *outcome, error) {
	out := &outcome{}
	contextSet, err := contextsConsistent(items)
	if err != nil {
		return nil, nil, err
	}
	contexts := make([][]byte, len(items))
	for i, it := range items {
		if it.get("ciphertext") == "" {
			fail(i, out.record(logical.InvalidRequest("missing ciphertext to decrypt")))
			continue
		}
		if contextSet {
			if contexts[i], err = decodeB64(it.get("context"), "context"); err != nil {
				fail(i, out.record(err))
			}
		}
	}
	return contexts, out, nil
}

func (b *backend) pathRewrap() *framework.Path {
	return &framework.Path{
		Pattern: "rewrap/" + framework.GenericNameRegex("name"),
		Fields: map[string]*framework.FieldSchema{
			"name":            nameField("to re-encrypt with"),
			"ciphertext":      {Type: framework.TypeString, Description: "Ciphertext to re-encrypt."},
			"context":         contextField,
			"associated_data": aadField,
			"nonce":           {Type: framework.TypeString, Description: "Ignored (the nonce is part of the ciphertext)."},
			"key_version":     keyVersionField,
			"reference":       referenceField,
			"batch_input":     batchField,
		},
		Operations: map[logical.Operation]framework.OperationFunc{
			logical.UpdateOperation: b.rewrapWrite,
		},
		HelpSynopsis: "Re-encrypt ciphertexts with the latest (or a given) version of a key.",
		HelpDescription: `The plaintext never leaves the engine, so rewrapping can be delegated to
untrusted callers. Items that fail carry an error; the request still answers
200 for a batch, as in Vault.`,
	}
}

func (b *backend) rewrapWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	items, batch, err := cipherItems(d, "decrypt")
	if err != nil {
		return nil, err
	}
	results := make([]encryptResult, len(items))
	contexts, out, err := decodeContexts(items, func(i int, msg string) { results[i].Error = msg })
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
	for i, it := range items {
		if results[i].Error != "" {
			continue
		}
		ct, ver, err := rewrapItem(kr, i, it, contexts[i])
		if results[i].Error = out.record(err); err == nil {
			results[i].Ciphertext, results[i].KeyVersion = ct, ver
		}
	}
	resp := &logical.Response{}
	if batch {
		for i := range items {
			results[i].Reference = items[i].get("reference")
		}
		resp.Data = map[string]any{"batch_results": results}
		return resp, nil
	}
	if results[0].Error != "" {
		return nil, singleError(results[0].Error, out.internalErrors)
	}
	resp.Data = map[string]any{"ciphertext": results[0].Ciphertext, "key_version": results[0].KeyVersion}
	return resp, nil
}

func rewrapItem(kr *keyring, i int, it item, context []byte) (string, int, error) {
	aad, err := itemAAD(kr, i, it)
	if err != nil {
		return "", 0, err
	}
	pt, _, err := kr.decrypt(context, it.get("ciphertext"), aad)
	if err != nil {
		return "", 0, err
	}
	return kr.encrypt(it.keyVersion, context, pt, aad)
}

func (b *backend) pathDatakey() *framework.Path {
	return &framework.Path{
		Pattern: "datakey/" + framework.GenericNameRegex("plaintext") + "/" + framework.GenericNameRegex("name"),
		Fields: map[string]*framework.FieldSchema{
			"plaintext":       {Type: framework.TypeString, Description: `"plaintext" returns the data key and its ciphertext; "wrapped" only the ciphertext.`},
			"name":            nameField("that encrypts the data key"),
			"context":         contextField,
			"associated_data": aadField,
			"nonce":           nonceField,
			"key_version":     keyVersionField,
			"bits": {Type: framework.TypeInt, Default: 256,
				Description: "Length of the data key: 128, 256 or 512 bits."},
		},
		Operations: map[logical.Operation]framework.OperationFunc{
			logical.UpdateOperation: b.datakeyWrite,
		},
		HelpSynopsis: "Generate a random data key encrypted with a named key.",
		HelpDescription: `Whether the plaintext key is returned depends on the path, so policies can
let callers obtain only wrapped data keys.`,
	}
}

func (b *backend) datakeyWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	var withPlaintext bool
	switch d.Get("plaintext").(string) {
	case "plaintext":
		withPlaintext = true
	case "wrapped":
	default:
		return nil, logical.InvalidRequest("Invalid path, must be 'plaintext' or 'wrapped'")
	}
	var n int
	switch bits := d.Get("bits").(int); bits {
	case 128, 256, 512:
		n = bits / 8
	default:
		return nil, logical.InvalidRequest("invalid bit length")
	}
	it := singleItem(d, "context", "associated_data", "nonce")
	var context []byte
	if c := it.get("context"); c != "" {
		if context, err = base64.StdEncoding.DecodeString(c); err != nil {
			return nil, logical.InvalidRequest("failed to base64-decode context")
		}
	}
	kr, err := b.existingKey(ctx, s, d.Get("name").(string))
	if err != nil {
		return nil, err
	}
	if kr, err = b.usableKey(ctx, s, kr); err != nil {
		return nil, err
	}
	dataKey := randomBytes(n)
	ct, ver, err := encryptItem(kr, 0, it, context, dataKey)
	if err != nil {
		return nil, err
	}
	resp := &logical.Response{Data: map[string]any{"ciphertext": ct, "key_version": ver}}
	if withPlaintext {
		resp.Data["plaintext"] = base64.StdEncoding.EncodeToString(dataKey)
	}
	return resp, nil
}
