package abi_test

import (
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/wardproject/ward/sdk/logical"
	"github.com/wardproject/ward/sdk/wasmguest/abi"
)

func kvWriteArgs() []byte {
	b, _ := abi.AppendRequestArgs(nil, &abi.RequestArgs{MountID: "kv", Deadline: time.Now().UnixNano(), Request: &logical.Request{
		Operation: logical.UpdateOperation, Path: "data/bench/1", MountPoint: "secret/",
		Data: map[string]any{"data": map[string]any{"user": "app", "password": "0123456789abcdef"}}}})
	return b
}

func encryptArgs() []byte {
	b, _ := abi.AppendRequestArgs(nil, &abi.RequestArgs{MountID: "t", Deadline: time.Now().UnixNano(), Request: &logical.Request{
		Operation: logical.UpdateOperation, Path: "encrypt/bench", MountPoint: "transit/",
		Data: map[string]any{"plaintext": base64.StdEncoding.EncodeToString(make([]byte, 1024))}}})
	return b
}

func kvReadReply() *abi.Reply {
	return &abi.Reply{Response: &logical.Response{Data: map[string]any{
		"data": map[string]any{"user": "app", "password": "0123456789abcdef"},
		"metadata": map[string]any{"version": 3, "created_time": "2026-11-24T10:00:00.123456789Z", "deletion_time": "",
			"destroyed": false, "custom_metadata": nil}}}}
}

func encryptReply() *abi.Reply {
	return &abi.Reply{Response: &logical.Response{Data: map[string]any{
		"ciphertext": "vault:v1:" + base64.StdEncoding.EncodeToString(make([]byte, 1024+28)), "key_version": 1}}}
}

func BenchmarkCodecDecodeKVWrite(b *testing.B) {
	in := kvWriteArgs()
	for b.Loop() {
		if _, err := abi.DecodeRequestArgs(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCodecDecodeEncrypt(b *testing.B) {
	in := encryptArgs()
	for b.Loop() {
		if _, err := abi.DecodeRequestArgs(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCodecAppendKVRead(b *testing.B) {
	r := kvReadReply()
	var out []byte
	for b.Loop() {
		out, _ = abi.AppendReply(out[:0], r)
	}
}

func BenchmarkCodecAppendEncrypt(b *testing.B) {
	r := encryptReply()
	var out []byte
	for b.Loop() {
		out, _ = abi.AppendReply(out[:0], r)
	}
}

func BenchmarkCodecDecodeReplyKVRead(b *testing.B) {
	out, _ := abi.AppendReply(nil, kvReadReply())
	for b.Loop() {
		if _, err := abi.DecodeReply(out); err != nil {
			b.Fatal(err)
		}
	}
}

var _ = json.Number("")
