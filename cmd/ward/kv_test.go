package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const kvWriteReply = `{"request_id":"r","lease_id":"","renewable":false,"lease_duration":0,
 "data":{"created_time":"2026-11-24T04:38:52Z","custom_metadata":null,"deletion_time":"","destroyed":false,"version":3},
 "wrap_info":null,"warnings":null,"auth":null}`

const kvReadReply = `{"request_id":"r","lease_id":"","renewable":false,"lease_duration":0,
 "data":{"data":{"password":"s3cr3t","user":"app"},
  "metadata":{"created_time":"2026-11-24T04:38:52Z","custom_metadata":null,"deletion_time":"","destroyed":false,"version":2}},
 "wrap_info":null,"warnings":null,"auth":null}`

func TestKVPutV2RewritesPath(t *testing.T) {
	f := setup(t)
	f.kvMount("secret", "2")
	f.on("POST", "/v1/secret/data/foo", 200, kvWriteReply)

	r := ward(t, "", "kv", "put", "secret/foo", "a=1").wantCode(t, 0)

	req := f.only("POST", "/v1/secret/data/foo")
	jsonEqual(t, req.JSON(t), `{"data":{"a":"1"}}`)
	if req.Token != "test-token" {
		t.Errorf("token header = %q", req.Token)
	}
	if probes := f.allRequests(); probes[0].Path != "/v1/sys/internal/ui/mounts/secret/foo" {
		t.Errorf("first request = %s, want the ui/mounts probe", probes[0].Path)
	}
	if !strings.HasPrefix(r.stdout, "= Secret Path =\nsecret/data/foo\n\n") {
		t.Errorf("output does not start with the secret path:\n%s", r.stdout)
	}
	if got := parseKeyValueTable(t, r.stdout)["version"]; got != "3" {
		t.Errorf("version = %q, want 3\n%s", got, r.stdout)
	}
}

func TestKVPutCAS(t *testing.T) {
	f := setup(t)
	f.kvMount("secret", "2")
	f.on("POST", "/v1/secret/data/foo", 200, kvWriteReply)

	ward(t, "", "kv", "put", "-cas=0", "secret/foo", "a=1").wantCode(t, 0)
	jsonEqual(t, f.only("POST", "/v1/secret/data/foo").JSON(t), `{"data":{"a":"1"},"options":{"cas":0}}`)
}

func TestKVPutCASMismatchIsServerError(t *testing.T) {
	f := setup(t)
	f.kvMount("secret", "2")
	f.on("POST", "/v1/secret/data/foo", 400,
		`{"errors":["check-and-set parameter did not match the current version"]}`)

	r := ward(t, "", "kv", "put", "-cas=1", "secret/foo", "a=1").wantCode(t, exitRemote)
	want := "Error writing data to secret/data/foo: check-and-set parameter did not match the current version\n"
	if r.stderr != want {
		t.Errorf("stderr = %q, want %q", r.stderr, want)
	}
	if r.stdout != "" {
		t.Errorf("stdout = %q, want nothing", r.stdout)
	}
}

func TestKVMountFlag(t *testing.T) {
	f := setup(t)
	f.kvMount("secret", "2")
	f.on("POST", "/v1/secret/data/app/db", 200, kvWriteReply)

	ward(t, "", "kv", "put", "-mount=secret", "app/db", "a=1").wantCode(t, 0)
	f.only("POST", "/v1/secret/data/app/db")
	if p := f.allRequests()[0].Path; p != "/v1/sys/internal/ui/mounts/secret" {
		t.Errorf("probe path = %s, want the mount itself", p)
	}
}

func TestKVv1Detection(t *testing.T) {
	tests := []struct {
		name  string
		probe func(f *fakeServer)
	}{
		{"options without version", func(f *fakeServer) { f.kvMount("kv1", "") }},
		{"version 1", func(f *fakeServer) { f.kvMount("kv1", "1") }},
		{"no ui/mounts endpoint", func(f *fakeServer) {}}, // 404: older server, v1
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := setup(t)
			tt.probe(f)
			f.on("POST", "/v1/kv1/app/db", 204, "")
			f.on("GET", "/v1/kv1/app/db", 200, `{"data":{"password":"pw"}}`)

			r := ward(t, "", "kv", "put", "kv1/app/db", "password=pw").wantCode(t, 0)
			jsonEqual(t, f.only("POST", "/v1/kv1/app/db").JSON(t), `{"password":"pw"}`)
			if r.stdout != "Success! Data written to: kv1/app/db\n" {
				t.Errorf("stdout = %q", r.stdout)
			}

			r = ward(t, "", "kv", "get", "kv1/app/db").wantCode(t, 0)
			if strings.Contains(r.stdout, "Secret Path") {
				t.Errorf("v1 output has a v2 path header:\n%s", r.stdout)
			}
			if got := parseKeyValueTable(t, r.stdout)["password"]; got != "pw" {
				t.Errorf("password = %q\n%s", got, r.stdout)
			}
		})
	}
}

