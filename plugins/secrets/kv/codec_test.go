package kv

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"
	"time"
)

// codec.go must write exactly what json.Marshal writes and read exactly
// what json.Unmarshal reads, on its own records and on anything else.

func randomTime(r *rand.Rand) time.Time {
	t := time.Unix(r.Int64N(4e9), r.Int64N(1e9))
	switch r.IntN(4) {
	case 0:
		return t.UTC()
	case 1:
		return t.UTC().Truncate(time.Second)
	case 2:
		return t.In(time.FixedZone("", -r.IntN(14)*3600))
	}
	return t.In(time.FixedZone("X", 5*3600+30*60))
}

var metadataStrings = []string{"", "owner", "<script>&amp;</script>", "é€😀", "a\"b\\c", "tab\there\nnl", "\u2028\u2029", "bad\xffutf8", "\x00\x1f\x7f"}

func randomMeta(r *rand.Rand) *keyMetadata {
	m := &keyMetadata{
		CreatedTime: randomTime(r), UpdatedTime: randomTime(r),
		CurrentVersion: r.IntN(1000), OldestVersion: r.IntN(100) - 1, MaxVersions: r.IntN(20),
		CASRequired: r.IntN(2) == 0, DeleteVersionAfter: time.Duration(r.Int64N(1e15)),
		CurrentMetadataVersion: r.IntN(50), MetadataCASRequired: r.IntN(2) == 0,
	}
	switch r.IntN(4) {
	case 0:
	case 1:
		m.CustomMetadata = map[string]string{}
	default:
		m.CustomMetadata = map[string]string{}
		for range r.IntN(5) + 1 {
			m.CustomMetadata[metadataStrings[r.IntN(len(metadataStrings))]+strconv.Itoa(r.IntN(3))] = metadataStrings[r.IntN(len(metadataStrings))]
		}
	}
	if r.IntN(8) != 0 {
		m.Versions = map[int]*versionMetadata{}
		for range r.IntN(15) {
			vm := &versionMetadata{CreatedTime: randomTime(r), Destroyed: r.IntN(3) == 0}
			if r.IntN(3) == 0 {
				t := randomTime(r)
				vm.DeletionTime = &t
			}
			n := r.IntN(120)
			if r.IntN(10) == 0 {
				vm = nil
			}
			m.Versions[n] = vm
		}
	}
	return m
}

// sameMeta compares two decoded records: equal JSON (times compared as
// instants with their offsets) and maps nil in both or in neither.
func sameMeta(t *testing.T, got, want *keyMetadata) {
	t.Helper()
	g, err1 := json.Marshal(got)
	w, err2 := json.Marshal(want)
	if err1 != nil || err2 != nil || !bytes.Equal(g, w) ||
		(got.CustomMetadata == nil) != (want.CustomMetadata == nil) || (got.Versions == nil) != (want.Versions == nil) {
		t.Fatalf("decoded differently:\n got %s (%v)\nwant %s (%v)", g, err1, w, err2)
	}
}

func TestMetaCodecMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		m := randomMeta(r)
		want, wantErr := json.Marshal(m)
		got, err := marshalMeta(m)
		if err != nil || wantErr != nil || !bytes.Equal(got, want) {
			t.Fatalf("marshalMeta:\n got %s (%v)\nwant %s (%v)", got, err, want, wantErr)
		}
		// The fast reader takes what marshalMeta writes (no fallback) and
		// reads what json.Unmarshal reads.
		var fast keyMetadata
		if rr := (recordReader{b: got}); !rr.meta(&fast) {
			if m.Versions == nil || !hasNilVersion(m) {
				t.Fatalf("the fast reader refused its own record %s", got)
			}
		}
		var std, viaCodec keyMetadata
		if err := json.Unmarshal(want, &std); err != nil {
			t.Fatal(err)
		}
		if err := unmarshalMeta(got, &viaCodec); err != nil {
			t.Fatal(err)
		}
		sameMeta(t, &viaCodec, &std)
	}
	// A time json.Marshal refuses is refused alike.
	bad := &keyMetadata{CreatedTime: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	_, wantErr := json.Marshal(bad)
	if _, err := marshalMeta(bad); err == nil || wantErr == nil || err.Error() != wantErr.Error() {
		t.Fatalf("year 10000: %v, encoding/json %v", err, wantErr)
	}
}

func hasNilVersion(m *keyMetadata) bool {
	for _, vm := range m.Versions {
		if vm == nil {
			return true
		}
	}
	return false
}

func TestVersionCodecMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 500 {
		data := map[string]any{}
		for range r.IntN(4) {
			data[metadataStrings[r.IntN(len(metadataStrings))]] = []any{metadataStrings[r.IntN(len(metadataStrings))], json.Number("1.50"), nil, true, map[string]any{}}
		}
		encoded, err := encodeObject(data)
		if err != nil {
			t.Fatal(err)
		}
		if std, _ := json.Marshal(data); !bytes.Equal(encoded, std) {
			t.Fatalf("encodeObject: %s, json.Marshal %s", encoded, std)
		}
		rec := versionRecord{Data: encoded, CreatedTime: randomTime(r)}
		want, _ := json.Marshal(rec)
		got, err := marshalVersion(rec)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("marshalVersion:\n got %s (%v)\nwant %s", got, err, want)
		}
		checkReadVersion(t, got)
	}
}

