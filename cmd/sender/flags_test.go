package main

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestParseFlags_DefaultsAndValues(t *testing.T) {
	cfg, err := parseFlags([]string{"-h", "127.0.0.1:7000", "-m", "1_000_000"})
	if err != nil {
		t.Fatal(err)
	}
	want := &config{host: "127.0.0.1:7000", messages: 1_000_000, batchSize: 500, interval: 5 * time.Millisecond}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got %+v, want %+v", cfg, want)
	}

	cfg, err = parseFlags([]string{
		"--host=localhost:1", "--messages", "7", "--file", "a,b,a", "--batch-size", "10",
		"--interval", "100_000_000", "--repeat", "--start-from", "3", "--vary-by", "2", "--no-write",
	})
	if err != nil {
		t.Fatal(err)
	}
	want = &config{host: "localhost:1", messages: 7, files: []string{"a", "b", "a"}, batchSize: 10,
		interval: 100 * time.Millisecond, repeat: true, startFrom: 3, varyBy: 2, noWrite: true}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got %+v, want %+v", cfg, want)
	}
}

func TestParseFlags_Interval(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true},
		{"5000000", 5 * time.Millisecond, true},
		{"100_000_000", 100 * time.Millisecond, true},
		{"250ms", 250 * time.Millisecond, true},
		{"1_", 0, false},
		{"_1", 0, false},
		{"1__0", 0, false},
		{"-5", 0, false},
		{"-5ms", 0, false},
		{"0x10", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		cfg, err := parseFlags([]string{"-h", "h:1", "-m", "1", "-i", tt.in})
		if (err == nil) != tt.ok {
			t.Errorf("-i %q: err = %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && cfg.interval != tt.want {
			t.Errorf("-i %q = %s, want %s", tt.in, cfg.interval, tt.want)
		}
	}
}

func TestUsage_ListsEveryFlag(t *testing.T) {
	var files string
	var help bool
	fs := newFlagSet(defaultConfig(), &files, &help)
	fs.VisitAll(func(f *pflag.Flag) {
		long := "--" + f.Name
		if f.Shorthand != "" {
			long = "-" + f.Shorthand + ", " + long
		}
		if !strings.Contains(usage, long+" ") {
			t.Errorf("usage does not document %q", long)
		}
	})
}
