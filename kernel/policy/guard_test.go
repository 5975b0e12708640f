package policy

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestGuard(t *testing.T) {
	g, err := CompileGuard(`cidrContains("10.0.0.0/8", request.remote_addr) && now.getHours() < 18`)
	if err != nil {
		t.Fatal(err)
	}
	at := func(h int) time.Time { return time.Date(2026, 11, 24, h, 0, 0, 0, time.UTC) }
	for _, tc := range []struct {
		addr string
		now  time.Time
		want bool
	}{
		{"10.1.2.3:5000", at(10), true},
		{"10.1.2.3:5000", at(22), false},
		{"192.168.1.1:5000", at(10), false},
	} {
		ok, err := g.Allows(context.Background(), &Input{Path: "auth/userpass/login/ada", RemoteAddr: tc.addr, Now: tc.now})
		if err != nil || ok != tc.want {
			t.Errorf("%s at %v: %v %v, want %v", tc.addr, tc.now, ok, err, tc.want)
		}
	}

	// An evaluation error denies and says why without quoting data.
	g, err = CompileGuard(`request.data["role"] == "ci"`)
	if err != nil {
		t.Fatal(err)
	}
	ok, err := g.Allows(context.Background(), &Input{Data: map[string]any{"secret": "hunter2"}})
	if ok || err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("missing key: %v %v", ok, err)
	}

	for _, bad := range []string{`request.pth == "x"`, `request.path`, `1 +`} {
		if _, err := CompileGuard(bad); err == nil {
			t.Errorf("%q compiled", bad)
		}
	}
}
