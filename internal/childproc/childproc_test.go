package childproc

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary run again as a helper (CHILDPROC_HELPER=1): it starts
// a long sleep with Start from a goroutine that then ends (as a test's
// goroutine would), prints the sleep's PID and waits to be killed.
func TestHelperStartsAChildAndWaits(t *testing.T) {
	if os.Getenv("CHILDPROC_HELPER") != "1" {
		t.Skip("a helper of TestStart_ChildDiesWithItsParent")
	}
	pid := make(chan int)
	go func() {
		cmd := exec.Command("sleep", "600")
		if err := Start(cmd); err != nil {
			fmt.Printf("error %v\n", err)
			os.Exit(1)
		}
		pid <- cmd.Process.Pid
	}()
	fmt.Printf("child %d\n", <-pid)
	select {} // until killed
}

// A child does not outlive a parent killed without stopping it.
func TestStart_ChildDiesWithItsParent(t *testing.T) {
	helper := exec.Command(os.Args[0], "-test.run=^TestHelperStartsAChildAndWaits$")
	helper.Env = append(os.Environ(), "CHILDPROC_HELPER=1")
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := Start(helper); err != nil {
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
	if !alive(child) {
		t.Fatalf("the helper's child %d is not running", child)
	}
	if err := helper.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	helper.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for alive(child) {
		if time.Now().After(deadline) {
			syscall.Kill(child, syscall.SIGKILL)
			t.Fatalf("process %d (sleep 600) outlived the process that started it by 30s", child)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Run runs a child to its end and reports its exit.
func TestRun_WaitsForTheChild(t *testing.T) {
	if err := Run(exec.Command("true")); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if err := Run(exec.Command("false")); !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("Run(false) = %v, want exit status 1", err)
	}
	if err := Run(exec.Command("/nonexistent/program")); err == nil {
		t.Fatal("Run of a program that does not exist succeeded")
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
