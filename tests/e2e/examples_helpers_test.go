package e2e

// Helpers for examples_test.go: running an example the way its README
// does (data_receiver, machida3, sender), reading what the receiver wrote,
// and comparing outputs as multisets or per key.

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// exReceiver is a running data_receiver and the address it listens on.
type exReceiver struct {
	*proc
	addr string
}

// exStartReceiver starts data_receiver in dir on a free port; extra are
// more options (--framed, --expect N ...). Its data goes to its stdout.
func exStartReceiver(t *testing.T, dir string, extra ...string) *exReceiver {
	t.Helper()
	addr := freePort(t)
	args := append([]string{"--listen", addr, "--ponythreads=1", "--ponynoblock"}, extra...)
	p := start(t, dir, "data_receiver", args...)
	p.waitOutput("Listening on", 10*time.Second)
	return &exReceiver{proc: p, addr: addr}
}

// lines returns the complete lines the receiver has written so far.
func (r *exReceiver) lines() []string {
	out := strings.Split(r.stdout.String(), "\n")
	return out[:len(out)-1]
}

// waitLines waits until the receiver wrote at least n complete lines and
// returns them all.
func (r *exReceiver) waitLines(t *testing.T, n int, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		lines := r.lines()
		if len(lines) >= n {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("data_receiver wrote %d lines, want %d, within %v", len(lines), n, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// exStartWorker starts machida3 with the module of the example in dir and
// waits until it is ready.
func exStartWorker(t *testing.T, dir, module, in, out string, extra ...string) *proc {
	t.Helper()
	m := machida(t, dir, module, in, out, extra...)
	m.waitOutput("Application has successfully initialized", 20*time.Second)
	return m
}

// exSend runs the sender in dir with the given options (after --host and
// --messages) and waits for it to exit 0.
func exSend(t *testing.T, dir, host string, messages int, opts ...string) {
	t.Helper()
	args := append([]string{"--host", host, "--messages", strconv.Itoa(messages)}, opts...)
	args = append(args, "--ponythreads=1", "--ponynoblock", "--no-write")
	s := start(t, dir, "sender", args...)
	if code := s.wait(60 * time.Second); code != 0 {
		t.Fatalf("sender exited %d\nstderr:\n%s", code, s.stderr.String())
	}
}

// exStop stops the worker with SIGTERM and expects exit status 0.
func exStop(t *testing.T, m *proc) {
	t.Helper()
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := m.wait(60 * time.Second); code != 0 {
		t.Errorf("machida3 exited %d after SIGTERM, want 0", code)
	}
}

// exStartWorkerExternal is exStartWorker with a known external channel
// address, which it returns (for external_sender queries).
func exStartWorkerExternal(t *testing.T, dir, module, in, out string) (*proc, string) {
	t.Helper()
	ext := freePort(t)
	m := start(t, dir, "machida3", "--application-module", module, "--in", in, "--out", out,
		"--metrics", freePort(t), "--control", freePort(t), "--data", freePort(t),
		"--name", "worker-name", "--external", ext, "--cluster-initializer",
		"--ponythreads=1", "--ponynoblock")
	m.waitOutput("Application has successfully initialized", 20*time.Second)
	return m, ext
}

// exStopAll stops the worker (SIGTERM: it exits 0 once it has flushed its
// sinks), then each receiver once it has read all the worker sent: when
// it has closed every connection it accepted, which it does on reading the
// end of the stream. Their outputs are then complete and final, so a test
// can count exactly what came out, with no "nothing more may come" wait.
func exStopAll(t *testing.T, m *proc, recvs ...*exReceiver) {
	t.Helper()
	exStop(t, m)
	for _, r := range recvs {
		r.stopWhenDrained(t)
	}
}

// stopWhenDrained waits (up to 60 s) until the receiver has no open
// connection left, then stops it with SIGTERM (it flushes its output and
// exits 0). Only call it once every peer has closed its connection: a
// receiver keeps a connection as long as its peer does.
func (r *exReceiver) stopWhenDrained(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		n, err := openConnections(r.addr)
		if err != nil {
			t.Fatalf("data_receiver %s: %v", r.addr, err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("data_receiver %s still has %d connections open 60 s after its peers closed them", r.addr, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(60 * time.Second); code != 0 {
		t.Errorf("data_receiver exited %d after SIGTERM, want 0", code)
	}
}

// openConnections counts the TCP connections the local side at addr (an
// IPv4 listener's address) has not closed yet, established or closed by
// the peer only (CLOSE_WAIT), from /proc/net/tcp. Connections still in the
// listener's backlog count too.
//
// /proc/net/tcp is not a snapshot: the kernel hands it out a page per
// read and walks its table again from where the last read stopped, so
// that while other sockets come and go (a loaded machine, other suites at
// once) a row can be read twice or not at all. Each connection is counted
// once (by its remote end) over three reads of the file: one row missed by
// a read is seen by another.
func openConnections(addr string) (int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	ip := net.ParseIP(host).To4()
	pn, err := strconv.Atoi(port)
	if ip == nil || err != nil {
		return 0, fmt.Errorf("not an IPv4 address: %s", addr)
	}
	// /proc/net/tcp shows the address as the 32-bit word (network
	// order bytes) read in host order, and the port as a number, in hex.
	local := fmt.Sprintf("%08X:%04X", binary.NativeEndian.Uint32(ip), pn)
	remotes := map[string]bool{}
	for range 3 {
		if err := readConnections(local, remotes); err != nil {
			return 0, err
		}
	}
	return len(remotes), nil
}

// readConnections reads /proc/net/tcp once and adds to remotes the
// remote end of each connection whose local end is local (its form there)
// that is established or in CLOSE_WAIT.
func readConnections(local string, remotes map[string]bool) error {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return fmt.Errorf("cannot tell whether the connections are closed: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		fields := strings.Fields(line)
		if len(fields) < 4 || fields[1] != local {
			continue
		}
		if st := fields[3]; st == "01" || st == "08" { // ESTABLISHED, CLOSE_WAIT
			remotes[fields[2]] = true
		}
	}
	return nil
}

// exReadFile reads a file or fails the test.
func exReadFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// exFrames splits a file of u32-BE-framed records, failing on a torn end.
func exFrames(t *testing.T, path string) [][]byte {
	t.Helper()
	b := exReadFile(t, path)
	frames := splitFrames(b)
	n := 0
	for _, f := range frames {
		n += 4 + len(f)
	}
	if n != len(b) {
		t.Fatalf("%s: %d bytes after the last whole frame", path, len(b)-n)
	}
	return frames
}

// exFixedFrames splits a file of fixed-size framed records (what the
// sender sends with --binary --msg-size size), checking every header.
func exFixedFrames(t *testing.T, path string, size int) [][]byte {
	t.Helper()
	b := exReadFile(t, path)
	if len(b)%size != 0 {
		t.Fatalf("%s: %d bytes is not a whole number of %d-byte records", path, len(b), size)
	}
	var out [][]byte
	for i := 0; i < len(b); i += size {
		if n := binary.BigEndian.Uint32(b[i:]); int(n) != size-4 {
			t.Fatalf("%s: record at byte %d announces %d bytes, want %d", path, i, n, size-4)
		}
		out = append(out, b[i+4:i+size])
	}
	return out
}

// exTextLines returns the non-empty lines of a text, without the newlines.
func exTextLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// exSameMultiset reports, as a test error, the difference between two
// collections of strings compared without order.
func exSameMultiset(t *testing.T, what string, got, want []string) {
	t.Helper()
	count := map[string]int{}
	for _, s := range want {
		count[s]++
	}
	for _, s := range got {
		count[s]--
	}
	var missing, extra []string
	for s, n := range count {
		for ; n > 0; n-- {
			missing = append(missing, s)
		}
		for ; n < 0; n++ {
			extra = append(extra, s)
		}
	}
	if len(missing) == 0 && len(extra) == 0 {
		return
	}
	sort.Strings(missing)
	sort.Strings(extra)
	t.Errorf("%s: got %d items, want %d; %d missing (first: %q), %d unexpected (first: %q)",
		what, len(got), len(want), len(missing), missing[:min(5, len(missing))],
		len(extra), extra[:min(5, len(extra))])
}

// exSameSequences compares per-key sequences exactly (the order within a
// key matters, the interleaving of keys does not).
func exSameSequences(t *testing.T, what string, got, want map[string][]string) {
	t.Helper()
	keys := map[string]bool{}
	for k := range got {
		keys[k] = true
	}
	for k := range want {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	bad := 0
	for _, k := range sorted {
		g, w := got[k], want[k]
		if slices.Equal(g, w) {
			continue
		}
		i := 0
		for i < len(g) && i < len(w) && g[i] == w[i] {
			i++
		}
		at := func(s []string) string {
			if i < len(s) {
				return strconv.Quote(s[i])
			}
			return "nothing"
		}
		t.Errorf("%s, key %q: %d items, want %d; item %d is %s, want %s",
			what, k, len(g), len(w), i+1, at(g), at(w))
		if bad++; bad == 5 {
			t.Errorf("%s: more keys differ", what)
			return
		}
	}
}

// exPython returns the path of a python3 to run an example's scripts with,
// or skips the test.
func exPython(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found")
	}
	return p
}

// exValidate writes output to a file and runs the example's validate.py
// on it with the given options, which must name the file as "{}".
func exValidate(t *testing.T, dir string, output []byte, args ...string) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Log("python3 not found: validate.py not run")
		return
	}
	file := filepath.Join(t.TempDir(), "received")
	if err := os.WriteFile(file, output, 0o644); err != nil {
		t.Fatal(err)
	}
	full := []string{"validate.py"}
	for _, a := range args {
		full = append(full, strings.ReplaceAll(a, "{}", file))
	}
	cmd := exec.Command(py, full...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Errorf("python3 %s (in %s): %v\n%s", strings.Join(full, " "), dir, err, out.String())
	}
}

// exGenerate runs an example's gen.py with python into a temporary
// directory (files named by the options, with "{}" standing for that
// directory) and returns the directory.
func exGenerate(t *testing.T, python, dir string, args ...string) string {
	t.Helper()
	tmp := t.TempDir()
	full := []string{"gen.py"}
	for _, a := range args {
		full = append(full, strings.ReplaceAll(a, "{}", tmp))
	}
	cmd := exec.Command(python, full...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s", python, strings.Join(full, " "), dir, err, out)
	}
	return tmp
}

// exFloorMod is Python's %: the result has the sign of m.
func exFloorMod(a, m int64) int64 {
	r := a % m
	if r != 0 && (r < 0) != (m < 0) {
		r += m
	}
	return r
}

// exNextAmount is the alerts examples' recurrence,
// ((a * 2305843009213693951 + 7) % 2500) - 1250 in Python arithmetic,
// computed without overflow (only a's and the factor's residues matter).
func exNextAmount(a int64) int64 {
	const factor = 2305843009213693951
	return exFloorMod(exFloorMod(a, 2500)*(factor%2500)+7, 2500) - 1250
}

// execOutputLimit bounds how long a tool run by execOutput may take.
const execOutputLimit = 2 * time.Minute

// execOutput runs a program and returns its standard output; one that
// has not ended after execOutputLimit is killed (the error says so).
func execOutput(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), execOutputLimit)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).Output()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s did not end within %v: %w", name, execOutputLimit, err)
	}
	return string(out), err
}
