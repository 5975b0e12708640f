package audit

import (
	"fmt"
	"io"
	"log/slog"
)

// The input types and the configurations hold tokens, secret data and
// keys. They print (with every fmt verb) and log (slog) only fields that
// are not secret.

func (a Auth) String() string {
	return fmt.Sprintf("audit.Auth{display_name=%q policies=%v token_type=%q}", a.DisplayName, a.Policies, a.TokenType)
}

// Format implements fmt.Formatter: every verb prints String.
func (a Auth) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, a.String()) }

// LogValue implements slog.LogValuer with the same fields.
func (a Auth) LogValue() slog.Value { return slog.StringValue(a.String()) }

func (r Request) String() string {
	return fmt.Sprintf("audit.Request{id=%q operation=%q path=%q}", r.ID, r.Operation, r.Path)
}

// Format implements fmt.Formatter: every verb prints String.
func (r Request) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, r.String()) }

// LogValue implements slog.LogValuer with the same fields.
func (r Request) LogValue() slog.Value { return slog.StringValue(r.String()) }

func (r Response) String() string {
	id := ""
	if r.Request != nil {
		id = r.Request.ID
	}
	return fmt.Sprintf("audit.Response{request_id=%q status_code=%d}", id, r.StatusCode)
}

// Format implements fmt.Formatter: every verb prints String.
func (r Response) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, r.String()) }

// LogValue implements slog.LogValuer with the same fields.
func (r Response) LogValue() slog.Value { return slog.StringValue(r.String()) }

func (c DeviceConfig) String() string {
	return fmt.Sprintf("audit.DeviceConfig{log_raw=%t raw_accessors=%t checkpoint_every=%d checkpoint_interval=%v}",
		c.LogRaw, c.RawAccessors, c.CheckpointEvery, c.CheckpointInterval)
}

// Format implements fmt.Formatter: every verb prints String (never a key).
func (c DeviceConfig) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, c.String()) }

func (c FileConfig) String() string {
	return fmt.Sprintf("audit.FileConfig{path=%q mode=%v fsync=%t %v}", c.Path, c.Mode, c.Fsync, c.DeviceConfig)
}

// Format implements fmt.Formatter: every verb prints String (never a key).
func (c FileConfig) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, c.String()) }

func (c SocketConfig) String() string {
	return fmt.Sprintf("audit.SocketConfig{network=%q address=%q %v}", c.Network, c.Address, c.DeviceConfig)
}

// Format implements fmt.Formatter: every verb prints String (never a key).
func (c SocketConfig) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, c.String()) }
