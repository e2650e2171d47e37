package main

import (
	"strings"
	"testing"
)

func TestParseFlags_Errors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-q"}, "--external is required"},
		{[]string{"-e", "127.0.0.1:1"}, "one of --query, --count or --workers is required"},
		{[]string{"-e", "127.0.0.1:1", "-q", "-c", "1"}, "--query and --count can't be used together: give exactly one of --query, --count or --workers"},
		{[]string{"-e", "127.0.0.1:1", "-c", "1", "-w", "a", "-q"}, "--query and --count and --workers can't be used together: give exactly one of --query, --count or --workers"},
		{[]string{"-e", "127.0.0.1:1", "--query=false"}, "--query=false selects no mode: give exactly one of --query, --count or --workers"},
		{[]string{"-e", "127.0.0.1:1", "-c", "-2"}, "--count -2 must not be negative"},
		{[]string{"-e", "127.0.0.1:1", "-c", "x"}, `invalid argument "x" for "-c, --count" flag: must be an integer`},
		{[]string{"-e", "127.0.0.1:1", "-w", "a,,b"}, `--workers "a,,b" contains an empty worker name`},
		{[]string{"-e", "127.0.0.1:1", "-w", ""}, `--workers "" contains an empty worker name`},
		{[]string{"-e", "127.0.0.1:1", "-q", "--timeout", "0s"}, "--timeout must be greater than 0"},
		{[]string{"-e", "127.0.0.1:1", "-q", "extra"}, `unexpected argument "extra"`},
	}
	for _, tc := range cases {
		code, stdout, stderr := runTool(tc.args...)
		if want := "error: " + tc.want + " (see --help)\n"; code != 1 || stdout != "" || stderr != want {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %q", tc.args, code, stdout, stderr, want)
		}
	}
}

func TestParseFlags_Forms(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		query   bool
		count   int
		workers string
	}{
		{[]string{"--external", "h:1", "--query"}, true, 0, "[]"},
		{[]string{"-e", "h:1", "-c", "3"}, false, 3, "[]"},
		{[]string{"--external=h:1", "--count=3"}, false, 3, "[]"},
		{[]string{"-e", "h:1", "--workers", "w1, w2"}, false, 0, "[w1 w2]"},
		{[]string{"-e", "h:1", "-w", "w1", "--ponythreads", "4"}, false, 0, "[w1]"},
	} {
		cfg, err := parseFlags(tc.args)
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		workers := "[" + strings.Join(cfg.workers, " ") + "]"
		if cfg.external != "h:1" || cfg.query != tc.query || cfg.count != tc.count || workers != tc.workers {
			t.Errorf("%q: %+v", tc.args, cfg)
		}
	}
}

func TestUsage_ListsEveryFlag(t *testing.T) {
	code, stdout, _ := runTool("--help")
	if code != 0 || stdout != usage {
		t.Fatalf("--help: exit %d, stdout %q", code, stdout)
	}
	for _, want := range []string{"-e, --external", "-q, --query", "-c, --count", "-w, --workers", "--timeout", "--help"} {
		if !strings.Contains(usage, want) {
			t.Errorf("usage lacks %s", want)
		}
	}
}
