package bridge

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var testInterp *Interp

// deadline bounds every wait in these tests: generous, so that only a
// stuck executor reaches it.
const deadline = 30 * time.Second

// retryEnv makes the test binary a child that exercises a failed Start.
const retryEnv = "BRIDGE_TEST_START_RETRY"

func TestMain(m *testing.M) {
	if os.Getenv(retryEnv) != "" {
		os.Exit(startRetryChild())
	}
	in, err := Start(Config{Path: []string{"testdata"}})
	if err != nil {
		panic(err)
	}
	testInterp = in
	os.Exit(m.Run())
}

// do runs fn on the executor and fails the test on error. Inside fn,
// report with t.Errorf and stop by returning an error: t.Fatal there ends
// the executor's goroutine (Do survives that, but the report is worse).
func do(t *testing.T, fn func(py *Py) error) {
	t.Helper()
	if err := doErr(t, fn); err != nil {
		t.Fatal(err)
	}
}

// doErr runs fn on the executor and returns Do's error; a Do that has not
// returned within the deadline fails the test instead of hanging it.
func doErr(t *testing.T, fn func(py *Py) error) error {
	t.Helper()
	return await(t, "Do", func() error { return testInterp.Do(fn) })
}

// await runs f on a goroutine and returns its result, failing the test if
// f has not returned within the deadline.
func await(t *testing.T, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	return awaitChan(t, what, done)
}

func awaitChan(t *testing.T, what string, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(deadline):
		t.Fatalf("%s did not return within %v", what, deadline)
		return nil
	}
}

// eventually polls cond until it holds or the deadline passes. It never
// fails the test itself, so it may run inside Do.
func eventually(cond func() bool) bool {
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !eventually(cond) {
		t.Fatalf("timed out after %v waiting for %s", deadline, what)
	}
}

// pipe is an OS pipe whose ends the tests hand to Python as descriptors or
// use from Go as files with deadlines.
type pipe struct {
	r, w int
}

func newPipe(t *testing.T) pipe {
	t.Helper()
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	p := pipe{r: fds[0], w: fds[1]}
	t.Cleanup(func() {
		syscall.Close(p.r)
		syscall.Close(p.w)
	})
	return p
}

// goFile wraps a duplicate of fd in a pollable *os.File, so reads honour
// deadlines; the duplicate is closed with the test.
func goFile(t *testing.T, fd int) *os.File {
	t.Helper()
	dup, err := syscall.Dup(fd)
	if err != nil {
		t.Fatal(err)
	}
	syscall.CloseOnExec(dup)
	if err := syscall.SetNonblock(dup, true); err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(dup), "pipe")
	t.Cleanup(func() { f.Close() })
	return f
}

func appliedInterrupts() int {
	testInterp.mu.Lock()
	defer testInterp.mu.Unlock()
	return testInterp.applied
}

func TestStart_SysArgvAndPath(t *testing.T) {
	do(t, func(py *Py) error {
		m, err := py.Exec("probe_argv", "import sys\nargv = sys.argv\npath0 = sys.path[0]\npath1 = sys.path[1]\n")
		if err != nil {
			return err
		}
		defer py.DecRef(m)
		for name, want := range map[string]string{"path0": "", "path1": "testdata"} {
			v, err := py.GetAttr(m, name)
			if err != nil {
				return err
			}
			got, err := py.GoString(v)
			py.DecRef(v)
			if err != nil {
				return err
			}
			if got != want {
				t.Errorf("%s = %q, want %q", name, got, want)
			}
		}
		argv, _ := py.GetAttr(m, "argv")
		defer py.DecRef(argv)
		if r := py.Repr(argv); r != "['']" {
			t.Errorf("sys.argv = %s, want ['']", r)
		}
		if _, err := Start(Config{}); err == nil {
			t.Errorf("second Start succeeded")
		}
		return nil
	})
}