func TestKVGet(t *testing.T) {
	f := setup(t)
	f.kvMount("secret", "2")
	f.on("GET", "/v1/secret/data/app/db", 200, kvReadReply)

	t.Run("table", func(t *testing.T) {
		r := ward(t, "", "kv", "get", "secret/app/db").wantCode(t, 0)
		for _, section := range []string{"= Secret Path =", "= Metadata =", "= Data ="} {
			if !strings.Contains(r.stdout, section) {
				t.Errorf("missing %q in:\n%s", section, r.stdout)
			}
		}
		dataPart := r.stdout[strings.Index(r.stdout, "= Data ="):]
		data := parseKeyValueTable(t, dataPart)
		if data["password"] != "s3cr3t" || data["user"] != "app" {
			t.Errorf("data table = %v", data)
		}
		if meta := parseKeyValueTable(t, r.stdout); meta["version"] != "2" || meta["custom_metadata"] != "<nil>" {
			t.Errorf("metadata table = %v", meta)
		}
	})
	t.Run("json", func(t *testing.T) {
		r := ward(t, "", "kv", "get", "-format=json", "secret/app/db").wantCode(t, 0)
		out := mustJSON(t, r.stdout)
		data := out["data"].(map[string]any)["data"].(map[string]any)
		if data["password"] != "s3cr3t" {
			t.Errorf("json data = %v", data)
		}
		if out["request_id"] != "r" {
			t.Errorf("json is not the raw secret: %v", out)
		}
	})
	t.Run("field is raw", func(t *testing.T) {
		r := ward(t, "", "kv", "get", "-field=password", "secret/app/db").wantCode(t, 0)
		if r.stdout != "s3cr3t" {
			t.Errorf("stdout = %q, want exactly the value", r.stdout)
		}
	})
	t.Run("field as json", func(t *testing.T) {
		r := ward(t, "", "kv", "get", "-field=password", "-format=json", "secret/app/db").wantCode(t, 0)
		if r.stdout != "\"s3cr3t\"\n" {
			t.Errorf("stdout = %q", r.stdout)
		}
	})
	t.Run("missing field", func(t *testing.T) {
		r := ward(t, "", "kv", "get", "-field=nope", "secret/app/db").wantCode(t, exitLocal)
		if !strings.Contains(r.stderr, `Field "nope" not present`) {
			t.Errorf("stderr = %q", r.stderr)
		}
	})
}

func TestKVGetVersion(t *testing.T) {
	f := setup(t)
	f.kvMount("secret", "2")
	f.on("GET", "/v1/secret/data/app/db", 200, kvReadReply)

	ward(t, "", "kv", "get", "-version=1", "-field=user", "secret/app/db").wantCode(t, 0)
	req := f.only("GET", "/v1/secret/data/app/db")
	if got := req.Query["version"]; len(got) != 1 || got[0] != "1" {
		t.Errorf("version query = %v", got)
	}
}

func TestKVGetMissing(t *testing.T) {
	f := setup(t)
	f.kvMount("secret", "2")
	f.on("GET", "/v1/secret/data/none", 404, `{"errors":[]}`)

	r := ward(t, "", "kv", "get", "secret/none").wantCode(t, exitRemote)
	if r.stderr != "No value found at secret/data/none\n" {
		t.Errorf("stderr = %q", r.stderr)
	}
}

