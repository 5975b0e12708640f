package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"3600", time.Hour, false},
		{"0", 0, false},
		{"90m", 90 * time.Minute, false},
		{"1h30m", 90 * time.Minute, false},
		{"7d", 7 * 24 * time.Hour, false},
		{"", 0, true},
		{"soon", 0, true},
		{"-5s", 0, true},
		{"xd", 0, true},
	}
	for _, tt := range tests {
		got, err := parseDuration(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v, err=%v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestHumanDuration(t *testing.T) {
	tests := map[time.Duration]string{
		0:                               "0s",
		time.Hour:                       "1h",
		90 * time.Minute:                "1h30m",
		768 * time.Hour:                 "768h",
		90 * time.Second:                "1m30s",
		time.Hour + 5*time.Second:       "1h5s",
		2*time.Hour + 3*time.Minute + 4: "2h3m0.000000004s",
	}
	for d, want := range tests {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestParseKVArgs(t *testing.T) {
	got, err := parseKVArgs(strings.NewReader(`{"x":1}`), []string{"a=b=c", "-", "a=2", ""})
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, got, `{"a":["b=c","2"],"x":1}`)

	for _, args := range [][]string{{"=v"}, {"novalue"}, {"@/nonexistent"}, {"-"}} {
		if _, err := parseKVArgs(strings.NewReader("not json"), args); err == nil {
			t.Errorf("parseKVArgs(%q) succeeded", args)
		} else if strings.Contains(err.Error(), "not json") || strings.Contains(err.Error(), "novalue") {
			t.Errorf("error echoes input: %v", err)
		}
	}
}

func TestParseVersions(t *testing.T) {
	got, err := parseVersions([]string{"1,2", " 3 ", ""})
	if err != nil || len(got) != 3 || got[2] != 3 {
		t.Errorf("parseVersions = %v, %v", got, err)
	}
	if _, err := parseVersions([]string{"1,-2"}); err == nil {
		t.Error("negative version accepted")
	}
}

func TestPrintTableKeepsValuesIntact(t *testing.T) {
	var out strings.Builder
	old := stdout
	stdout = &out
	defer func() { stdout = old }()
	printKeyValues([][]string{{"a", "tab\there"}, {"longer_key", "x"}})
	want := "Key           Value\n---           -----\na             tab\there\nlonger_key    x\n"
	if out.String() != want {
		t.Errorf("table = %q, want %q", out.String(), want)
	}
}
