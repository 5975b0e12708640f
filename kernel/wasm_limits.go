package kernel

import (
	"net/netip"
	"time"

	"github.com/wardproject/ward/kernel/mount"
	"github.com/wardproject/ward/kernel/plugin"
	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
	"github.com/wardproject/ward/wasm"
)

// wasmFields are a WASM mount's sandbox settings, accepted in the enable
// request's config and by tune. Zero values mean the sandbox's defaults.
var wasmFields = map[string]*framework.FieldSchema{
	"wasm_memory_mb":        {Type: framework.TypeInt, Description: "WASM plugins: memory cap per instance, MiB (default 64, at most 256)."},
	"wasm_timeout":          {Type: framework.TypeDurationSecond, Description: "WASM plugins: deadline of one request (default 5s)."},
	"wasm_pool_size":        {Type: framework.TypeInt, Description: "WASM plugins: instances serving the mount at once (default: cores, 2 to 32)."},
	"wasm_allowed_hosts":    {Type: framework.TypeCommaStringSlice, Description: "WASM plugins: hosts the module may reach over HTTPS (host, host:port, *.domain). None by default."},
	"wasm_allow_plain_http": {Type: framework.TypeBool, Description: "WASM plugins: allow http:// to the allowed hosts."},
	"wasm_private_networks": {Type: framework.TypeCommaStringSlice, Description: "WASM plugins: private CIDRs the module may connect to (refused by default)."},
}

// parseWasmConfig applies the wasm_* settings present in raw to cur and
// returns the result and whether any was given.
func parseWasmConfig(raw map[string]any, cur *mount.WasmConfig) (*mount.WasmConfig, bool, error) {
	present := map[string]any{}
	for k := range wasmFields {
		if v, ok := raw[k]; ok {
			present[k] = v
		}
	}
	if len(present) == 0 {
		return cur, false, nil
	}
	d := &framework.FieldData{Raw: present, Schema: wasmFields}
	if err := d.Validate(); err != nil {
		return nil, false, err
	}
	out := &mount.WasmConfig{}
	if cur != nil {
		*out = *cur
	}
	if v, ok := d.GetOk("wasm_memory_mb"); ok {
		out.MemoryMB = v.(int)
	}
	if v, ok := d.GetOk("wasm_timeout"); ok {
		out.TimeoutSeconds = v.(int)
	}
	if v, ok := d.GetOk("wasm_pool_size"); ok {
		out.PoolSize = v.(int)
	}
	if v, ok := d.GetOk("wasm_allowed_hosts"); ok {
		out.AllowedHosts = v.([]string)
	}
	if v, ok := d.GetOk("wasm_allow_plain_http"); ok {
		out.AllowPlainHTTP = v.(bool)
	}
	if v, ok := d.GetOk("wasm_private_networks"); ok {
		out.PrivateNetworks = v.([]string)
	}
	if _, err := wasmLimits(out); err != nil {
		return nil, false, err
	}
	return out, true, nil
}

// wasmLimits turns a mount's settings into the sandbox's, checking them.
func wasmLimits(c *mount.WasmConfig) (plugin.WasmLimits, error) {
	var l plugin.WasmLimits
	if c == nil {
		return l, nil
	}
	if c.MemoryMB < 0 || c.TimeoutSeconds < 0 || c.PoolSize < 0 {
		return l, logical.InvalidRequest("wasm_* settings must not be negative")
	}
	l.Limits.MemoryPages = uint32(c.MemoryMB * 16) // 64 KiB pages
	l.Limits.CallTimeout = time.Duration(c.TimeoutSeconds) * time.Second
	l.Limits.PoolSize = c.PoolSize
	l.HTTP.Hosts = c.AllowedHosts
	l.HTTP.AllowPlainHTTP = c.AllowPlainHTTP
	for _, n := range c.PrivateNetworks {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			return l, logical.InvalidRequest("wasm_private_networks: %q is not a CIDR", n)
		}
		l.HTTP.PrivateNetworks = append(l.HTTP.PrivateNetworks, p.Masked())
	}
	if c.MemoryMB > 0 && c.MemoryMB > wasm.MaxMemoryPages/16 {
		return l, logical.InvalidRequest("wasm_memory_mb must be at most %d", wasm.MaxMemoryPages/16)
	}
	if err := l.Limits.Validate(); err != nil {
		return l, logical.InvalidRequest("%v", err)
	}
	if err := l.HTTP.Validate(); err != nil {
		return l, logical.InvalidRequest("%v", err)
	}
	return l, nil
}

// wasmConfigView renders a mount's WASM settings for sys/mounts and tune.
func wasmConfigView(c *mount.WasmConfig, out map[string]any) {
	if c == nil {
		return
	}
	out["wasm_memory_mb"] = c.MemoryMB
	out["wasm_timeout"] = c.TimeoutSeconds
	out["wasm_pool_size"] = c.PoolSize
	out["wasm_allowed_hosts"] = append([]string{}, c.AllowedHosts...)
	out["wasm_allow_plain_http"] = c.AllowPlainHTTP
	out["wasm_private_networks"] = append([]string{}, c.PrivateNetworks...)
}