func TestKVGetDeletedShowsMetadataOnly(t *testing.T) {
	f := setup(t)
	f.kvMount("secret", "2")
	f.on("GET", "/v1/secret/data/app/db", 404, `{"request_id":"r","data":{"data":null,
	  "metadata":{"created_time":"t","custom_metadata":null,"deletion_time":"t2","destroyed":false,"version":1}}}`)

	r := ward(t, "", "kv", "get", "secret/app/db").wantCode(t, 0)
	if strings.Contains(r.stdout, "= Data =") {
		t.Errorf("deleted secret shows a data section:\n%s", r.stdout)
	}
	if parseKeyValueTable(t, r.stdout)["deletion_time"] != "t2" {
		t.Errorf("metadata missing:\n%s", r.stdout)
	}
	ward(t, "", "kv", "get", "-field=password", "secret/app/db").wantCode(t, exitRemote)
}

func TestKVValueSources(t *testing.T) {
	f := setup(t)
	f.kvMount("secret", "2")
	f.on("POST", "/v1/secret/data/foo", 200, kvWriteReply)

	dir := t.TempDir()
	file := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(file, []byte("-----BEGIN X-----\nabc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ward(t, "from-stdin\n", "kv", "put", "secret/foo",
		"cert=@"+file, "pw=-", `lit=\@not-a-file`, "tag=a", "tag=b", "empty=").wantCode(t, 0)

	jsonEqual(t, f.only("POST", "/v1/secret/data/foo").JSON(t), `{"data":{
		"cert":"-----BEGIN X-----\nabc\n",
		"pw":"from-stdin\n",
		"lit":"@not-a-file",
		"tag":["a","b"],
		"empty":""}}`)
}

func TestKVJSONFromStdin(t *testing.T) {
	f := setup(t)
	f.kvMount("secret", "2")
	f.on("POST", "/v1/secret/data/foo", 200, kvWriteReply)

	ward(t, `{"n":12345678901234567890,"nested":{"x":true}}`, "kv", "put", "secret/foo", "-").wantCode(t, 0)
	body := f.only("POST", "/v1/secret/data/foo").Body
	if !strings.Contains(body, `"n":12345678901234567890`) {
		t.Errorf("large number not preserved exactly: %s", body)
	}
}

func TestKVPutArgumentErrors(t *testing.T) {
	f := setup(t)
	f.kvMount("secret", "2")
	tests := []struct {
		name  string
		args  []string
		input string
		want  string
	}{
		{"no data", []string{"secret/foo"}, "", "Must supply data"},
		{"no path", nil, "", "Not enough arguments"},
		{"not key=value", []string{"secret/foo", "hunter2-secret"}, "", "argument 1: expected key=value"},
		{"missing file", []string{"secret/foo", "k=@/nonexistent/file"}, "", "no such file"},
		{"stdin twice", []string{"secret/foo", "a=-", "b=-"}, "x", "stdin can only be read once"},
		{"bad flag", []string{"-nope", "secret/foo", "a=1"}, "", "flag provided but not defined: -nope"},
		{"flag after arguments", []string{"secret/foo", "a=1", "-cas=0"}, "", "Flag -cas must come before the positional arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ward(t, tt.input, append([]string{"kv", "put"}, tt.args...)...).wantCode(t, exitLocal)
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr = %q, want it to contain %q", r.stderr, tt.want)
			}
			if strings.Contains(r.stderr, "hunter2") {
				t.Errorf("error echoes the secret argument: %q", r.stderr)
			}
		})
	}
	if reqs := f.allRequests(); len(reqs) != 0 {
		t.Errorf("usage errors reached the server: %+v", reqs)
	}
}

func TestKVDeleteUndeleteDestroy(t *testing.T) {
	tests := []struct {
		args         []string
		method, path string
		body         string
		stdout       string
	}{
		{[]string{"delete", "secret/foo"}, "DELETE", "/v1/secret/data/foo", "",
			"Success! Data deleted (if it existed) at: secret/data/foo\n"},
		{[]string{"delete", "-versions=1,2", "secret/foo"}, "POST", "/v1/secret/delete/foo", `{"versions":[1,2]}`,
			"Success! Data deleted (if it existed) at: secret/delete/foo\n"},
		{[]string{"undelete", "-versions=3", "-versions=4", "secret/foo"}, "POST", "/v1/secret/undelete/foo", `{"versions":[3,4]}`,
			"Success! Data written to: secret/undelete/foo\n"},
		{[]string{"destroy", "-versions=1", "secret/foo"}, "PUT", "/v1/secret/destroy/foo", `{"versions":[1]}`,
			"Success! Data written to: secret/destroy/foo\n"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			f := setup(t)
			f.kvMount("secret", "2")
			f.on(tt.method, tt.path, 204, "")
			r := ward(t, "", append([]string{"kv"}, tt.args...)...).wantCode(t, 0)
			req := f.only(tt.method, tt.path)
			if tt.body != "" {
				jsonEqual(t, req.JSON(t), tt.body)
			}
			if r.stdout != tt.stdout {
				t.Errorf("stdout = %q, want %q", r.stdout, tt.stdout)
			}
		})
	}
}

