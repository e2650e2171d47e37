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
		{[]string{"-t", "print"}, "--external is required"},
		{[]string{"-e", "nohostport"}, "--external must be host:port: address nohostport: missing port in address"},
		{[]string{"-e", "127.0.0.1:1", "-t", "shrink"}, `unknown --type "shrink"; valid types: print, rotate-log, clean-shutdown, partition-query, ` +
			`partition-count-query, cluster-status-query, source-ids-query, boundary-count-status, state-entity-query, ` +
			`state-entity-count-query, stateless-partition-query, stateless-partition-count-query`},
		{[]string{"-e", "127.0.0.1:1", "-t", "rotate-log"}, "--type rotate-log needs --message <worker name>"},
		{[]string{"-e", "127.0.0.1:1", "--timeout", "0s"}, "--timeout must be greater than 0"},
		{[]string{"-e", "127.0.0.1:1", "extra"}, `unexpected argument "extra"`},
		{[]string{"-e", "127.0.0.1:1", "--bogus"}, "unknown flag: --bogus"},
	}
	for _, tc := range cases {
		code, stdout, stderr := runTool(tc.args...)
		if want := "error: " + tc.want + " (see --help)\n"; code != 1 || stdout != "" || stderr != want {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %q", tc.args, code, stdout, stderr, want)
		}
	}
}

func TestParseFlags_Forms(t *testing.T) {
	for _, args := range [][]string{
		{"--external", "h:1", "--type", "partition-query", "--message", "m", "--json", "--timeout", "3s"},
		{"-e", "h:1", "-t", "partition-query", "-m", "m", "-j", "--timeout=3s"},
		{"--external=h:1", "--type=partition-query", "--message=m", "--json", "--ponythreads=1", "--timeout", "3s"},
		{"-e", "h:1", "-t", "Partition-Query", "-m", "m", "-j", "--timeout=3s"}, // any case, as 0.6's tool
	} {
		cfg, err := parseFlags(args)
		if err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		if cfg.external != "h:1" || cfg.typ.name != "partition-query" || cfg.message != "m" || !cfg.json || cfg.timeout.String() != "3s" {
			t.Errorf("%q: %+v", args, cfg)
		}
	}
	cfg, err := parseFlags([]string{"-e", "h:1"})
	if err != nil || cfg.typ.name != "print" || cfg.json || cfg.timeout != defaultTimeout {
		t.Errorf("defaults: %+v, %v", cfg, err)
	}
}

func TestUsage_ListsEveryFlagAndType(t *testing.T) {
	code, stdout, _ := runTool("--help")
	if code != 0 || stdout != usage {
		t.Fatalf("--help: exit %d, stdout %q", code, stdout)
	}
	for _, want := range []string{"--external", "--type", "--message", "--json", "--timeout", "--help", "-e,", "-t,", "-m,", "-j,"} {
		if !strings.Contains(usage, want) {
			t.Errorf("usage lacks %s", want)
		}
	}
	for _, mt := range msgTypes {
		if !strings.Contains(usage, mt.name) {
			t.Errorf("usage lacks type %s", mt.name)
		}
	}
}
