package abi_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/wardproject/ward/sdk/logical"
	"github.com/wardproject/ward/sdk/plugin"
	pb "github.com/wardproject/ward/sdk/proto/ward/plugin/v1"
	"github.com/wardproject/ward/sdk/wasmguest/abi"
)

// The codec must read and write the same messages as protobuf-go: each
// test goes both ways through the generated types and compares the
// logical values with what the go-plugin transport (sdk/plugin) produces.

func sampleRequest() *logical.Request {
	return &logical.Request{
		ID: "req-1", Operation: logical.UpdateOperation, Path: "data/a<b>&c",
		Data:       map[string]any{"n": json.Number("12345678901234567890"), "s": "<x>", "nested": map[string]any{"k": []any{"v", true, nil}}},
		MountPoint: "secret/", MountType: "kv", MountAccessor: "kv_123",
		Headers:    map[string][]string{"X-A": {"1", "2"}, "X-Empty": nil},
		RemoteAddr: "10.0.0.1", Unauthenticated: true,
		Auth: &logical.Auth{DisplayName: "d", Policies: []string{"a", ""}, Metadata: map[string]string{"m": "v", "": "e"},
			TTL: time.Hour, MaxTTL: 2 * time.Hour, Period: time.Minute, ExplicitMaxTTL: 3 * time.Hour, Renewable: true,
			NumUses: -3, BoundCIDRs: []string{"10.0.0.0/8"}, Alias: &logical.Alias{Name: "al", Metadata: map[string]string{"x": "y"}},
			InternalData: map[string]any{"i": json.Number("1")}, IssueTime: time.Unix(1700000000, 5).UTC(), NoDefaultPolicy: true},
		Secret: &logical.Secret{TTL: time.Second * 30, MaxTTL: -time.Second, Renewable: true, LeaseID: "l",
			InternalData: map[string]any{"user": "u"}, IssueTime: time.Unix(1, 0).UTC()},
	}
}

func viaPlugin(t *testing.T, r *logical.Request) *logical.Request {
	t.Helper()
	p, err := plugin.RequestToProto(r)
	if err != nil {
		t.Fatal(err)
	}
	out, err := plugin.RequestFromProto(p)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRequestArgsMatchProtobuf(t *testing.T) {
	for _, req := range []*logical.Request{sampleRequest(), {Operation: logical.ReadOperation, Path: "x"}, {Data: map[string]any{}}} {
		want := viaPlugin(t, req)

		// abi -> protobuf-go
		b, err := abi.AppendRequestArgs(nil, &abi.RequestArgs{MountID: "m", Request: req, Deadline: 42, ExistenceCheck: true})
		if err != nil {
			t.Fatal(err)
		}
		var args pb.HandleRequestArgs
		if err := proto.Unmarshal(b, &args); err != nil {
			t.Fatal(err)
		}
		if args.MountId != "m" || args.DeadlineUnixNano != 42 || !args.ExistenceCheck {
			t.Fatalf("args: %v", &args)
		}
		got, err := plugin.RequestFromProto(args.Request)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("abi->pb:\n got %#v\nwant %#v", got, want)
		}

		// protobuf-go -> abi
		p, _ := plugin.RequestToProto(req)
		b, err = proto.Marshal(&pb.HandleRequestArgs{MountId: "m", Request: p, DeadlineUnixNano: 7})
		if err != nil {
			t.Fatal(err)
		}
		dec, err := abi.DecodeRequestArgs(b)
		if err != nil {
			t.Fatal(err)
		}
		if dec.MountID != "m" || dec.Deadline != 7 || dec.ExistenceCheck {
			t.Fatalf("decoded args: %+v", dec)
		}
		if !reflect.DeepEqual(dec.Request, want) {
			t.Fatalf("pb->abi:\n got %#v\nwant %#v", dec.Request, want)
		}
	}
}

