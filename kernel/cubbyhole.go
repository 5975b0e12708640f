package kernel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/wardproject/ward/kernel/barrier"
	"github.com/wardproject/ward/kernel/mount"
	"github.com/wardproject/ward/kernel/router"
	"github.com/wardproject/ward/kernel/token"
	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// The cubbyhole is per-token private storage, Vault's cubbyhole/ mount. It
// is kernel-owned because it is bound to tokens, which the kernel owns: a
// token reaches only its own key space, and all of it is deleted when the
// token goes (revocation, a parent's revocation, expiry, last use). The
// kernel itself keeps wrapped responses in wrapping tokens' cubbyholes.
//
// Storage: the mount's view, logical/cubbyhole/ (a mount's view is
// logical/<uuid>/ and the builtin's UUID is "cubbyhole"), holds
// <hashed token ID>/<path>, where the hashed ID is the token store's HMAC
// of the token (the key of its entry): never the token itself, and not
// reversible to it. Values are the JSON of the data written, as in Vault.
const (
	cubbyholePath = "cubbyhole/"
	cubbyholeUUID = "cubbyhole"
	// cubbyholeResponse and cubbyholeWrapInfo are the keys a wrapping
	// token's cubbyhole holds (Vault's names).
	cubbyholeResponse = "response"
	cubbyholeWrapInfo = "wrapinfo"
)

// cubbyhole is the storage of every token's cubbyhole. It holds no state
// beyond the barrier view, so anything in the kernel may make one.
type cubbyhole struct {
	view *barrier.View
}

func (c *Core) cubbyhole() *cubbyhole {
	return &cubbyhole{view: c.barrier.View(cubbyholeEntry("").StoragePrefix())}
}

// cubbyholeEntry is the builtin mount listed in sys/mounts, like sys/: it
// cannot be disabled, moved or tuned.
func cubbyholeEntry(accessor string) *mount.Entry {
	return &mount.Entry{Path: cubbyholePath, Type: "cubbyhole", UUID: cubbyholeUUID, Accessor: accessor,
		Description: "per-token private secret storage", Local: true}
}

// mountCubbyhole lists the cubbyhole mount and routes cubbyhole/ to the
// kernel's handler. postUnseal calls it.
func (c *Core) mountCubbyhole(u *unsealedState) {
	sum := sha256.Sum256([]byte(cubbyholePath + u.cluster.ID))
	e := cubbyholeEntry("cubbyhole_" + hex.EncodeToString(sum[:4]))
	u.secrets.table.AddBuiltin(e)
	u.router.Add(&router.Route{Prefix: cubbyholePath, Type: e.Type, Accessor: e.Accessor, Handler: c.cubbyhole().backend()})
}

// of returns the key space of the token with this hashed ID.
func (cb *cubbyhole) of(hashedID string) *barrier.View {
	return cb.view.SubView(hashedID + "/")
}

// get reads one entry of a token's cubbyhole; nil when absent.
func (cb *cubbyhole) get(ctx context.Context, hashedID, key string) (map[string]any, error) {
	se, err := cb.of(hashedID).Get(ctx, key)
	if err != nil || se == nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(se.Value))
	dec.UseNumber()
	var data map[string]any
	if err := dec.Decode(&data); err != nil {
		return nil, fmt.Errorf("cubbyhole: decode entry: %w", err)
	}
	return data, nil
}

// destroy deletes everything in a token's cubbyhole, in atomic batches.
func (cb *cubbyhole) destroy(ctx context.Context, hashedID string) error {
	if hashedID == "" || strings.Contains(hashedID, "/") {
		return fmt.Errorf("cubbyhole: invalid token hash")
	}
	v := cb.of(hashedID)
	keys, err := logical.CollectKeys(ctx, v, "")
	if err != nil {
		return fmt.Errorf("cubbyhole: list: %w", err)
	}
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		ops := make([]logical.StorageOp, n)
		for i, k := range keys[:n] {
			ops[i] = logical.StorageOp{Key: k, Delete: true}
		}
		if err := v.Batch(ctx, ops); err != nil {
			return fmt.Errorf("cubbyhole: delete: %w", err)
		}
		keys = keys[n:]
	}
	return nil
}

