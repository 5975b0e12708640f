package kernel

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/wardproject/ward/kernel/audit"
	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// Barrier keys of the audit devices. A device's keys are created the first
// time its path is enabled and kept after it is disabled, so the same path
// keeps hashing the same values and signing with the same key.
const (
	auditTableKey  = "core/audit"       // API-created devices (JSON list)
	auditKeyPrefix = "core/audit-keys/" // <path>: HMAC key and signing seed
	auditChainPfx  = "core/audit-chain/"
)

// auditDevice is one enabled device as sys/audit shows it.
type auditDevice struct {
	Path        string            `json:"path"` // without slash
	Type        string            `json:"type"`
	Description string            `json:"description"`
	Options     map[string]string `json:"options"`
	// Declared devices come from the configuration file and cannot be
	// disabled through the API.
	Declared bool `json:"-"`
}

// auditDevices is the unsealed state's audit table and broker.
type auditDevices struct {
	broker *audit.Broker
	mu     sync.Mutex // protects devices and the stored table
	// devices by path, declared and API-created.
	devices map[string]*auditDevice
}

type auditKeys struct {
	HMACKey     []byte `json:"hmac_key"`
	SigningSeed []byte `json:"signing_seed"`
}

// barrierChainStore keeps a device's chain state in the barrier.
type barrierChainStore struct {
	c   *Core
	key string
}

func (s barrierChainStore) Load(ctx context.Context) (*audit.ChainState, error) {
	b, err := s.c.barrier.Get(ctx, s.key)
	if err != nil || b == nil {
		return nil, err
	}
	st := new(audit.ChainState)
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("decode audit chain state: %w", err)
	}
	return st, nil
}

func (s barrierChainStore) Save(ctx context.Context, st *audit.ChainState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return s.c.barrier.Put(ctx, s.key, b)
}

// loadAudit enables the declared devices and those created through the API.
// A device that cannot be built (bad options) fails the unseal: running
// without an audit device the operator declared would be silently unsafe.
// A device that cannot write yet (unwritable path) is enabled and refuses
// requests until it recovers.
func (c *Core) loadAudit(ctx context.Context) (*auditDevices, error) {
	a := &auditDevices{broker: audit.NewBroker(audit.BrokerOptions{Logger: c.logger}), devices: map[string]*auditDevice{}}
	var list []*auditDevice
	for _, d := range c.cfg.AuditDevices {
		list = append(list, &auditDevice{Path: d.Path, Type: d.Type, Description: d.Description, Options: d.Options, Declared: true})
	}
	stored, err := c.storedAuditDevices(ctx)
	if err != nil {
		return nil, err
	}
	list = append(list, stored...)
	for _, d := range list {
		if _, dup := a.devices[d.Path]; dup {
			return nil, fmt.Errorf("audit device %q is declared in the configuration and was also created through the API", d.Path)
		}
		if err := c.startAuditDevice(ctx, a, d); err != nil {
			a.broker.Close()
			return nil, fmt.Errorf("audit device %q: %w", d.Path, err)
		}
	}
	return a, nil
}

func (c *Core) storedAuditDevices(ctx context.Context) ([]*auditDevice, error) {
	b, err := c.barrier.Get(ctx, auditTableKey)
	if err != nil || b == nil {
		return nil, err
	}
	var list []*auditDevice
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("decode audit table: %w", err)
	}
	return list, nil
}

// startAuditDevice builds a device with its keys from the barrier and
// enables it in the broker.
func (c *Core) startAuditDevice(ctx context.Context, a *auditDevices, d *auditDevice) error {
	keys, err := c.auditKeys(ctx, d.Path)
	if err != nil {
		return err
	}
	dev, err := audit.NewDevice(ctx, d.Type, d.Options, audit.DeviceConfig{
		HMACKey:    keys.HMACKey,
		SigningKey: ed25519.NewKeyFromSeed(keys.SigningSeed),
		Chain:      barrierChainStore{c: c, key: auditChainPfx + d.Path},
		Logger:     c.logger.With("audit_device", d.Path),
	})
	if err != nil {
		return err
	}
	if err := a.broker.Enable(d.Path, dev); err != nil {
		dev.Close()
		return err
	}
	a.devices[d.Path] = d
	return nil
}

// auditKeys loads or creates a device path's keys.
func (c *Core) auditKeys(ctx context.Context, path string) (*auditKeys, error) {
	b, err := c.barrier.Get(ctx, auditKeyPrefix+path)
	if err != nil {
		return nil, err
	}
	if b != nil {
		k := new(auditKeys)
		if err := json.Unmarshal(b, k); err != nil {
			return nil, fmt.Errorf("decode audit keys: %w", err)
		}
		return k, nil
	}
	k := &auditKeys{HMACKey: audit.NewKey(), SigningSeed: audit.NewSigningKey().Seed()}
	b, err = json.Marshal(k)
	if err != nil {
		return nil, err
	}
	if err := c.barrier.Put(ctx, auditKeyPrefix+path, b); err != nil {
		return nil, err
	}
	return k, nil
}

// persistLocked writes the API-created devices.
func (c *Core) persistAuditLocked(ctx context.Context, a *auditDevices) error {
	list := []*auditDevice{}
	for _, d := range a.devices {
		if !d.Declared {
			list = append(list, d)
		}
	}
	b, err := json.Marshal(list)
	if err != nil {
		return err
	}
	return c.barrier.Put(ctx, auditTableKey, b)
}

func auditPath(d *framework.FieldData) (string, error) {
	p := strings.Trim(d.Get("path").(string), "/")
	if p == "" || strings.ContainsAny(p, "/ \t\n*+") {
		return "", logical.InvalidRequest("invalid audit device path %q", p)
	}
	return p, nil
}

