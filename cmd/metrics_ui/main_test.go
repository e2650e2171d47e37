package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags(nil)
	if err != nil || cfg.listen != "127.0.0.1:5001" || cfg.http != "127.0.0.1:4000" {
		t.Fatalf("defaults: %+v, %v", cfg, err)
	}
	cfg, err = parseFlags([]string{"-l", "127.0.0.1:1", "--http=127.0.0.1:2"})
	if err != nil || cfg.listen != "127.0.0.1:1" || cfg.http != "127.0.0.1:2" {
		t.Fatalf("set: %+v, %v", cfg, err)
	}
	if _, err := parseFlags([]string{"-h"}); err != errHelp {
		t.Fatalf("-h: %v", err)
	}
	if _, err := parseFlags([]string{"extra"}); err == nil || !strings.Contains(err.Error(), `unexpected argument "extra"`) {
		t.Fatalf("extra argument: %v", err)
	}
}

func TestRun_Errors(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"--help"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "--listen H:P") {
		t.Fatalf("--help: exit %d, %q", code, out.String())
	}
	errOut.Reset()
	if code := run([]string{"--bogus"}, &out, &errOut); code != 1 || !strings.HasPrefix(errOut.String(), "error: unknown flag: --bogus") {
		t.Fatalf("--bogus: exit %d, %q", code, errOut.String())
	}
	errOut.Reset()
	if code := run([]string{"--listen", "256.0.0.1:1"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "error: --listen 256.0.0.1:1:") {
		t.Fatalf("bad --listen: exit %d, %q", code, errOut.String())
	}
}
