package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/openbao/openbao/api/v2"
)

// This file renders results the way the Vault CLI does: "Key/Value" tables
// with dashed headers, JSON with -format=json, one raw value with -field.

func writeOut(s string) { fmt.Fprint(stdout, s) }

func printErr(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }

// printJSON writes v as indented JSON (HTML characters left as they are).
func printJSON(v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		printErr("Error formatting output as JSON: %s", err)
		return exitLocal
	}
	return exitOK
}

// cellEscape brackets a cell for tabwriter so tabs or newlines inside a
// value are passed through instead of breaking the columns. 0xff never
// occurs in UTF-8 text.
const cellEscape = "\xff"

// printTable writes header, a line of dashes under each header cell, then
// rows, in columns separated by four spaces.
func printTable(header []string, rows [][]string) {
	tw := tabwriter.NewWriter(stdout, 0, 8, 4, ' ', tabwriter.StripEscape)
	line := func(cells []string) {
		esc := make([]string, len(cells))
		for i, c := range cells {
			esc[i] = cellEscape + c + cellEscape
		}
		fmt.Fprintln(tw, strings.Join(esc, "\t"))
	}
	line(header)
	dashes := make([]string, len(header))
	for i, h := range header {
		dashes[i] = strings.Repeat("-", len(h))
	}
	line(dashes)
	for _, r := range rows {
		line(r)
	}
	tw.Flush()
}

// printKeyValues prints a "Key Value" table of rows (already ordered).
func printKeyValues(rows [][]string) {
	if len(rows) == 0 {
		return
	}
	printTable([]string{"Key", "Value"}, rows)
}

// mapRows turns data into sorted key/value rows, showing TTL-like fields
// (integer seconds) as durations as Vault does.
func mapRows(data map[string]any) [][]string {
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	rows := make([][]string, 0, len(keys))
	for _, k := range keys {
		rows = append(rows, []string{k, formatValue(k, data[k])})
	}
	return rows
}

// formatValue renders one table value: %v like Vault, durations humanized.
func formatValue(key string, v any) string {
	if looksLikeDuration(key) {
		if d, ok := secondsValue(v); ok {
			return humanDuration(d)
		}
	}
	return fmt.Sprintf("%v", v)
}

func looksLikeDuration(k string) bool {
	return k == "period" || strings.HasSuffix(k, "_period") ||
		k == "ttl" || strings.HasSuffix(k, "_ttl") ||
		k == "duration" || strings.HasSuffix(k, "_duration") ||
		k == "lease_max" || k == "ttl_max"
}

// secondsValue reads a JSON number of seconds.
func secondsValue(v any) (time.Duration, bool) {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		if err != nil {
			return 0, false
		}
		return time.Duration(i) * time.Second, true
	case int:
		return time.Duration(n) * time.Second, true
	case int64:
		return time.Duration(n) * time.Second, true
	case float64:
		return time.Duration(n) * time.Second, true
	}
	return 0, false
}

// humanDuration prints d without zero units: 1h, 1h30m, 768h, 0s.
func humanDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if i := strings.Index(s, "h0m"); i > 0 {
		s = s[:i+1] + s[i+3:]
	}
	return s
}

// secretRows renders a whole secret the way Vault's table output does: lease
// information, then auth information, then the sorted data.
func secretRows(s *api.Secret) [][]string {
	var rows [][]string
	if w := s.WrapInfo; w != nil {
		rows = append(rows,
			[]string{"wrapping_token", w.Token},
			[]string{"wrapping_accessor", w.Accessor},
			[]string{"wrapping_token_ttl", humanDuration(time.Duration(w.TTL) * time.Second)},
			[]string{"wrapping_token_creation_time", w.CreationTime.String()},
			[]string{"wrapping_token_creation_path", w.CreationPath})
		if w.WrappedAccessor != "" {
			rows = append(rows, []string{"wrapped_accessor", w.WrappedAccessor})
		}
	}
	if s.LeaseDuration > 0 {
		d := humanDuration(time.Duration(s.LeaseDuration) * time.Second)
		if s.LeaseID != "" {
			rows = append(rows,
				[]string{"lease_id", s.LeaseID},
				[]string{"lease_duration", d},
				[]string{"lease_renewable", fmt.Sprint(s.Renewable)})
		} else {
			rows = append(rows, []string{"refresh_interval", d})
		}
	}
	if a := s.Auth; a != nil {
		dur := "∞"
		if a.LeaseDuration > 0 {
			dur = humanDuration(time.Duration(a.LeaseDuration) * time.Second)
		}
		rows = append(rows,
			[]string{"token", a.ClientToken},
			[]string{"token_accessor", a.Accessor},
			[]string{"token_duration", dur},
			[]string{"token_renewable", fmt.Sprint(a.Renewable)},
			[]string{"token_policies", fmt.Sprintf("%q", a.TokenPolicies)},
			[]string{"identity_policies", fmt.Sprintf("%q", a.IdentityPolicies)},
			[]string{"policies", fmt.Sprintf("%q", a.Policies)})
		metaKeys := make([]string, 0, len(a.Metadata))
		for k := range a.Metadata {
			metaKeys = append(metaKeys, k)
		}
		sort.Strings(metaKeys)
		for _, k := range metaKeys {
			rows = append(rows, []string{"token_meta_" + k, a.Metadata[k]})
		}
	}
	return append(rows, mapRows(s.Data)...)
}