func TestDecodeRequestArgsErrors(t *testing.T) {
	b, _ := proto.Marshal(&pb.HandleRequestArgs{Request: &pb.Request{DataJson: []byte("[1]")}})
	if _, err := abi.DecodeRequestArgs(b); logical.CodeOf(err) != logical.CodeInvalidRequest {
		t.Fatalf("non-object data: %v", err)
	}
	b, _ = proto.Marshal(&pb.HandleRequestArgs{Request: &pb.Request{Path: "p"}})
	bad := append([]byte(nil), b...)
	bad[len(bad)-1] = 0xff // invalid UTF-8 in the path
	if _, err := abi.DecodeRequestArgs(bad); err == nil {
		t.Fatal("invalid UTF-8 accepted")
	}
	if _, err := abi.DecodeRequestArgs([]byte{0x0a, 0x05, 'a'}); err == nil {
		t.Fatal("truncated message accepted")
	}
}

func TestReplyMatchesProtobuf(t *testing.T) {
	resp := &logical.Response{
		Data:     map[string]any{"a": json.Number("1.5"), "html": "<&>"},
		Warnings: []string{"w1", ""}, StatusCode: 404,
		Secret: &logical.Secret{TTL: time.Minute, InternalData: map[string]any{"x": "y"}},
		Auth:   &logical.Auth{Policies: []string{"p"}, TTL: time.Hour, Alias: &logical.Alias{Name: "n"}},
	}
	pr, err := plugin.ResponseToProto(resp)
	if err != nil {
		t.Fatal(err)
	}
	want, err := plugin.ResponseFromProto(pr)
	if err != nil {
		t.Fatal(err)
	}
	cases := []*abi.Reply{
		{Response: resp},
		{Err: logical.Errorf(logical.CodePermissionDenied, "nope")},
		{Err: errors.New("plain")},
		{NilResponse: true, CheckFound: true, Exists: true},
		{Response: &logical.Response{}},
	}
	for i, c := range cases {
		b, err := abi.AppendReply(nil, c)
		if err != nil {
			t.Fatal(err)
		}
		var p pb.HandleRequestReply
		if err := proto.Unmarshal(b, &p); err != nil {
			t.Fatal(err)
		}
		back, err := proto.Marshal(&p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := abi.DecodeReply(back)
		if err != nil {
			t.Fatal(err)
		}
		if (p.Response != nil) != (c.Response != nil) || p.NilResponse != c.NilResponse || p.CheckFound != c.CheckFound || p.Exists != c.Exists {
			t.Fatalf("case %d: pb %v", i, &p)
		}
		if c.Err != nil {
			if p.Error == nil || p.Error.Code != int32(logical.CodeOf(c.Err)) || p.Error.Message != c.Err.Error() {
				t.Fatalf("case %d: pb error %v", i, p.Error)
			}
			var le *logical.Error
			if !errors.As(got.Err, &le) || le.Code != logical.CodeOf(c.Err) || le.Message != c.Err.Error() {
				t.Fatalf("case %d: decoded error %v", i, got.Err)
			}
		}
		if i == 0 {
			fromPB, err := plugin.ResponseFromProto(p.Response)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(fromPB, want) || !reflect.DeepEqual(got.Response, want) {
				t.Fatalf("response:\n pb %#v\nabi %#v\nwant %#v", fromPB, got.Response, want)
			}
		}
	}
}

func TestSetupInfoMatchProtobuf(t *testing.T) {
	sb := abi.AppendSetupArgs(nil, &abi.SetupArgs{MountID: "id", MountPoint: "kv/", MountType: "kv", Config: map[string]string{"version": "2"}})
	var sr pb.SetupRequest
	if err := proto.Unmarshal(sb, &sr); err != nil || sr.Config["version"] != "2" || sr.MountPoint != "kv/" {
		t.Fatalf("%v %v", &sr, err)
	}
	sa, err := abi.DecodeSetupArgs(sb)
	if err != nil || sa.MountID != "id" || sa.Config["version"] != "2" {
		t.Fatalf("%+v %v", sa, err)
	}

	schema := &logical.Schema{Help: "h", Paths: []logical.PathSchema{{Pattern: "a/(?P<x>.+)", Synopsis: "s",
		Operations: []logical.Operation{"read", "update"},
		Fields:     []logical.FieldInfo{{Name: "x", Type: "string", Required: true, Default: "d", AllowedValues: []any{"d", "e"}}}}}}
	res := &abi.SetupResult{Type: logical.TypeSecret, SpecialPaths: &logical.Paths{Root: []string{"r*"}, Unauthenticated: []string{"login"}}, Schema: schema}
	b := abi.AppendSetupResult(nil, res)
	var rep pb.SetupReply
	if err := proto.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(plugin.SchemaFromProto(rep.Schema), schema) || rep.SpecialPaths.Unauthenticated[0] != "login" || rep.Type != "secret" {
		t.Fatalf("pb: %v", &rep)
	}
	back, _ := proto.Marshal(&rep)
	got, err := abi.DecodeSetupResult(back)
	if err != nil || !reflect.DeepEqual(got.Schema, schema) || !reflect.DeepEqual(got.SpecialPaths, res.SpecialPaths) {
		t.Fatalf("%+v %v", got, err)
	}
	e, _ := abi.DecodeSetupResult(abi.AppendSetupResult(nil, &abi.SetupResult{Err: logical.InvalidRequest("bad")}))
	if logical.CodeOf(e.Err) != logical.CodeInvalidRequest || e.Err.Error() != "bad" {
		t.Fatalf("setup error: %v", e.Err)
	}

	ib := abi.AppendInfo(nil, &abi.Info{Name: "kv", Type: "secret", Version: "1", SDKVersion: "1.0.0", Capabilities: []string{"kv"}, ConcurrentWrites: true})
	var info pb.InfoReply
	if err := proto.Unmarshal(ib, &info); err != nil || info.Name != "kv" || info.Capabilities[0] != "kv" || !info.ConcurrentWrites {
		t.Fatalf("%v %v", &info, err)
	}
	if i, err := abi.DecodeInfo(ib); err != nil || i.SDKVersion != "1.0.0" || !i.ConcurrentWrites {
		t.Fatalf("%+v %v", i, err)
	}
	// A module built before minor 1 sends no concurrent_writes: false.
	old, _ := proto.Marshal(&pb.InfoReply{Name: "old"})
	if i, err := abi.DecodeInfo(old); err != nil || i.ConcurrentWrites {
		t.Fatalf("%+v %v", i, err)
	}
}

func TestStorageHTTPMatchProtobuf(t *testing.T) {
	call := &abi.StorageCall{Op: abi.StorageBatch, Ops: []logical.StorageOp{{Key: "a", Value: []byte("1")}, {Key: "b", Delete: true}}}
	b := abi.AppendStorageCall(nil, call)
	var pc pb.StorageCall
	if err := proto.Unmarshal(b, &pc); err != nil || pc.Op != pb.StorageCall_BATCH || len(pc.Ops) != 2 || !pc.Ops[1].Delete {
		t.Fatalf("%v %v", &pc, err)
	}
	back, _ := proto.Marshal(&pb.StorageCall{Op: pb.StorageCall_PUT, Key: "k", Value: []byte("v")})
	if c, err := abi.DecodeStorageCall(back); err != nil || c.Op != abi.StoragePut || c.Key != "k" || string(c.Value) != "v" {
		t.Fatalf("%+v %v", c, err)
	}
	rb := abi.AppendStorageResult(nil, &abi.StorageResult{Found: true, Value: []byte("x"), Keys: []string{"a", "b/"}, Err: logical.ErrPermissionDenied})
	var pr pb.StorageResult
	if err := proto.Unmarshal(rb, &pr); err != nil || !pr.Found || pr.Keys[1] != "b/" || pr.Error.Code != int32(logical.CodePermissionDenied) {
		t.Fatalf("%v %v", &pr, err)
	}
	if r, err := abi.DecodeStorageResult(rb); err != nil || !errors.Is(r.Err, logical.ErrPermissionDenied) || string(r.Value) != "x" {
		t.Fatalf("%+v %v", r, err)
	}

	hb := abi.AppendHTTPRequest(nil, &abi.HTTPRequest{Method: "POST", URL: "https://x", Header: map[string][]string{"A": {"b"}}, Body: []byte("z")})
	var ph pb.HTTPRequest
	if err := proto.Unmarshal(hb, &ph); err != nil || ph.Headers["A"].Values[0] != "b" || string(ph.Body) != "z" {
		t.Fatalf("%v %v", &ph, err)
	}
	if h, err := abi.DecodeHTTPRequest(hb); err != nil || h.URL != "https://x" || h.Header["A"][0] != "b" {
		t.Fatalf("%+v %v", h, err)
	}
	hr := abi.AppendHTTPResponse(nil, &abi.HTTPResponse{StatusCode: 201, Body: []byte(strings.Repeat("x", 300)), Header: map[string][]string{"C": {"d"}}})
	var phr pb.HTTPResponse
	if err := proto.Unmarshal(hr, &phr); err != nil || phr.StatusCode != 201 || len(phr.Body) != 300 {
		t.Fatalf("%v %v", &phr, err)
	}
	if h, err := abi.DecodeHTTPResponse(hr); err != nil || h.StatusCode != 201 || len(h.Body) != 300 {
		t.Fatalf("%+v %v", h, err)
	}

	ik := abi.AppendInvalidateKeys(nil, "m", []string{"a", ""})
	var pk pb.InvalidateKeysArgs
	if err := proto.Unmarshal(ik, &pk); err != nil || len(pk.Keys) != 2 {
		t.Fatalf("%v %v", &pk, err)
	}
	if id, keys, err := abi.DecodeInvalidateKeys(ik); err != nil || id != "m" || len(keys) != 2 {
		t.Fatal(id, keys, err)
	}
}

// TestLongSubmessage covers submessages whose length needs a multi-byte varint.
func TestLongSubmessage(t *testing.T) {
	big := strings.Repeat("y", 70000)
	req := &logical.Request{Path: big, Data: map[string]any{"v": big}}
	b, err := abi.AppendRequestArgs(nil, &abi.RequestArgs{Request: req})
	if err != nil {
		t.Fatal(err)
	}
	var args pb.HandleRequestArgs
	if err := proto.Unmarshal(b, &args); err != nil || args.Request.Path != big {
		t.Fatal(err)
	}
	dec, err := abi.DecodeRequestArgs(b)
	if err != nil || dec.Request.Path != big || dec.Request.Data["v"] != big {
		t.Fatal(err)
	}
}

// FuzzDecode feeds arbitrary bytes to every decoder: none may panic, and
// whatever DecodeRequestArgs accepts protobuf-go must accept too.
func FuzzDecode(f *testing.F) {
	b, _ := abi.AppendRequestArgs(nil, &abi.RequestArgs{Request: sampleRequest()})
	f.Add(b)
	r, _ := abi.AppendReply(nil, &abi.Reply{Response: &logical.Response{Data: map[string]any{"a": "b"}}, Err: errors.New("x")})
	f.Add(r)
	f.Add(abi.AppendStorageCall(nil, &abi.StorageCall{Op: 5, Ops: []logical.StorageOp{{Key: "k"}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := abi.DecodeRequestArgs(b); err == nil {
			if err := proto.Unmarshal(b, &pb.HandleRequestArgs{}); err != nil {
				t.Fatalf("abi accepted what protobuf-go refuses: %v", err)
			}
		}
		_, _ = abi.DecodeReply(b)
		_, _ = abi.DecodeSetupArgs(b)
		_, _ = abi.DecodeSetupResult(b)
		_, _ = abi.DecodeInfo(b)
		_, _, _ = abi.DecodeInvalidateKeys(b)
		_, _ = abi.DecodeMountRef(b)
		_, _ = abi.DecodeStorageCall(b)
		_, _ = abi.DecodeStorageResult(b)
		_, _ = abi.DecodeHTTPRequest(b)
		_, _ = abi.DecodeHTTPResponse(b)
	})
}

// Invalidated keys (minor 1) ride at the end of an encoded request.
func TestInvalidatedKeysMatchProtobuf(t *testing.T) {
	b, err := abi.AppendRequestArgs(nil, &abi.RequestArgs{MountID: "m", Request: &logical.Request{Path: "x"}, Deadline: 9})
	if err != nil {
		t.Fatal(err)
	}
	b = abi.AppendInvalidatedKeys(b, []string{"meta/a", "", "ver/a/1"})
	var args pb.HandleRequestArgs
	if err := proto.Unmarshal(b, &args); err != nil || !reflect.DeepEqual(args.InvalidatedKeys, []string{"meta/a", "", "ver/a/1"}) || args.DeadlineUnixNano != 9 {
		t.Fatalf("%v %v", &args, err)
	}
	back, _ := proto.Marshal(&pb.HandleRequestArgs{MountId: "m", InvalidatedKeys: []string{"k"}})
	got, err := abi.DecodeRequestArgs(back)
	if err != nil || !reflect.DeepEqual(got.InvalidatedKeys, []string{"k"}) {
		t.Fatalf("%+v %v", got, err)
	}
}

// InvalidateKeysArgs.all (minor 1) reads back identically both ways.
func TestInvalidateAllMatchesProtobuf(t *testing.T) {
	b := abi.AppendInvalidateAll(nil, "m")
	var pk pb.InvalidateKeysArgs
	if err := proto.Unmarshal(b, &pk); err != nil || !pk.All || pk.MountId != "m" || len(pk.Keys) != 0 {
		t.Fatalf("%v %v", &pk, err)
	}
	back, _ := proto.Marshal(&pb.InvalidateKeysArgs{MountId: "m", Keys: []string{"k"}, All: true})
	inv, err := abi.DecodeInvalidation(back)
	if err != nil || !inv.All || inv.MountID != "m" || !reflect.DeepEqual(inv.Keys, []string{"k"}) {
		t.Fatalf("%+v %v", inv, err)
	}
	if inv, err := abi.DecodeInvalidation(abi.AppendInvalidateKeys(nil, "m", []string{"a"})); err != nil || inv.All {
		t.Fatalf("%+v %v", inv, err)
	}
}

// The invalidated keys of a request can be read when the rest of it
// cannot (a module must apply them regardless).
func TestDecodeInvalidatedKeysOfBadRequest(t *testing.T) {
	b, _ := proto.Marshal(&pb.HandleRequestArgs{Request: &pb.Request{Path: "p"}})
	b[len(b)-1] = 0xff // invalid UTF-8 in the path
	b = abi.AppendInvalidatedKeys(b, []string{"meta/a", ""})
	if _, err := abi.DecodeRequestArgs(b); err == nil {
		t.Fatal("invalid UTF-8 accepted")
	}
	keys, err := abi.DecodeInvalidatedKeys(b)
	if err != nil || !reflect.DeepEqual(keys, []string{"meta/a", ""}) {
		t.Fatalf("%q %v", keys, err)
	}
	if _, err := abi.DecodeInvalidatedKeys(append(b, 0x2a, 0x01, 0xff)); err == nil {
		t.Fatal("an invalidated key that is not UTF-8 accepted")
	}
}

// A request with a string protobuf cannot carry is refused before
// encoding, as protobuf-go refuses to marshal it; its data (JSON) is not.
func TestAppendRequestArgsRefusesInvalidUTF8(t *testing.T) {
	for _, r := range []*logical.Request{
		{Path: "data/\xff"},
		{Path: "p", Headers: map[string][]string{"X": {"\xff"}}},
		{Path: "p", Auth: &logical.Auth{Policies: []string{"a\xffb"}}},
		{Path: "p", Auth: &logical.Auth{Alias: &logical.Alias{Metadata: map[string]string{"\xff": ""}}}},
		{Path: "p", Secret: &logical.Secret{LeaseID: "\xff"}},
	} {
		if _, err := abi.AppendRequestArgs(nil, &abi.RequestArgs{Request: r}); !errors.Is(err, abi.ErrInvalidUTF8) {
			t.Errorf("%+v: %v, want ErrInvalidUTF8", r, err)
		}
		if _, err := proto.Marshal(mustProto(t, r)); err == nil {
			t.Errorf("%+v: protobuf-go encodes it", r)
		}
	}
	if _, err := abi.AppendRequestArgs(nil, &abi.RequestArgs{InvalidatedKeys: []string{"\xff"}}); !errors.Is(err, abi.ErrInvalidUTF8) {
		t.Errorf("invalidated key: %v", err)
	}
	if _, err := abi.AppendRequestArgs(nil, &abi.RequestArgs{Request: &logical.Request{Path: "p", Data: map[string]any{"s": "\xff"}}}); err != nil {
		t.Errorf("data: %v", err)
	}
}

func mustProto(t *testing.T, r *logical.Request) *pb.Request {
	t.Helper()
	p, err := plugin.RequestToProto(r)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
