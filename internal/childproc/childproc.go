// Package childproc starts child processes that die with the process
// that started them, also when it dies without stopping them (SIGKILL, a
// crash, go test -timeout's panic): the test suites and the bench start
// workers that listen on ports and would otherwise run on unseen.
//
// How: Linux sends a child its parent-death signal (Pdeathsig, here
// SIGKILL) when the thread that started it ends, not the process. So
// every child is started from one goroutine locked to its OS thread for
// the life of the process: started from a thread that some goroutine had
// locked, a child would be killed when that goroutine ends (the runtime
// ends its thread then). Start is safe for concurrent use; the goroutine
// is made on first use. Linux only (Pdeathsig).
package childproc

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

type job struct {
	cmd  *exec.Cmd
	done chan error
}

var (
	jobs     = make(chan job)
	starting sync.Once
)

// Start is cmd.Start, with cmd set to receive SIGKILL when this process
// ends (any SysProcAttr cmd has is kept).
func Start(cmd *exec.Cmd) error {
	starting.Do(func() {
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for j := range jobs {
				j.done <- j.cmd.Start()
			}
		}()
	})
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	done := make(chan error, 1)
	jobs <- job{cmd, done}
	return <-done
}

// Run is cmd.Run for a child started by Start.
func Run(cmd *exec.Cmd) error {
	if err := Start(cmd); err != nil {
		return err
	}
	return cmd.Wait()
}