// stdReadVersion is what readVersionData did with encoding/json.
func stdReadVersion(b []byte) (map[string]any, error) {
	var rec versionRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, errCorruptRecord
	}
	dec := json.NewDecoder(bytes.NewReader(rec.Data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, errCorruptRecord
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}

func checkReadVersion(t *testing.T, b []byte) {
	t.Helper()
	want, wantErr := stdReadVersion(b)
	got, err := readVersionObject(b)
	if (err != nil) != (wantErr != nil) || !reflect.DeepEqual(got, want) {
		t.Fatalf("readVersionObject(%q):\n got %#v (%v)\nwant %#v (%v)", b, got, err, want, wantErr)
	}
}

func checkUnmarshalMeta(t *testing.T, b []byte) {
	t.Helper()
	var std, got keyMetadata
	wantErr := json.Unmarshal(b, &std)
	err := unmarshalMeta(b, &got)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("unmarshalMeta(%q): error %v, encoding/json %v", b, err, wantErr)
	}
	if err == nil {
		sameMeta(t, &got, &std)
	}
}

var metaSeeds = []string{
	`{"created_time":"2026-01-02T03:04:05.123456789Z","updated_time":"2026-01-02T03:04:05Z","current_version":3,"oldest_version":1,"max_versions":0,"cas_required":false,"delete_version_after":0,"custom_metadata":{"a":"\u003cb\u003e"},"current_metadata_version":0,"metadata_cas_required":false,"versions":{"1":{"created_time":"2026-01-02T03:04:05Z","destroyed":false},"10":{"created_time":"2026-01-02T03:04:05+02:00","deletion_time":"2026-01-02T03:04:05Z","destroyed":true}}}`,
	`{"created_time":"2026-01-02T03:04:05Z","updated_time":"2026-01-02T03:04:05Z","current_version":0,"oldest_version":0,"max_versions":0,"cas_required":false,"delete_version_after":0,"current_metadata_version":0,"metadata_cas_required":false,"versions":null} `,
	`{"created_time":"2026-01-02T03:04:05Z","updated_time":"2026-01-02T03:04:05Z","current_version":01,"oldest_version":0,"max_versions":0,"cas_required":false,"delete_version_after":0,"current_metadata_version":0,"metadata_cas_required":false,"versions":{}}`,
	`{"created_time":"2026-01-02T03:04:05Z","updated_time":"2026-01-02T03:04:05Z","current_version":1,"oldest_version":0,"max_versions":0,"cas_required":false,"delete_version_after":0,"current_metadata_version":0,"metadata_cas_required":false,"versions":{"1":null,"2":{"created_time":"2026-01-02T03:04:05Z","destroyed":false},"2":{"created_time":"2027-01-02T03:04:05Z","destroyed":true}}}`,
	`{"created_time":"2026\u002d01-02T03:04:05Z","updated_time":"2026-01-02T03:04:05Z"}`,
	`{"Created_Time":"2026-01-02T03:04:05Z","versions":{"+1":{"Destroyed":true}},"extra":1}`,
	`{"created_time":"2026-01-02T03:04:05Z","updated_time":"2026-01-02T03:04:05Z","current_version":99999999999999999999,"oldest_version":0}`,
	`{"created_time":null,"updated_time":"x","current_version":1.5}`, `{} x`, `[]`, `null`, ``, `{"custom_metadata":{"a":1}}`,
}

func TestUnmarshalMetaOddRecords(t *testing.T) {
	for _, s := range metaSeeds {
		checkUnmarshalMeta(t, []byte(s))
	}
}

func TestReadVersionOddRecords(t *testing.T) {
	for _, s := range []string{
		`{"data":{"a":1},"created_time":"2026-01-02T03:04:05Z"}`, `{"data":{"a":1},"created_time":"2026-01-02T03:04:05Z"} x`,
		`{"data":null,"created_time":"2026-01-02T03:04:05Z"}`, `{"data":[1],"created_time":"2026-01-02T03:04:05Z"}`,
		`{"created_time":"2026-01-02T03:04:05Z"}`, `{"data":{"a":1}}`, `{"data":{"a":1},"created_time":"bad"}`,
		`{"data":{"a":1,"a":2},"created_time":"2026-01-02T03:04:05Z","data":{"b":1}}`, `{"Data":{"a":1},"created_time":null}`,
		`{"data":{"a":1},"created_time":"2026\u002d01-02T03:04:05Z"}`, `{"data":{"a":"\ud83d"} ,"created_time":"2026-01-02T03:04:05Z"}`,
	} {
		checkReadVersion(t, []byte(s))
	}
}

func FuzzUnmarshalMeta(f *testing.F) {
	for _, s := range metaSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkUnmarshalMeta(t, b) })
}

func FuzzReadVersion(f *testing.F) {
	f.Add([]byte(`{"data":{"a":1,"b":[true,null,"x"]},"created_time":"2026-01-02T03:04:05.5+01:00"}`))
	f.Fuzz(func(t *testing.T, b []byte) { checkReadVersion(t, b) })
}
