package audit

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
)

// benchRequest is a KV write with ten data fields.
func benchRequest() *Request {
	data := map[string]any{}
	for i := 0; i < 10; i++ {
		data[fmt.Sprintf("field%02d", i)] = fmt.Sprintf("value-%02d-0123456789abcdef", i)
	}
	r := sampleRequest(1)
	r.Data = map[string]any{"data": data, "options": map[string]any{"cas": 1}}
	r.Headers = nil
	return r
}

func benchResponse() *Response {
	return &Response{
		Request:    benchRequest(),
		StatusCode: 200,
		Data:       map[string]any{"created_time": "2026-11-24T10:00:00Z", "version": 3, "destroyed": false, "deletion_time": ""},
	}
}

// BenchmarkFileDevice measures one entry (request with ten data fields)
// logged to a file device from parallel goroutines: format, redact, chain
// and write(2) — with fsync in the fsync variant.
func BenchmarkFileDevice(b *testing.B) {
	for _, tc := range []struct {
		name  string
		fsync bool
		par   int // goroutines per GOMAXPROCS
	}{
		{"write", false, 1},
		{"write-32clients", false, 16},
		{"fsync", true, 1},
		{"fsync-32clients", true, 16},
	} {
		b.Run(tc.name, func(b *testing.B) {
			path := tempLog(b)
			d := newTestFile(b, FileConfig{DeviceConfig: testDeviceConfig(), Path: path, Fsync: tc.fsync})
			ev := &Event{Request: benchRequest()} // the device stamps the time
			b.ReportAllocs()
			b.SetParallelism(tc.par)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := d.Log(context.Background(), ev); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			fi, _ := os.Stat(path)
			b.ReportMetric(float64(fi.Size())/float64(b.N), "bytes/entry")
		})
	}
}

// BenchmarkBrokerRequest is the audit cost of one request as the kernel
// pays it: a request entry and a response entry through the broker to one
// file device (sequential, so it is the latency added to a request).
func BenchmarkBrokerRequest(b *testing.B) {
	d := newTestFile(b, FileConfig{DeviceConfig: testDeviceConfig(), Path: tempLog(b)})
	br := NewBroker(BrokerOptions{})
	br.Enable("file/", d)
	req, resp := benchRequest(), benchResponse()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := br.LogRequest(ctx, req); err != nil {
			b.Fatal(err)
		}
		if err := br.LogResponse(ctx, resp); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBrokerRequestParallel is BenchmarkBrokerRequest from 32
// concurrent clients (16 goroutines per GOMAXPROCS on the 2-vCPU VM), the
// load of the target: concurrent entries share writes (group
// commit).
func BenchmarkBrokerRequestParallel(b *testing.B) {
	d := newTestFile(b, FileConfig{DeviceConfig: testDeviceConfig(), Path: tempLog(b)})
	br := NewBroker(BrokerOptions{})
	br.Enable("file/", d)
	req, resp := benchRequest(), benchResponse()
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if err := br.LogRequest(ctx, req); err != nil {
				b.Error(err)
				return
			}
			if err := br.LogResponse(ctx, resp); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkFormat is the CPU part alone: redaction and JSON encoding.
func BenchmarkFormat(b *testing.B) {
	f := newFormatter(testHMACKey, false, false)
	ev := &Event{Request: benchRequest()}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.format(ev, fixedTime); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	path := tempLog(b)
	d := newTestFile(b, FileConfig{DeviceConfig: testDeviceConfig(), Path: path})
	for i := 0; i < 5000; i++ {
		d.Log(context.Background(), &Event{Request: benchRequest()})
	}
	d.Close()
	b.ReportAllocs()
	for b.Loop() {
		f, _ := os.Open(path)
		if _, err := Verify(f, testPub); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	fi, _ := os.Stat(path)
	b.SetBytes(fi.Size())
}

// BenchmarkSocketDevice is what a request pays for a socket device: format,
// chain and a non-blocking queue send (delivery happens in the background).
func BenchmarkSocketDevice(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go io.Copy(io.Discard, c)
		}
	}()
	d, err := NewSocketDevice(context.Background(), SocketConfig{DeviceConfig: testDeviceConfig(), Address: ln.Addr().String()})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	ev := &Event{Request: benchRequest()}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			d.Log(context.Background(), ev)
		}
	})
	b.StopTimer()
	st := d.Stats()
	b.ReportMetric(float64(st.Dropped)/float64(b.N), "dropped/op")
}