func TestKVVersionsValidation(t *testing.T) {
	f := setup(t)
	f.kvMount("kv1", "1")
	for _, args := range [][]string{
		{"undelete", "secret/foo"},               // -versions required
		{"destroy", "-versions=x", "secret/foo"}, // not a number
		{"delete", "-versions=0", "secret/foo"},  // not positive
		{"delete", "-versions=1", "kv1/foo"},     // v1 has no versions: must not delete it all
		{"destroy", "-versions=1", "kv1/foo"},
		{"metadata", "get", "kv1/foo"},
		{"patch", "kv1/foo", "a=1"},
	} {
		ward(t, "", append([]string{"kv"}, args...)...).wantCode(t, exitLocal)
	}
	if reqs := f.requests(); len(reqs) != 0 {
		t.Errorf("requests reached the server: %+v", reqs)
	}
}

func TestKVList(t *testing.T) {
	f := setup(t)
	f.kvMount("secret", "2")
	f.on("LIST", "/v1/secret/metadata/app", 200, `{"data":{"keys":["db","api/","cache"]}}`)

	r := ward(t, "", "kv", "list", "secret/app").wantCode(t, 0)
	f.only("LIST", "/v1/secret/metadata/app")
	if r.stdout != "Keys\n----\napi/\ncache\ndb\n" {
		t.Errorf("stdout = %q", r.stdout)
	}

	r = ward(t, "", "kv", "list", "-format=json", "secret/app").wantCode(t, 0)
	if r.stdout != "[\n  \"db\",\n  \"api/\",\n  \"cache\"\n]\n" {
		t.Errorf("json stdout = %q", r.stdout)
	}

	ward(t, "", "kv", "list", "secret/none").wantCode(t, exitRemote)
}

func TestKVPatch(t *testing.T) {
	t.Run("merge patch", func(t *testing.T) {
		f := setup(t)
		f.kvMount("secret", "2")
		f.on("PATCH", "/v1/secret/data/foo", 200, kvWriteReply)
		ward(t, "", "kv", "patch", "-remove-data=old", "secret/foo", "a=2").wantCode(t, 0)
		req := f.only("PATCH", "/v1/secret/data/foo")
		if req.ContentType != "application/merge-patch+json" {
			t.Errorf("content type = %q", req.ContentType)
		}
		jsonEqual(t, req.JSON(t), `{"data":{"a":"2","old":null}}`)
	})
	t.Run("405 falls back to read then write with cas", func(t *testing.T) {
		f := setup(t)
		f.kvMount("secret", "2")
		f.on("PATCH", "/v1/secret/data/app/db", 405, `{"errors":["unsupported operation"]}`)
		f.on("GET", "/v1/secret/data/app/db", 200, kvReadReply)
		f.on("POST", "/v1/secret/data/app/db", 200, kvWriteReply)
		ward(t, "", "kv", "patch", "secret/app/db", "password=new").wantCode(t, 0)
		reqs := f.requests()
		if len(reqs) != 3 || reqs[2].Method != "POST" {
			t.Fatalf("requests = %+v", reqs)
		}
		jsonEqual(t, reqs[2].JSON(t), `{"data":{"password":"new","user":"app"},"options":{"cas":2}}`)
	})
	t.Run("method patch does not fall back", func(t *testing.T) {
		f := setup(t)
		f.kvMount("secret", "2")
		f.on("PATCH", "/v1/secret/data/foo", 403, `{"errors":["permission denied"]}`)
		r := ward(t, "", "kv", "patch", "-method=patch", "secret/foo", "a=1").wantCode(t, exitRemote)
		if r.stderr != "Error writing data to secret/data/foo: permission denied\n" {
			t.Errorf("stderr = %q", r.stderr)
		}
		f.only("PATCH", "/v1/secret/data/foo")
	})
}

