package config

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl"
	"github.com/hashicorp/hcl/hcl/ast"
)

// Seal is a `seal "<type>"` stanza, in Vault's syntax:
//
//	seal "pkcs11" {
//	  lib          = "/usr/lib/softhsm/libsofthsm2.so"
//	  token_label  = "ward"             # or slot = "0"
//	  pin          = "..."              # or the WARD_HSM_PIN environment variable
//	  key_label    = "ward-root-key"
//	  mechanism    = "aes-gcm"          # default; or "rsa-oaep" (rsa_oaep_hash = "sha256")
//	  generate_key = "true"
//	}
//
// A stanza with disabled = "true" names the seal storage is migrated away
// from (`ward operator unseal -migrate`). `seal "shamir" {}` may be written
// for the Shamir seal, which is also what no enabled stanza means.
type Seal struct {
	Type     string
	Disabled bool
	// PKCS11 holds the settings of a "pkcs11" stanza.
	PKCS11 *PKCS11Seal
}

// PKCS11Seal is the body of a `seal "pkcs11"` stanza.
type PKCS11Seal struct {
	Lib         string
	Slot        *uint
	TokenLabel  string
	PIN         string `json:"-"` // may be empty: the server reads WARD_HSM_PIN
	KeyLabel    string
	Mechanism   string
	RSAOAEPHash string
	RSABits     int
	GenerateKey bool
	MaxSessions int
}

// Format prints the stanza without the PIN, for every verb.
func (p PKCS11Seal) Format(f fmt.State, verb rune) {
	_, _ = io.WriteString(f, fmt.Sprintf("config.PKCS11Seal{lib=%q token_label=%q key_label=%q mechanism=%q pin=redacted}",
		p.Lib, p.TokenLabel, p.KeyLabel, p.Mechanism))
}

var pkcs11Keys = []string{"lib", "slot", "token_label", "pin", "key_label", "mechanism", "rsa_oaep_hash", "rsa_bits",
	"generate_key", "max_sessions", "disabled"}

func parseSeal(item *ast.ObjectItem) (*Seal, error) {
	typ, err := label(item)
	if err != nil {
		return nil, err
	}
	s := &Seal{Type: typ}
	switch typ {
	case "shamir":
		if err := checkKeys(item, "disabled"); err != nil {
			return nil, err
		}
	case "pkcs11":
		if err := checkKeys(item, pkcs11Keys...); err != nil {
			return nil, err
		}
		s.PKCS11 = &PKCS11Seal{}
	default:
		return nil, fmt.Errorf("unsupported seal type %q (supported: \"pkcs11\", \"shamir\")", typ)
	}
	var raw map[string]any
	if err := hcl.DecodeObject(&raw, item.Val); err != nil {
		return nil, err
	}
	str := func(k string) (string, error) {
		switch v := raw[k].(type) {
		case nil:
			return "", nil
		case string:
			return v, nil
		case int, int64, float64:
			return fmt.Sprint(v), nil
		case bool:
			return strconv.FormatBool(v), nil
		}
		return "", fmt.Errorf("%s must be a string", k)
	}
	boolean := func(k string) (bool, error) {
		v, err := str(k)
		if err != nil || v == "" {
			return false, err
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, fmt.Errorf("%s must be true or false", k)
		}
		return b, nil
	}
	integer := func(k string) (int, error) {
		v, err := str(k)
		if err != nil || v == "" {
			return 0, err
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%s must be a non-negative integer", k)
		}
		return n, nil
	}
	if s.Disabled, err = boolean("disabled"); err != nil {
		return nil, err
	}
	if p := s.PKCS11; p != nil {
		for _, f := range []struct {
			key string
			dst *string
		}{{"lib", &p.Lib}, {"token_label", &p.TokenLabel}, {"pin", &p.PIN}, {"key_label", &p.KeyLabel},
			{"mechanism", &p.Mechanism}, {"rsa_oaep_hash", &p.RSAOAEPHash}} {
			if *f.dst, err = str(f.key); err != nil {
				return nil, err
			}
		}
		if slot, err := str("slot"); err != nil {
			return nil, err
		} else if slot != "" {
			n, err := strconv.ParseUint(strings.TrimSpace(slot), 0, 64)
			if err != nil {
				return nil, errors.New("slot must be a slot number")
			}
			u := uint(n)
			p.Slot = &u
		}
		if p.GenerateKey, err = boolean("generate_key"); err != nil {
			return nil, err
		}
		if p.RSABits, err = integer("rsa_bits"); err != nil {
			return nil, err
		}
		if p.MaxSessions, err = integer("max_sessions"); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// validateSeals checks the seal stanzas: at most one enabled and one
// disabled, a pkcs11 stanza with what it needs.
func (c *Config) validateSeals() error {
	var enabled, disabled int
	for _, s := range c.Seals {
		if s.Disabled {
			disabled++
		} else {
			enabled++
		}
		if p := s.PKCS11; p != nil {
			switch {
			case p.Lib == "":
				return errors.New(`seal "pkcs11": lib (the PKCS#11 module path) is required`)
			case p.Slot == nil && p.TokenLabel == "":
				return errors.New(`seal "pkcs11": slot or token_label is required`)
			case p.Slot != nil && p.TokenLabel != "":
				return errors.New(`seal "pkcs11": set only one of slot and token_label`)
			case p.KeyLabel == "":
				return errors.New(`seal "pkcs11": key_label is required`)
			}
		}
	}
	switch {
	case enabled > 1:
		return errors.New("only one seal stanza may be enabled (mark the one being migrated away from disabled = \"true\")")
	case disabled > 1:
		return errors.New("only one seal stanza may be disabled")
	}
	if from, to := c.SealMigrateFrom(), c.ActiveSeal(); from != nil && from.Type == "shamir" && (to == nil || to.Type == "shamir") {
		return errors.New("a disabled shamir seal needs an enabled auto-unseal seal to migrate to")
	}
	return nil
}

// ActiveSeal returns the enabled seal stanza, or nil (the Shamir seal).
func (c *Config) ActiveSeal() *Seal {
	for i := range c.Seals {
		if !c.Seals[i].Disabled {
			return &c.Seals[i]
		}
	}
	return nil
}

// SealMigrateFrom returns the disabled seal stanza, or nil.
func (c *Config) SealMigrateFrom() *Seal {
	for i := range c.Seals {
		if c.Seals[i].Disabled {
			return &c.Seals[i]
		}
	}
	return nil
}
