package framework

import (
	"slices"
	"testing"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

func TestTokenParams(t *testing.T) {
	fd := &FieldData{Raw: map[string]any{
		"token_ttl": "1h", "token_max_ttl": 7200, "token_policies": "Dev, ops,dev,", "token_bound_cidrs": []any{"10.0.0.1", "192.168.0.0/16"},
	}, Schema: TokenFields()}
	if err := fd.Validate(); err != nil {
		t.Fatal(err)
	}
	var p TokenParams
	if err := p.ParseTokenFields(fd); err != nil {
		t.Fatal(err)
	}
	if p.TTL != time.Hour || p.MaxTTL != 2*time.Hour || !slices.Equal(p.Policies, []string{"dev", "ops"}) ||
		!slices.Equal(p.BoundCIDRs, []string{"10.0.0.1/32", "192.168.0.0/16"}) || p.Type != "default" {
		t.Fatalf("parsed %+v", p)
	}
	a := &logical.Auth{Policies: []string{"base"}}
	p.PopulateAuth(a)
	if !slices.Equal(a.Policies, []string{"base", "dev", "ops"}) || a.TTL != time.Hour || !a.Renewable {
		t.Fatalf("auth %+v", a)
	}

	// Fields left out keep their value; a TTL above the max is refused.
	fd = &FieldData{Raw: map[string]any{"token_ttl": "3h"}, Schema: TokenFields()}
	if err := p.ParseTokenFields(fd); err == nil {
		t.Fatal("token_ttl above token_max_ttl accepted")
	}
	fd = &FieldData{Raw: map[string]any{"token_bound_cidrs": "10.0.0.0/33"}, Schema: TokenFields()}
	if err := p.ParseTokenFields(fd); err == nil {
		t.Fatal("bad CIDR accepted")
	}
}

func TestCIDRsContain(t *testing.T) {
	cidrs := []string{"10.0.0.0/8", "2001:db8::/32"}
	for addr, want := range map[string]bool{
		"10.1.2.3":            true,
		"10.1.2.3:8200":       true,
		"[::ffff:10.1.2.3]:1": true, // IPv4-mapped IPv6 is the IPv4 address
		"[2001:db8::1]:443":   true,
		"127.0.0.1:1":         false,
		"":                    false,
		"not-an-ip":           false,
	} {
		if got := CIDRsContain(cidrs, addr); got != want {
			t.Errorf("CIDRsContain(%q) = %v, want %v", addr, got, want)
		}
	}
	if !CIDRsContain(nil, "") {
		t.Error("no CIDRs must allow every address")
	}
}

func TestTokenDurationsBounded(t *testing.T) {
	fd := &FieldData{Raw: map[string]any{"token_period": 1 << 40}, Schema: TokenFields()}
	if err := fd.Validate(); err != nil {
		t.Fatal(err)
	}
	var p TokenParams
	if err := p.ParseTokenFields(fd); err == nil || p.Period != 0 {
		t.Fatalf("a period of 2^40 seconds: %v, period %v", err, p.Period)
	}
}
