package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSendBatches_NoPerMessageAllocation checks that the hot loop's
// allocations do not grow with the number of messages.
func TestSendBatches_NoPerMessageAllocation(t *testing.T) {
	lines := bytes.Repeat([]byte("some text line\n"), 1000)
	logFile := filepath.Join(t.TempDir(), "sent.txt")
	sources := map[string]func() source{
		"counter": func() source { return &counterSource{framed: true} },
		"u64":     func() source { return &u64Source{partition: []byte("part")} },
		"file": func() source {
			s := &recordSource{repeat: true}
			s.addLines(lines)
			return s
		},
	}
	for name, newSrc := range sources {
		t.Run(name, func(t *testing.T) {
			allocs := func(messages uint64) float64 {
				cfg := &config{host: "test", messages: messages, batchSize: 500}
				return testing.AllocsPerRun(3, func() {
					sentTxt, err := createSentLog(logFile)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := sendBatches(context.Background(), cfg, newSrc(), io.Discard, sentTxt, io.Discard); err != nil {
						t.Fatal(err)
					}
					if err := sentTxt.close(); err != nil {
						t.Fatal(err)
					}
				})
			}
			small, large := allocs(1_000), allocs(200_000)
			// Buffers grow to batch size during the first batch; 200x the
			// messages must not mean more allocations.
			if large > small+2 {
				t.Errorf("allocations grow with messages: %v for 1000, %v for 200000", small, large)
			}
		})
	}
	if err := os.Remove(logFile); err != nil {
		t.Fatal(err)
	}
}

func TestProgress_ReportsEveryTwoSeconds(t *testing.T) {
	var buf bytes.Buffer
	t0 := time.Unix(1000, 0)
	p := progress{w: &buf, last: t0}
	p.report(t0.Add(time.Second), 500, 10_000)
	if buf.Len() != 0 {
		t.Fatalf("progress after 1s: %q", buf.String())
	}
	p.report(t0.Add(2*time.Second), 4_000, 10_000)
	p.report(t0.Add(3*time.Second), 5_000, 10_000)
	p.report(t0.Add(4*time.Second), 10_000, 10_000)
	p.finish(t0.Add(4*time.Second), t0, 10_000)
	want := "sender: sent 4000 of 10000 messages (2000 msg/s)\n" +
		"sender: sent 10000 of 10000 messages (3000 msg/s)\n" +
		"sender: sent 10000 messages in 4s (2500 msg/s)\n"
	if got := buf.String(); got != want {
		t.Errorf("progress output\n%s\nwant\n%s", got, want)
	}
	var quiet bytes.Buffer
	q := progress{w: &quiet, last: t0}
	q.finish(t0.Add(time.Second), t0, 10)
	if strings.TrimSpace(quiet.String()) != "" {
		t.Errorf("short run printed a summary: %q", quiet.String())
	}
}