// printWarnings writes the server's warnings to stderr.
func printWarnings(s *api.Secret) {
	if s == nil || len(s.Warnings) == 0 {
		return
	}
	printErr("WARNING! The following warnings were returned from the server:\n")
	for _, w := range s.Warnings {
		printErr("  * %s\n", w)
	}
}

// showSecret prints a reply the command asked for: its -field, or the
// whole secret. An empty reply is a remote error ("Error <doing>: ...").
func (b *baseCommand) showSecret(s *api.Secret, doing string) int {
	if s == nil {
		printErr("Error %s: empty reply from the server", doing)
		return exitRemote
	}
	if b.flagField != "" {
		return b.printField(s, b.flagField)
	}
	return b.outputSecret(s)
}

// outputSecret prints s as a table or as the raw secret JSON.
func (b *baseCommand) outputSecret(s *api.Secret) int {
	if b.jsonOutput() {
		return printJSON(s)
	}
	printWarnings(s)
	printKeyValues(secretRows(s))
	return exitOK
}

// outputData prints a map as a key/value table or as JSON.
func (b *baseCommand) outputData(data map[string]any) int {
	if b.jsonOutput() {
		return printJSON(data)
	}
	printKeyValues(mapRows(data))
	return exitOK
}

// outputKeys prints the "keys" of a LIST reply as a one-column table, or as
// a JSON array (what Vault prints, so `| jq -r '.[]'` keeps working).
func (b *baseCommand) outputKeys(s *api.Secret, path string) int {
	raw, _ := s.Data["keys"].([]any)
	if raw == nil {
		printErr("No entries found at %s", path)
		return exitRemote
	}
	keys := make([]string, 0, len(raw))
	for _, k := range raw {
		keys = append(keys, fmt.Sprint(k))
	}
	if b.jsonOutput() {
		return printJSON(keys)
	}
	sort.Strings(keys)
	printWarnings(s)
	rows := make([][]string, len(keys))
	for i, k := range keys {
		rows[i] = []string{k}
	}
	printTable([]string{"Keys"}, rows)
	return exitOK
}

// secretField finds field in a secret: the pseudo-fields of the table output
// (token, token_accessor, lease_id, …) first, then the data.
func secretField(s *api.Secret, field string) (any, bool) {
	if w := s.WrapInfo; w != nil {
		switch field {
		case "wrapping_token":
			return w.Token, true
		case "wrapping_accessor":
			return w.Accessor, true
		case "wrapping_token_ttl":
			return humanDuration(time.Duration(w.TTL) * time.Second), true
		case "wrapping_token_creation_time":
			return w.CreationTime.String(), true
		case "wrapping_token_creation_path":
			return w.CreationPath, true
		case "wrapped_accessor":
			return w.WrappedAccessor, w.WrappedAccessor != ""
		}
	}
	if a := s.Auth; a != nil {
		switch field {
		case "token":
			return a.ClientToken, true
		case "token_accessor":
			return a.Accessor, true
		case "token_duration":
			return humanDuration(time.Duration(a.LeaseDuration) * time.Second), true
		case "token_renewable":
			return a.Renewable, true
		case "token_policies":
			return a.TokenPolicies, true
		case "identity_policies":
			return a.IdentityPolicies, true
		case "policies":
			return a.Policies, true
		}
		if k, ok := strings.CutPrefix(field, "token_meta_"); ok {
			v, ok := a.Metadata[k]
			return v, ok
		}
	}
	switch field {
	case "refresh_interval", "lease_duration":
		if s.LeaseDuration > 0 {
			return humanDuration(time.Duration(s.LeaseDuration) * time.Second), true
		}
	case "lease_id":
		if s.LeaseID != "" {
			return s.LeaseID, true
		}
	case "lease_renewable":
		if s.LeaseID != "" {
			return s.Renewable, true
		}
	}
	v, ok := s.Data[field]
	return v, ok
}

// printField prints one field of a secret or map: raw with the table format,
// JSON-encoded with -format=json. A missing or null field is an error.
func (b *baseCommand) printField(src any, field string) int {
	var v any
	var ok bool
	switch src := src.(type) {
	case *api.Secret:
		v, ok = secretField(src, field)
	case map[string]any:
		v, ok = src[field]
	}
	if !ok || v == nil {
		printErr("Field %q not present in secret", field)
		return exitLocal
	}
	if b.jsonOutput() {
		return printJSON(v)
	}
	printRaw(fmt.Sprintf("%v", v))
	return exitOK
}

// printRaw writes s unchanged; a newline follows only when stdout is a
// terminal, so `ward kv get -field=x … > file` stores the exact value.
func printRaw(s string) {
	writeOut(s)
	if isTerminal(stdout) {
		writeOut("\n")
	}
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// padEqualSigns centres title in a "== title ==" line about width wide.
func padEqualSigns(title string, width int) string {
	n := width - (len(title) + 2)
	if n <= 0 {
		n = 4
	}
	if n%2 != 0 {
		n++
	}
	return fmt.Sprintf("%s %s %s", strings.Repeat("=", n/2), title, strings.Repeat("=", n/2))
}

// sectionHeader returns a "== title ==" line as wide as a table of data.
func sectionHeader(title string, data map[string]any) string {
	longest := 0
	for k := range data {
		longest = max(longest, len(k))
	}
	return padEqualSigns(title, longest+4+len("Value"))
}

// printPathHeader prints the "== Secret Path ==" block of kv output.
func printPathHeader(title, path string) {
	writeOut(padEqualSigns(title, len(path)) + "\n" + path + "\n\n")
}