func TestCall_ConversionsAndRefcounts(t *testing.T) {
	do(t, func(py *Py) error {
		m, err := py.Exec("probe_calls", `
def join(frames):
    return b"|".join(frames)
def pair(a, b):
    return (a, b)
def many(a, b, c):
    return [a, b, c]
def text():
    return u"h\u00e9llo"
`)
		if err != nil {
			return err
		}
		defer py.DecRef(m)
		join, _ := py.GetAttr(m, "join")
		defer py.DecRef(join)
		buf := []byte("abcdefg")
		ends := []int32{1, 3, 3, 7}
		before := py.RefCount(join)
		r, err := py.CallFrames(join, buf, ends)
		if err != nil {
			return err
		}
		got, err := py.BytesView(r)
		if err != nil {
			return err
		}
		if string(got) != "a|bc||defg" {
			t.Errorf("CallFrames = %q", got)
		}
		py.DecRef(r)
		if after := py.RefCount(join); after != before {
			t.Errorf("refcount of callable %d -> %d", before, after)
		}

		probe := py.Bytes([]byte("probe"))
		defer py.DecRef(probe)
		base := py.RefCount(probe)
		for _, name := range []string{"pair", "many"} {
			fn, _ := py.GetAttr(m, name)
			args := []Object{probe, probe, probe}[:map[string]int{"pair": 2, "many": 3}[name]]
			res, err := py.Call(fn, args...)
			if err != nil {
				return err
			}
			items, err := py.Items(res)
			if err != nil {
				return err
			}
			if len(items) != len(args) || !py.Same(items[0], probe) {
				t.Errorf("%s returned %s", name, py.Repr(res))
			}
			for _, it := range items {
				py.DecRef(it)
			}
			py.DecRef(res)
			py.DecRef(fn)
		}
		if after := py.RefCount(probe); after != base {
			t.Errorf("refcount of argument %d -> %d", base, after)
		}

		txt, err := py.CallMethod(m, "text")
		if err != nil {
			return err
		}
		defer py.DecRef(txt)
		s, err := py.GoString(txt)
		if err != nil || s != "h\u00e9llo" {
			t.Errorf("GoString = %q, %v", s, err)
		}
		if _, err := py.BytesView(txt); !errors.Is(err, ErrWrongType) {
			t.Errorf("BytesView(str) err = %v", err)
		}
		n := py.Int(-42)
		defer py.DecRef(n)
		if v, err := py.GoInt(n); err != nil || v != -42 {
			t.Errorf("GoInt = %d, %v", v, err)
		}
		if _, err := py.GoString(n); !errors.Is(err, ErrWrongType) || !strings.Contains(err.Error(), "int") {
			t.Errorf("GoString(int) err = %v", err)
		}
		l, err := py.StrList([]string{"a", "b"})
		if err != nil {
			return err
		}
		defer py.DecRef(l)
		if py.Repr(l) != "['a', 'b']" {
			t.Errorf("StrList = %s", py.Repr(l))
		}
		return nil
	})
}

func TestErrors_TracebackAndClearedState(t *testing.T) {
	do(t, func(py *Py) error {
		m, err := py.Exec("probe_errors", `
def inner(x):
    raise ValueError("bad value %r" % (x,))
def outer(x):
    return inner(x)
def leave():
    raise SystemExit(3)
def leave_none():
    raise SystemExit()
`)
		if err != nil {
			return err
		}
		defer py.DecRef(m)
		arg := py.Int(7)
		defer py.DecRef(arg)
		_, err = py.CallMethod(m, "outer", arg)
		var pe *PyError
		if !errors.As(err, &pe) {
			return fmt.Errorf("err = %v, want *PyError", err)
		}
		if pe.Type != "ValueError" || pe.Message != "bad value 7" {
			t.Errorf("PyError = %q %q", pe.Type, pe.Message)
		}
		for _, want := range []string{"Traceback (most recent call last)", "in outer", "in inner", "ValueError: bad value 7"} {
			if !strings.Contains(pe.Traceback, want) {
				t.Errorf("traceback lacks %q:\n%s", want, pe.Traceback)
			}
		}
		_, err = py.CallMethod(m, "leave")
		if !errors.As(err, &pe) || !pe.IsSystemExit || pe.ExitCode != 3 {
			t.Errorf("SystemExit(3) gave %#v", err)
		}
		_, err = py.CallMethod(m, "leave_none")
		if !errors.As(err, &pe) || !pe.IsSystemExit || pe.ExitCode != 0 {
			t.Errorf("SystemExit() gave %#v", err)
		}
		if _, err := py.Import("no_such_module_xyz"); !errors.As(err, &pe) || !strings.HasSuffix(pe.Type, "Error") || !strings.Contains(pe.Message, "no_such_module_xyz") {
			t.Errorf("import error = %v", err)
		}
		if _, err := py.Exec("probe_syntax", "def f(:\n"); !errors.As(err, &pe) || pe.Type != "SyntaxError" {
			t.Errorf("syntax error = %v", err)
		}
		// No exception may be left set: a fresh call must work.
		ok, err := py.Exec("probe_after", "x = 1\n")
		if err != nil {
			t.Errorf("call after errors failed: %v", err)
		}
		py.DecRef(ok)
		return nil
	})
}

