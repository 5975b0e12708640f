package plugin

import (
	"bytes"
	"encoding/json"
	"math"
	"time"

	"github.com/wardproject/ward/sdk/logical"
	pb "github.com/wardproject/ward/sdk/proto/ward/plugin/v1"
)

// decodeJSONMap decodes a JSON object keeping numbers exact (json.Number).
func decodeJSONMap(b []byte) (map[string]any, error) {
	if len(b) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// encodeJSON encodes without HTML escaping: escaping turns each of <, >
// and & into six bytes, which would let a request near the size limit
// become a frame six times larger.
func encodeJSON(v any) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func errorToProto(err error) *pb.Error {
	if err == nil {
		return nil
	}
	return &pb.Error{Code: int32(logical.CodeOf(err)), Message: err.Error()}
}

func errorFromProto(e *pb.Error) error {
	if e == nil {
		return nil
	}
	return &logical.Error{Code: logical.Code(e.Code), Message: e.Message}
}

// RequestToProto converts a request for the wire. Storage is not sent.
func RequestToProto(r *logical.Request) (*pb.Request, error) {
	data, err := encodeJSON(r.Data)
	if err != nil {
		return nil, err
	}
	out := &pb.Request{
		Id: r.ID, Operation: string(r.Operation), Path: r.Path, DataJson: data,
		MountPoint: r.MountPoint, MountType: r.MountType, MountAccessor: r.MountAccessor,
		RemoteAddr: r.RemoteAddr, Unauthenticated: r.Unauthenticated,
	}
	if out.Auth, err = authToProto(r.Auth); err != nil {
		return nil, err
	}
	if out.Secret, err = secretToProto(r.Secret); err != nil {
		return nil, err
	}
	if len(r.Headers) > 0 {
		out.Headers = make(map[string]*pb.Header, len(r.Headers))
		for k, v := range r.Headers {
			out.Headers[k] = &pb.Header{Values: v}
		}
	}
	return out, nil
}

// RequestFromProto converts a wire request back.
func RequestFromProto(r *pb.Request) (*logical.Request, error) {
	data, err := decodeJSONMap(r.DataJson)
	if err != nil {
		return nil, logical.InvalidRequest("request data is not a JSON object")
	}
	out := &logical.Request{
		ID: r.Id, Operation: logical.Operation(r.Operation), Path: r.Path, Data: data,
		MountPoint: r.MountPoint, MountType: r.MountType, MountAccessor: r.MountAccessor,
		RemoteAddr: r.RemoteAddr, Unauthenticated: r.Unauthenticated,
	}
	if out.Auth, err = authFromProto(r.Auth); err != nil {
		return nil, logical.InvalidRequest("request auth data is not valid")
	}
	if out.Secret, err = secretFromProto(r.Secret); err != nil {
		return nil, logical.InvalidRequest("request secret data is not valid")
	}
	if len(r.Headers) > 0 {
		out.Headers = make(map[string][]string, len(r.Headers))
		for k, v := range r.Headers {
			out.Headers[k] = v.GetValues()
		}
	}
	return out, nil
}

// ResponseToProto converts a response for the wire.
func ResponseToProto(r *logical.Response) (*pb.Response, error) {
	data, err := encodeJSON(r.Data)
	if err != nil {
		return nil, err
	}
	out := &pb.Response{DataJson: data, Warnings: r.Warnings, StatusCode: int32(r.StatusCode)}
	if out.Secret, err = secretToProto(r.Secret); err != nil {
		return nil, err
	}
	if out.Auth, err = authToProto(r.Auth); err != nil {
		return nil, err
	}
	return out, nil
}

// ResponseFromProto converts a wire response back.
func ResponseFromProto(r *pb.Response) (*logical.Response, error) {
	data, err := decodeJSONMap(r.DataJson)
	if err != nil {
		return nil, err
	}
	out := &logical.Response{Data: data, Warnings: r.Warnings, StatusCode: int(r.StatusCode)}
	if out.Secret, err = secretFromProto(r.Secret); err != nil {
		return nil, err
	}
	if out.Auth, err = authFromProto(r.Auth); err != nil {
		return nil, err
	}
	return out, nil
}

func seconds(d time.Duration) int64 { return int64(d / time.Second) }

// fromSeconds converts a wire duration without overflowing: values past
// what time.Duration holds saturate (negative ones stay negative, which the
// kernel refuses).
func fromSeconds(s int64) time.Duration {
	const maxSec = int64(math.MaxInt64 / int64(time.Second))
	switch {
	case s > maxSec:
		return math.MaxInt64
	case s < -maxSec:
		return math.MinInt64
	}
	return time.Duration(s) * time.Second
}

func secretToProto(s *logical.Secret) (*pb.Secret, error) {
	if s == nil {
		return nil, nil
	}
	internal, err := encodeJSON(s.InternalData)
	if err != nil {
		return nil, err
	}
	out := &pb.Secret{TtlSeconds: seconds(s.TTL), MaxTtlSeconds: seconds(s.MaxTTL),
		Renewable: s.Renewable, InternalDataJson: internal, LeaseId: s.LeaseID}
	if !s.IssueTime.IsZero() {
		out.IssueTimeUnixNano = s.IssueTime.UnixNano()
	}
	return out, nil
}

func secretFromProto(s *pb.Secret) (*logical.Secret, error) {
	if s == nil {
		return nil, nil
	}
	internal, err := decodeJSONMap(s.InternalDataJson)
	if err != nil {
		return nil, err
	}
	out := &logical.Secret{TTL: fromSeconds(s.TtlSeconds), MaxTTL: fromSeconds(s.MaxTtlSeconds),
		Renewable: s.Renewable, InternalData: internal, LeaseID: s.LeaseId}
	if s.IssueTimeUnixNano != 0 {
		out.IssueTime = time.Unix(0, s.IssueTimeUnixNano).UTC()
	}
	return out, nil
}

func authToProto(a *logical.Auth) (*pb.Auth, error) {
	if a == nil {
		return nil, nil
	}
	internal, err := encodeJSON(a.InternalData)
	if err != nil {
		return nil, err
	}
	out := &pb.Auth{DisplayName: a.DisplayName, Policies: a.Policies, Metadata: a.Metadata,
		TtlSeconds: seconds(a.TTL), MaxTtlSeconds: seconds(a.MaxTTL), PeriodSeconds: seconds(a.Period),
		ExplicitMaxTtlSeconds: seconds(a.ExplicitMaxTTL), NoDefaultPolicy: a.NoDefaultPolicy,
		Renewable: a.Renewable, NumUses: int64(a.NumUses), BoundCidrs: a.BoundCIDRs, InternalDataJson: internal}
	if !a.IssueTime.IsZero() {
		out.IssueTimeUnixNano = a.IssueTime.UnixNano()
	}
	if a.Alias != nil {
		out.Alias = &pb.Alias{Name: a.Alias.Name, Metadata: a.Alias.Metadata}
	}
	return out, nil
}

func authFromProto(a *pb.Auth) (*logical.Auth, error) {
	if a == nil {
		return nil, nil
	}
	internal, err := decodeJSONMap(a.InternalDataJson)
	if err != nil {
		return nil, err
	}
	out := &logical.Auth{DisplayName: a.DisplayName, Policies: a.Policies, Metadata: a.Metadata,
		TTL: fromSeconds(a.TtlSeconds), MaxTTL: fromSeconds(a.MaxTtlSeconds), Period: fromSeconds(a.PeriodSeconds),
		ExplicitMaxTTL: fromSeconds(a.ExplicitMaxTtlSeconds), NoDefaultPolicy: a.NoDefaultPolicy,
		Renewable: a.Renewable, NumUses: int(a.NumUses), BoundCIDRs: a.BoundCidrs, InternalData: internal}
	if a.IssueTimeUnixNano != 0 {
		out.IssueTime = time.Unix(0, a.IssueTimeUnixNano).UTC()
	}
	if a.Alias != nil {
		out.Alias = &logical.Alias{Name: a.Alias.Name, Metadata: a.Alias.Metadata}
	}
	return out, nil
}

// SchemaToProto converts a backend schema for the wire.
func SchemaToProto(s *logical.Schema) *pb.Schema {
	if s == nil {
		return nil
	}
	out := &pb.Schema{Help: s.Help}
	for _, p := range s.Paths {
		pp := &pb.PathSchema{Pattern: p.Pattern, Synopsis: p.Synopsis, Description: p.Description}
		for _, op := range p.Operations {
			pp.Operations = append(pp.Operations, string(op))
		}
		for _, f := range p.Fields {
			def, _ := encodeJSON(f.Default)
			av, _ := encodeJSON(f.AllowedValues)
			pp.Fields = append(pp.Fields, &pb.FieldInfo{Name: f.Name, Type: f.Type, Description: f.Description,
				Required: f.Required, DefaultJson: def, AllowedValuesJson: av})
		}
		out.Paths = append(out.Paths, pp)
	}
	return out
}

// SchemaFromProto converts a wire schema back.
func SchemaFromProto(s *pb.Schema) *logical.Schema {
	if s == nil {
		return &logical.Schema{}
	}
	out := &logical.Schema{Help: s.Help}
	for _, p := range s.Paths {
		ps := logical.PathSchema{Pattern: p.Pattern, Synopsis: p.Synopsis, Description: p.Description}
		for _, op := range p.Operations {
			ps.Operations = append(ps.Operations, logical.Operation(op))
		}
		for _, f := range p.Fields {
			fi := logical.FieldInfo{Name: f.Name, Type: f.Type, Description: f.Description, Required: f.Required}
			if len(f.DefaultJson) > 0 {
				_ = json.Unmarshal(f.DefaultJson, &fi.Default)
			}
			if len(f.AllowedValuesJson) > 0 {
				_ = json.Unmarshal(f.AllowedValuesJson, &fi.AllowedValues)
			}
			ps.Fields = append(ps.Fields, fi)
		}
		out.Paths = append(out.Paths, ps)
	}
	return out
}
