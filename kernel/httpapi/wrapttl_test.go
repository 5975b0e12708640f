package httpapi

import (
	"testing"
	"time"

	"github.com/wardproject/ward/kernel"
)

func TestParseWrapTTL(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"", 0, false}, {"0", 0, false}, {" 60 ", time.Minute, false}, {"5m", 5 * time.Minute, false},
		{"1s", time.Second, false}, {"1h30m", 90 * time.Minute, false},
		{"-1", 0, true}, {"-5m", 0, true}, {"999ms", 0, true}, {"soon", 0, true}, {"5 m", 0, true},
		{"99999999999999999", 0, true}, {"1000000h", 0, true},
	} {
		got, err := parseWrapTTL(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseWrapTTL(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

// FuzzParseWrapTTL: the header is untrusted; any value parses to no
// wrapping, a TTL of at least the minimum, or an error.
func FuzzParseWrapTTL(f *testing.F) {
	for _, s := range []string{"", "60", "5m", "-1", "1e9", "9223372036854775807", "1ns", "0s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseWrapTTL(s)
		if err == nil && d != 0 && (d < kernel.MinWrapTTL || d > maxWrapTTL) {
			t.Fatalf("parseWrapTTL(%q) = %v", s, d)
		}
	})
}
