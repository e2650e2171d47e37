package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Every process the suite starts dies with the test binary, also when
// the binary dies without running its cleanups (go test -timeout's
// panic, a SIGKILL, a crash): the kernel sends it SIGKILL when the
// thread that started it ends (Pdeathsig). So all of them are started
// from one goroutine locked to its OS thread for the life of the binary
// (a thread that ends early would take its children with it).

type spawnJob struct {
	cmd  *exec.Cmd
	done chan error
}

var spawnJobs = make(chan spawnJob)

func init() {
	go func() {
		runtime.LockOSThread() // never unlocked: the thread lives as long as the process
		for j := range spawnJobs {
			j.done <- j.cmd.Start()
		}
	}()
}

// startChild starts cmd so that it dies with the test binary (see
// above); it is exec.Cmd.Start otherwise.
func startChild(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	done := make(chan error, 1)
	spawnJobs <- spawnJob{cmd, done}
	return <-done
}

// runChild is exec.Cmd.Run for a child started by startChild.
func runChild(cmd *exec.Cmd) error {
	if err := startChild(cmd); err != nil {
		return err
	}
	return cmd.Wait()
}

// The test binary run again as a helper (E2E_SPAWN_HELPER=1): it starts
// a long sleep with startChild from a goroutine that then ends (as a
// test's goroutine would), prints the sleep's PID and waits to be
// killed.
func TestHarness_SpawnHelper(t *testing.T) {
	if os.Getenv("E2E_SPAWN_HELPER") != "1" {
		t.Skip("a helper of TestHarness_ChildrenDieWithTheTestBinary")
	}
	pid := make(chan int)
	go func() {
		cmd := exec.Command("sleep", "600")
		if err := startChild(cmd); err != nil {
			fmt.Printf("error %v\n", err)
			os.Exit(1)
		}
		pid <- cmd.Process.Pid
	}()
	fmt.Printf("child %d\n", <-pid)
	select {} // until killed
}

// A worker started by the suite does not outlive a test binary that is
// killed without running its cleanups.
func TestHarness_ChildrenDieWithTheTestBinary(t *testing.T) {
	helper := exec.Command(os.Args[0], "-test.run=^TestHarness_SpawnHelper$", "-test.v=false")
	// (WALLAROO_HOST set: the helper runs no machida child of its own.)
	helper.Env = append(os.Environ(), "E2E_SPAWN_HELPER=1", "WALLAROO_HOST="+hostBinary)
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := startChild(helper); err != nil {
		t.Fatal(err)
	}
	defer func() {
		helper.Process.Kill()
		helper.Wait()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("the helper said nothing: %v", err)
	}
	f := strings.Fields(line)
	if len(f) != 2 || f[0] != "child" {
		t.Fatalf("the helper said %q", line)
	}
	child, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(child, 0); err != nil {
		t.Fatalf("the helper's child %d is not running: %v", child, err)
	}
	if err := helper.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	helper.Wait()
	// Gone, or a zombie waiting for init to reap it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if !alive(child) {
			return
		}
		if time.Now().After(deadline) {
			syscall.Kill(child, syscall.SIGKILL)
			t.Fatalf("process %d (sleep 600) outlived the test binary that started it by 30s", child)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid runs (exists and is not a zombie).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: the state follows the last ')'.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
