package logline

import (
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"testing"
)

func TestHandler_PlainLines(t *testing.T) {
	var b strings.Builder
	l := slog.New(New(&b, slog.LevelInfo))
	l.Debug("hidden")
	l.Info(`external channel: RotateLog for worker "initializer"`)
	l.With("sink", "out").WithGroup("g").Warn("not delivered", "bytes", 12, "err", errors.New("broken pipe"), "empty", "")
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("lines %q", lines)
	}
	if !regexp.MustCompile(`^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d INFO external channel: RotateLog for worker "initializer"$`).MatchString(lines[0]) {
		t.Errorf("line 0 %q", lines[0])
	}
	if !strings.HasSuffix(lines[1], `WARN not delivered sink=out g.bytes=12 g.err="broken pipe" g.empty=""`) {
		t.Errorf("line 1 %q", lines[1])
	}
}