// tokenGone is the token store's Revoked hook: a revoked token's leases
// and its cubbyhole go with it. It runs for every token a revocation
// removes (its tree, an expiry, a last use). The deletion does not depend
// on the caller staying connected.
func (c *Core) tokenGone(u *unsealedState) func(ctx context.Context, hashedID string) {
	revokeLeases := c.tokenRevoked(u)
	cb := c.cubbyhole()
	return func(ctx context.Context, hashedID string) {
		revokeLeases(ctx, hashedID)
		if err := cb.destroy(context.WithoutCancel(ctx), hashedID); err != nil {
			c.logger.Warn("deleting a revoked token's cubbyhole failed; its entries are unreachable but stay stored", "error", err)
		}
	}
}

// backend serves cubbyhole/: read, write (create and update), delete and
// list of arbitrary JSON data, in the calling token's own key space.
func (cb *cubbyhole) backend() *framework.Backend {
	return &framework.Backend{
		Help: "Per-token private secret storage: a token reads and writes only its own cubbyhole, " +
			"and all of it is deleted when the token is revoked or expires.",
		Paths: []*framework.Path{{
			Pattern: "(?P<path>.*)",
			Fields: map[string]*framework.FieldSchema{
				"path": {Type: framework.TypeString, Description: "Where the secret is, in the token's cubbyhole."},
			},
			Operations: map[logical.Operation]framework.OperationFunc{
				logical.ReadOperation:   cb.read,
				logical.CreateOperation: cb.write,
				logical.UpdateOperation: cb.write,
				logical.DeleteOperation: cb.delete,
				logical.ListOperation:   cb.list,
			},
			ExistenceCheck:      cb.exists,
			TakesArbitraryInput: true,
			HelpSynopsis:        "Read, write, delete or list secrets in the token's own cubbyhole.",
		}},
	}
}

// caller returns the key space of the request's token.
func (cb *cubbyhole) caller(ctx context.Context) (*token.Entry, *barrier.View, error) {
	te, ok := token.FromContext(ctx)
	if !ok || te.HashedID == "" {
		return nil, nil, logical.ErrPermissionDenied
	}
	return te, cb.of(te.HashedID), nil
}

func cubbyKey(d *framework.FieldData) (string, error) {
	p := d.Get("path").(string)
	if p == "" || strings.HasSuffix(p, "/") {
		return "", logical.InvalidRequest("missing path")
	}
	return p, nil
}

func (cb *cubbyhole) exists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	_, v, err := cb.caller(ctx)
	if err != nil {
		return false, err
	}
	p := d.Get("path").(string)
	if p == "" || strings.HasSuffix(p, "/") {
		return false, nil
	}
	se, err := v.Get(ctx, p)
	return se != nil, err
}

func (cb *cubbyhole) read(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	te, _, err := cb.caller(ctx)
	if err != nil {
		return nil, err
	}
	p, err := cubbyKey(d)
	if err != nil {
		return nil, err
	}
	data, err := cb.get(ctx, te.HashedID, p)
	if err != nil || data == nil {
		return nil, err
	}
	resp := &logical.Response{Data: data}
	if p == cubbyholeResponse && isWrappingToken(te) {
		resp.AddWarning("Reading from 'cubbyhole/response' is deprecated. Please use sys/wrapping/unwrap to unwrap responses, as it provides additional security checks and other benefits.")
	}
	return resp, nil
}

func (cb *cubbyhole) write(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	_, v, err := cb.caller(ctx)
	if err != nil {
		return nil, err
	}
	p, err := cubbyKey(d)
	if err != nil {
		return nil, err
	}
	if len(req.Data) == 0 {
		return nil, logical.InvalidRequest("missing data fields")
	}
	b, err := json.Marshal(req.Data)
	if err != nil {
		return nil, logical.InvalidRequest("the data cannot be stored as JSON")
	}
	return nil, v.Put(ctx, &logical.StorageEntry{Key: p, Value: b})
}

func (cb *cubbyhole) delete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	_, v, err := cb.caller(ctx)
	if err != nil {
		return nil, err
	}
	p, err := cubbyKey(d)
	if err != nil {
		return nil, err
	}
	return nil, v.Delete(ctx, p)
}

func (cb *cubbyhole) list(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	_, v, err := cb.caller(ctx)
	if err != nil {
		return nil, err
	}
	p := d.Get("path").(string)
	if p != "" && !strings.HasSuffix(p, "/") {
		p += "/"
	}
	keys, err := v.List(ctx, p)
	if err != nil {
		return nil, err
	}
	slices.Sort(keys)
	return logical.ListResponse(keys), nil
}
