package kv

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/wardproject/ward/sdk/jsonvalue"
)

// Metadata and version records are stored as json.Marshal writes the types
// of storage.go, and stay so. Done by reflection, encoding and decoding
// them is most of a request's CPU inside a WASM guest (a metadata record
// with ten versions took about 170 µs to decode and 65 µs to encode
// there, against a few natively), so this file writes the same bytes by
// hand, and reads records laid out exactly as it writes them by hand too.
// Anything else (a record of another layout, a corrupt one, a null where
// a value is expected) goes to encoding/json, so a record always decodes
// as encoding/json decodes it. codec_test.go checks both directions
// against encoding/json and fuzzes the readers.

// marshalMeta is json.Marshal(m).
func marshalMeta(m *keyMetadata) ([]byte, error) {
	b := make([]byte, 0, 256+110*len(m.Versions))
	b = append(b, `{"created_time":`...)
	b, ok := appendTime(b, m.CreatedTime)
	b = append(b, `,"updated_time":`...)
	b, ok2 := appendTime(b, m.UpdatedTime)
	if !ok || !ok2 {
		return json.Marshal(m) // its error
	}
	b = append(b, `,"current_version":`...)
	b = strconv.AppendInt(b, int64(m.CurrentVersion), 10)
	b = append(b, `,"oldest_version":`...)
	b = strconv.AppendInt(b, int64(m.OldestVersion), 10)
	b = append(b, `,"max_versions":`...)
	b = strconv.AppendInt(b, int64(m.MaxVersions), 10)
	b = append(b, `,"cas_required":`...)
	b = strconv.AppendBool(b, m.CASRequired)
	b = append(b, `,"delete_version_after":`...)
	b = strconv.AppendInt(b, int64(m.DeleteVersionAfter), 10)
	if len(m.CustomMetadata) > 0 {
		b = append(b, `,"custom_metadata":{`...)
		keys := make([]string, 0, len(m.CustomMetadata))
		for k := range m.CustomMetadata {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonvalue.AppendString(b, k, true)
			b = append(b, ':')
			b = jsonvalue.AppendString(b, m.CustomMetadata[k], true)
		}
		b = append(b, '}')
	}
	b = append(b, `,"current_metadata_version":`...)
	b = strconv.AppendInt(b, int64(m.CurrentMetadataVersion), 10)
	b = append(b, `,"metadata_cas_required":`...)
	b = strconv.AppendBool(b, m.MetadataCASRequired)
	b = append(b, `,"versions":`...)
	if m.Versions == nil {
		b = append(b, "null"...)
	} else {
		// encoding/json orders integer keys as strings: "10" before "9".
		keys := make([]string, 0, len(m.Versions))
		for n := range m.Versions {
			keys = append(keys, strconv.Itoa(n))
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, k...)
			b = append(b, `":`...)
			n, _ := strconv.Atoi(k)
			vm := m.Versions[n]
			if vm == nil {
				b = append(b, "null"...)
				continue
			}
			b = append(b, `{"created_time":`...)
			if b, ok = appendTime(b, vm.CreatedTime); !ok {
				return json.Marshal(m)
			}
			if vm.DeletionTime != nil {
				b = append(b, `,"deletion_time":`...)
				if b, ok = appendTime(b, *vm.DeletionTime); !ok {
					return json.Marshal(m)
				}
			}
			b = append(b, `,"destroyed":`...)
			b = strconv.AppendBool(b, vm.Destroyed)
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

// appendTime is time.Time's MarshalJSON; false where it fails (a year
// outside [0, 9999]).
func appendTime(b []byte, t time.Time) ([]byte, bool) {
	b = append(b, '"')
	b, err := t.AppendText(b)
	if err != nil {
		return b, false
	}
	return append(b, '"'), true
}

// marshalVersion is json.Marshal(rec) for a record whose data is what
// encodeObject returned (compact, HTML escaped: json.Marshal copies such
// a json.RawMessage as it is).
func marshalVersion(rec versionRecord) ([]byte, error) {
	if len(rec.Data) == 0 {
		return json.Marshal(rec)
	}
	b := make([]byte, 0, len(rec.Data)+64)
	b = append(b, `{"data":`...)
	b = append(b, rec.Data...)
	b = append(b, `,"created_time":`...)
	b, ok := appendTime(b, rec.CreatedTime)
	if !ok {
		return json.Marshal(rec)
	}
	return append(b, '}'), nil
}

// unmarshalMeta is json.Unmarshal(b, m) for a zero m.
func unmarshalMeta(b []byte, m *keyMetadata) error {
	if r := (recordReader{b: b}); r.meta(m) {
		return nil
	}
	*m = keyMetadata{}
	return json.Unmarshal(b, m)
}

// readVersionObject returns the data of a version record as getJSON into
// a versionRecord and decodeObject of its data do, with their errors.
func readVersionObject(b []byte) (map[string]any, error) {
	r := recordReader{b: b}
	if r.lit(`{"data":`) {
		if data, n, err := jsonvalue.ReadObject(r.b); err == nil {
			r.b = r.b[n:]
			var t time.Time
			if r.lit(`,"created_time":`) && r.time(&t) && r.lit("}") && r.end() {
				return data, nil
			}
		}
	}
	var rec versionRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, errCorruptRecord
	}
	return decodeObject(rec.Data)
}

// recordReader reads a record laid out exactly as marshalMeta writes it.
// Every method reports false, leaving the rest unspecified, at the first
// byte it does not expect.
type recordReader struct{ b []byte }

func (r *recordReader) lit(s string) bool {
	if !bytes.HasPrefix(r.b, []byte(s)) {
		return false
	}
	r.b = r.b[len(s):]
	return true
}

// end accepts what json.Unmarshal accepts after a value: spaces.
func (r *recordReader) end() bool {
	for _, c := range r.b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// time reads a string without escapes, parsed as time.Time's
// UnmarshalJSON parses it (escapes would reach it undecoded and fail).
func (r *recordReader) time(t *time.Time) bool {
	if len(r.b) == 0 || r.b[0] != '"' {
		return false
	}
	end := bytes.IndexByte(r.b[1:], '"')
	if end < 0 {
		return false
	}
	s := r.b[1 : 1+end]
	if bytes.IndexByte(s, '\\') >= 0 || t.UnmarshalText(s) != nil {
		return false
	}
	r.b = r.b[end+2:]
	return true
}

// digits reads an integer as json.Marshal writes one and returns its text.
func (r *recordReader) digits() ([]byte, bool) {
	i := 0
	if i < len(r.b) && r.b[i] == '-' {
		i++
	}
	start := i
	for i < len(r.b) && '0' <= r.b[i] && r.b[i] <= '9' {
		i++
	}
	if i == start || r.b[start] == '0' && i > start+1 {
		return nil, false
	}
	s := r.b[:i]
	r.b = r.b[i:]
	return s, true
}

func (r *recordReader) int(v *int) bool {
	s, ok := r.digits()
	if !ok {
		return false
	}
	n, err := strconv.ParseInt(string(s), 10, 64)
	*v = int(n)
	return err == nil && int64(*v) == n
}

func (r *recordReader) bool(v *bool) bool {
	switch {
	case r.lit("true"):
		*v = true
	case r.lit("false"):
		*v = false
	default:
		return false
	}
	return true
}

func (r *recordReader) meta(m *keyMetadata) bool {
	var dva int
	ok := r.lit(`{"created_time":`) && r.time(&m.CreatedTime) &&
		r.lit(`,"updated_time":`) && r.time(&m.UpdatedTime) &&
		r.lit(`,"current_version":`) && r.int(&m.CurrentVersion) &&
		r.lit(`,"oldest_version":`) && r.int(&m.OldestVersion) &&
		r.lit(`,"max_versions":`) && r.int(&m.MaxVersions) &&
		r.lit(`,"cas_required":`) && r.bool(&m.CASRequired) &&
		r.lit(`,"delete_version_after":`) && r.int(&dva)
	if !ok {
		return false
	}
	m.DeleteVersionAfter = time.Duration(dva)
	if r.lit(`,"custom_metadata":`) {
		obj, n, err := jsonvalue.ReadObject(r.b)
		if err != nil {
			return false
		}
		r.b = r.b[n:]
		m.CustomMetadata = make(map[string]string, len(obj))
		for k, v := range obj {
			s, isString := v.(string)
			if !isString {
				return false
			}
			m.CustomMetadata[k] = s
		}
	}
	ok = r.lit(`,"current_metadata_version":`) && r.int(&m.CurrentMetadataVersion) &&
		r.lit(`,"metadata_cas_required":`) && r.bool(&m.MetadataCASRequired) &&
		r.lit(`,"versions":`)
	if !ok {
		return false
	}
	if r.lit("null") {
		return r.lit("}") && r.end()
	}
	if !r.lit("{") {
		return false
	}
	m.Versions = map[int]*versionMetadata{}
	if !r.lit("}") {
		for {
			var n int
			vm := &versionMetadata{}
			ok := r.lit(`"`) && r.int(&n) && r.lit(`":{"created_time":`) && r.time(&vm.CreatedTime)
			if !ok {
				return false
			}
			if r.lit(`,"deletion_time":`) {
				vm.DeletionTime = new(time.Time)
				if !r.time(vm.DeletionTime) {
					return false
				}
			}
			if !r.lit(`,"destroyed":`) || !r.bool(&vm.Destroyed) || !r.lit("}") {
				return false
			}
			m.Versions[n] = vm // a repeated key replaces, as in encoding/json
			if r.lit("}") {
				break
			}
			if !r.lit(",") {
				return false
			}
		}
	}
	return r.lit("}") && r.end()
}
