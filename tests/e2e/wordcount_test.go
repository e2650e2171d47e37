package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// punctuation is what word_count.py strips from lines and words.
const punctuation = " !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

// referenceCounts counts words the way the example documents it, written
// independently of the application.
func referenceCounts(lines []string) map[string]int {
	counts := map[string]int{}
	for _, line := range lines {
		for _, w := range strings.Split(strings.Trim(strings.ToLower(line), punctuation), " ") {
			if w = strings.Trim(w, punctuation); w != "" {
				counts[w]++
			}
		}
	}
	return counts
}

// lastCounts parses "word => n" lines, keeping the last n of each word.
func lastCounts(t *testing.T, lines []string) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, l := range lines {
		i := strings.LastIndex(l, " => ")
		if i < 0 {
			t.Fatalf("malformed output line %q", l)
		}
		n, err := strconv.Atoi(l[i+4:])
		if err != nil {
			t.Fatalf("malformed output line %q", l)
		}
		got[l[:i]] = n
	}
	return got
}

func total(m map[string]int) int {
	s := 0
	for _, n := range m {
		s += n
	}
	return s
}

func compareCounts(t *testing.T, got, want map[string]int) {
	t.Helper()
	for w, n := range want {
		if got[w] != n {
			t.Errorf("count of %q = %d, want %d", w, got[w], n)
		}
	}
	for w := range got {
		if _, ok := want[w]; !ok {
			t.Errorf("unexpected word %q", w)
		}
	}
}

// runWordCount runs the example with the real tools: data_receiver as the
// sink, sender feeding the file's non-empty lines as framed messages.
func runWordCount(t *testing.T, input string, want map[string]int) {
	dir := exampleDir("word_count")
	out := freePort(t)
	in := freePort(t)
	recv := start(t, dir, "data_receiver", "--listen", out, "--ponythreads=1", "--ponynoblock")
	recv.waitOutput("Listening on", 10*time.Second)
	m := machida(t, dir, "word_count", in, out)
	m.waitOutput("Application has successfully initialized", 20*time.Second)
	lines := readLines(t, input)
	snd := start(t, dir, "sender", "--host", in, "--file", input, "--batch-size", "5",
		"--interval", "1_000_000", "--messages", strconv.Itoa(len(lines)),
		"--ponythreads=1", "--ponynoblock", "--no-write")
	if code := snd.wait(30 * time.Second); code != 0 {
		t.Fatalf("sender exited %d", code)
	}
	deadline := time.Now().Add(30 * time.Second)
	var got map[string]int
	for {
		outLines := strings.Split(recv.stdout.String(), "\n")
		got = lastCounts(t, outLines[:len(outLines)-1])
		if total(got) >= total(want) && len(outLines)-1 >= total(want) || time.Now().After(deadline) {
			if len(outLines)-1 != total(want) {
				t.Errorf("got %d output lines, want one per word occurrence: %d", len(outLines)-1, total(want))
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	compareCounts(t, got, want)

	// A clean stop: SIGTERM makes the worker exit 0.
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := m.wait(15 * time.Second); code != 0 {
		t.Errorf("machida3 exited %d after SIGTERM, want 0", code)
	}
}

func TestWordCount_ExampleInput(t *testing.T) {
	dir := exampleDir("word_count")
	var want map[string]int
	b, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	compareCounts(t, referenceCounts(readLines(t, filepath.Join(dir, "input.txt"))), want)
	runWordCount(t, filepath.Join(dir, "input.txt"), want)
}

func TestWordCount_CountThis(t *testing.T) {
	input := sharedData(t, "count_this.txt")
	want := referenceCounts(readLines(t, input))
	// The figures Wallaroo's own expected output records for this file.
	if len(want) != 217 || total(want) != 482 {
		t.Fatalf("reference counts: %d words, %d total; want 217 and 482", len(want), total(want))
	}
	runWordCount(t, input, want)
}