func TestDo_FromManyGoroutines(t *testing.T) {
	do(t, func(py *Py) error {
		m, err := py.Exec("probe_threads", `
counter = [0]
def bump():
    counter[0] += 1
`)
		py.DecRef(m)
		return err
	})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				err := testInterp.Do(func(py *Py) error {
					m, err := py.Import("probe_threads")
					if err != nil {
						return err
					}
					defer py.DecRef(m)
					return py.CallMethodDiscard(m, "bump")
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	if err := await(t, "800 Do calls", func() error { wg.Wait(); return nil }); err != nil {
		t.Fatal(err)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	do(t, func(py *Py) error {
		m, err := py.Import("probe_threads")
		if err != nil {
			return err
		}
		defer py.DecRef(m)
		c, err := py.GetAttr(m, "counter")
		if err != nil {
			return err
		}
		defer py.DecRef(c)
		if py.Repr(c) != "[800]" {
			t.Errorf("counter = %s", py.Repr(c))
		}
		return nil
	})
}

// The error path releases everything: an exception whose frames hold a
// probe object must not keep it alive once the PyError exists.
func TestErrors_ReleaseTracebackFrames(t *testing.T) {
	do(t, func(py *Py) error {
		m, err := py.Exec("probe_error_refs", `
def hold_and_raise(obj):
    local_ref = obj
    raise KeyError("x")
`)
		if err != nil {
			return err
		}
		defer py.DecRef(m)
		probe := py.Bytes([]byte("held by a frame"))
		defer py.DecRef(probe)
		fn, _ := py.GetAttr(m, "hold_and_raise")
		defer py.DecRef(fn)
		gc, _ := py.Import("gc")
		defer py.DecRef(gc)
		before := py.RefCount(probe)
		for i := 0; i < 100; i++ {
			if _, err := py.Call(fn, probe); err == nil {
				return errors.New("hold_and_raise did not raise")
			}
		}
		py.CallMethodDiscard(gc, "collect")
		if after := py.RefCount(probe); after != before {
			t.Errorf("refcount of an object held by the failing frame %d -> %d after 100 errors", before, after)
		}
		return nil
	})
}

// bool() that raises is an error, never "false" (a generator stop flag
// read as false would mean "go on").
func TestTruth_ReturnsExceptions(t *testing.T) {
	do(t, func(py *Py) error {
		m, err := py.Exec("probe_truth", `
class Raises(object):
    def __bool__(self):
        raise ValueError("no truth here")
    __nonzero__ = __bool__
class Empty(object):
    def __len__(self):
        return 0
raises, empty, one = Raises(), Empty(), 1
`)
		if err != nil {
			return err
		}
		defer py.DecRef(m)
		for _, c := range []struct {
			name string
			want bool
		}{{"empty", false}, {"one", true}} {
			o, err := py.GetAttr(m, c.name)
			if err != nil {
				return err
			}
			got, err := py.Truth(o)
			py.DecRef(o)
			if got != c.want || err != nil {
				t.Errorf("Truth(%s) = %v, %v; want %v", c.name, got, err, c.want)
			}
		}
		o, err := py.GetAttr(m, "raises")
		if err != nil {
			return err
		}
		defer py.DecRef(o)
		got, err := py.Truth(o)
		var pe *PyError
		if !errors.As(err, &pe) || pe.Type != "ValueError" || pe.Message != "no truth here" || got {
			t.Errorf("Truth(raises) = %v, %v; want false and the ValueError", got, err)
		}
		after, err := py.Exec("probe_truth_after", "x = 1\n")
		py.DecRef(after)
		return err
	})
}