func TestKVMetadata(t *testing.T) {
	t.Run("get", func(t *testing.T) {
		f := setup(t)
		f.kvMount("secret", "2")
		f.on("GET", "/v1/secret/metadata/app/db", 200, `{"data":{"cas_required":false,"current_version":2,
		  "max_versions":0,"delete_version_after":"0s","custom_metadata":null,
		  "versions":{"1":{"created_time":"t1","deletion_time":"","destroyed":true},
		              "2":{"created_time":"t2","deletion_time":"","destroyed":false}}}}`)
		r := ward(t, "", "kv", "metadata", "get", "secret/app/db").wantCode(t, 0)
		f.only("GET", "/v1/secret/metadata/app/db")
		if parseKeyValueTable(t, r.stdout)["current_version"] != "2" {
			t.Errorf("metadata table wrong:\n%s", r.stdout)
		}
		v1, v2 := strings.Index(r.stdout, "= Version 1 ="), strings.Index(r.stdout, "= Version 2 =")
		if v1 < 0 || v2 < v1 {
			t.Fatalf("versions missing or out of order:\n%s", r.stdout)
		}
		if parseKeyValueTable(t, r.stdout[v1:])["destroyed"] != "true" {
			t.Errorf("version 1 table wrong:\n%s", r.stdout[v1:])
		}
	})
	t.Run("put sends only the given fields", func(t *testing.T) {
		f := setup(t)
		f.kvMount("secret", "2")
		f.on("POST", "/v1/secret/metadata/app/db", 204, "")
		ward(t, "", "kv", "metadata", "put", "-max-versions=5", "-delete-version-after=1h",
			"-custom-metadata=owner=ops", "-custom-metadata=tier=1", "secret/app/db").wantCode(t, 0)
		jsonEqual(t, f.only("POST", "/v1/secret/metadata/app/db").JSON(t),
			`{"max_versions":5,"delete_version_after":"1h","custom_metadata":{"owner":"ops","tier":"1"}}`)
	})
	t.Run("delete", func(t *testing.T) {
		f := setup(t)
		f.kvMount("secret", "2")
		f.on("DELETE", "/v1/secret/metadata/app/db", 204, "")
		r := ward(t, "", "kv", "metadata", "delete", "-mount=secret", "app/db").wantCode(t, 0)
		f.only("DELETE", "/v1/secret/metadata/app/db")
		if r.stdout != "Success! Data deleted (if it existed) at: secret/metadata/app/db\n" {
			t.Errorf("stdout = %q", r.stdout)
		}
	})
}

func TestKVProbeDenied(t *testing.T) {
	f := setup(t)
	f.on("GET", "/v1/sys/internal/ui/mounts/*", 403, `{"errors":["permission denied"]}`)
	r := ward(t, "", "kv", "get", "secret/foo").wantCode(t, exitRemote)
	if r.stderr != "Error finding the KV engine for secret/foo: permission denied\n" {
		t.Errorf("stderr = %q", r.stderr)
	}
}

func TestKVPathAt(t *testing.T) {
	tests := []struct {
		p    kvPath
		op   string
		want string
	}{
		{kvPath{"secret/", true, "secret/foo"}, "data", "secret/data/foo"},
		{kvPath{"secret/", true, "secret/a/b/c"}, "metadata", "secret/metadata/a/b/c"},
		{kvPath{"secret/", true, "secret"}, "metadata", "secret/metadata"},
		{kvPath{"team/kv/", true, "team/kv/x"}, "data", "team/kv/data/x"},
		{kvPath{"kv1/", false, "kv1/x"}, "data", "kv1/x"},
	}
	for _, tt := range tests {
		if got := tt.p.at(tt.op); got != tt.want {
			t.Errorf("%+v.at(%q) = %q, want %q", tt.p, tt.op, got, tt.want)
		}
	}
}

func TestKVDoubleDashEndsFlags(t *testing.T) {
	f := setup(t)
	f.kvMount("secret", "2")
	f.on("POST", "/v1/secret/data/foo", 200, kvWriteReply)
	ward(t, "", "kv", "put", "-cas=1", "--", "secret/foo", "-cas=literal").wantCode(t, 0)
	jsonEqual(t, f.only("POST", "/v1/secret/data/foo").JSON(t), `{"data":{"-cas":"literal"},"options":{"cas":1}}`)
}