func (s *system) auditPaths() []*framework.Path {
	pathField := map[string]*framework.FieldSchema{"path": {Type: framework.TypeString}}
	return []*framework.Path{
		{
			Pattern:      "audit/?",
			Operations:   map[logical.Operation]framework.OperationFunc{logical.ReadOperation: s.listAudit},
			HelpSynopsis: "List the enabled audit devices.",
		},
		{
			Pattern:      "audit/(?P<path>[^/]+)/verify-key",
			Fields:       pathField,
			Operations:   map[logical.Operation]framework.OperationFunc{logical.ReadOperation: s.auditVerifyKey},
			HelpSynopsis: "The public key that verifies a device's checkpoints, and its last checkpoint.",
		},
		{
			Pattern: "audit/(?P<path>[^/]+)",
			Fields: map[string]*framework.FieldSchema{
				"path":        {Type: framework.TypeString},
				"type":        {Type: framework.TypeString, Description: "file or socket."},
				"description": {Type: framework.TypeString},
				"options":     {Type: framework.TypeKVPairs, Description: "Device options (file_path, address, log_raw, hmac_accessor, ...)."},
				"local":       {Type: framework.TypeBool},
			},
			Operations: map[logical.Operation]framework.OperationFunc{
				logical.UpdateOperation: s.enableAudit,
				logical.DeleteOperation: s.disableAudit,
			},
			HelpSynopsis: "Enable or disable an audit device (API creation only when the configuration allows it).",
		},
		{
			Pattern: "audit-hash/(?P<path>[^/]+)",
			Fields: map[string]*framework.FieldSchema{
				"path":  {Type: framework.TypeString},
				"input": {Type: framework.TypeString, Required: true},
			},
			Operations:   map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: s.auditHash},
			HelpSynopsis: "Hash a value with a device's HMAC key, to search its log.",
		},
	}
}

func (s *system) listAudit(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	a := s.u.audit
	a.mu.Lock()
	defer a.mu.Unlock()
	data := map[string]any{}
	for p, dev := range a.devices {
		data[p+"/"] = map[string]any{"type": dev.Type, "description": dev.Description, "options": dev.Options,
			"local": false, "path": p + "/", "declared_in_config": dev.Declared}
	}
	return &logical.Response{Data: data}, nil
}

func (s *system) enableAudit(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if !s.core.cfg.AllowAPIAuditCreation {
		return nil, logical.InvalidRequest("audit devices can only be declared in the server configuration " +
			"(creating them through the API is disabled unless unsafe_allow_api_audit_creation = true)")
	}
	p, err := auditPath(d)
	if err != nil {
		return nil, err
	}
	typ := d.Get("type").(string)
	if typ == "" {
		return nil, logical.InvalidRequest("type is required")
	}
	var opts map[string]string
	if v, ok := d.GetOk("options"); ok {
		opts = v.(map[string]string)
	}
	a := s.u.audit
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.devices[p]; ok {
		return nil, logical.InvalidRequest("an audit device is already enabled at %q", p+"/")
	}
	dev := &auditDevice{Path: p, Type: typ, Description: d.Get("description").(string), Options: opts}
	if err := s.core.startAuditDevice(ctx, a, dev); err != nil {
		if errors.Is(err, audit.ErrInvalidConfig) {
			return nil, logical.InvalidRequest("%v", err)
		}
		return nil, err
	}
	if err := s.core.persistAuditLocked(ctx, a); err != nil {
		_ = a.broker.Disable(p)
		delete(a.devices, p)
		return nil, err
	}
	s.core.logger.Info("audit device enabled", "path", p, "type", typ)
	return nil, nil
}

func (s *system) disableAudit(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	p, err := auditPath(d)
	if err != nil {
		return nil, err
	}
	a := s.u.audit
	a.mu.Lock()
	defer a.mu.Unlock()
	dev, ok := a.devices[p]
	if !ok {
		return nil, nil
	}
	if dev.Declared {
		return nil, logical.InvalidRequest("audit device %q is declared in the server configuration; remove it there", p+"/")
	}
	delete(a.devices, p)
	if err := s.core.persistAuditLocked(ctx, a); err != nil {
		a.devices[p] = dev
		return nil, err
	}
	if err := a.broker.Disable(p); err != nil && !errors.Is(err, audit.ErrNoDevice) {
		return nil, err
	}
	s.core.logger.Info("audit device disabled", "path", p)
	return nil, nil
}

func (s *system) auditVerifyKey(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	p, err := auditPath(d)
	if err != nil {
		return nil, err
	}
	dev, ok := s.u.audit.broker.Device(p)
	if !ok {
		return nil, nil
	}
	keys, err := s.core.auditKeys(ctx, p)
	if err != nil {
		return nil, err
	}
	pub := ed25519.NewKeyFromSeed(keys.SigningSeed).Public().(ed25519.PublicKey)
	var last any
	if cp := dev.Stats().LastCheckpoint; cp.Seq > 0 {
		last = map[string]any{"seq": cp.Seq, "hash": cp.Hash, "time": cp.Time}
	}
	return &logical.Response{Data: map[string]any{"public_key": audit.PublicKeyString(pub), "last_checkpoint": last}}, nil
}

func (s *system) auditHash(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	p, err := auditPath(d)
	if err != nil {
		return nil, err
	}
	h, err := s.u.audit.broker.Hash(p, d.Get("input").(string))
	if errors.Is(err, audit.ErrNoDevice) {
		return nil, logical.InvalidRequest("no audit device at %q", p+"/")
	}
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{"hash": h}}, nil
}
