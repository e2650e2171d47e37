package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// CrashAtEnv names the environment variable with which a test makes a
// worker kill itself (SIGKILL, as `kill -9` would) at a chosen step of
// the checkpoint protocol, to check recovery from a crash at exactly that
// step. Its value is a comma-separated list of worker:step:n (the n-th
// time, counted from 1 in this process, that the worker named worker
// reaches step). Steps:
//
//   - taken: the worker took its part of a checkpoint (in its loop) and
//     has not written it;
//   - written: its part is in its file (fsynced, renamed) and the
//     initializer has not been told (on the initializer or a worker
//     alone: not committed);
//   - commit: on the initializer, the checkpoint is committed in its own
//     files and the other workers have not been told; on the others, the
//     initializer's commit arrived and is not yet in this worker's files;
//   - rescale-frozen (initializer): in a grow or shrink, every worker has
//     frozen and sent its states, the Commit is not told;
//   - rescale-committed (initializer): the new cluster is recorded, no
//     worker is told to release;
//   - rescale-released (a worker other than the initializer): it
//     completed the release of a grow or shrink (its new table is
//     installed) and has not told the initializer.
//
// It is read only by a worker that runs with resilience
// (--run-with-resilience); others ignore it. It is for tests only;
// operators have no reason to set it.
const CrashAtEnv = "MACHIDA_TEST_CRASH_AT"

var crashSteps = map[string]bool{"taken": true, "written": true, "commit": true, "rescale-frozen": true, "rescale-committed": true, "rescale-released": true}

// crashPoints are this worker's entries of CrashAtEnv and how often each
// step was reached. Safe for concurrent use.
type crashPoints struct {
	mu   sync.Mutex
	at   map[string]int // step -> the time it kills the process
	seen map[string]int
	// die is called to kill the process (a test replaces it).
	die func(step string, n int)
}

// parseCrashPoints reads spec (CrashAtEnv's value) for the worker named
// name; nil if spec names no step of it.
func parseCrashPoints(spec, name string) (*crashPoints, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, nil
	}
	cp := &crashPoints{at: map[string]int{}, seen: map[string]int{}, die: killSelf}
	for _, ent := range strings.Split(spec, ",") {
		parts := strings.Split(strings.TrimSpace(ent), ":")
		if len(parts) != 3 || !crashSteps[parts[1]] {
			return nil, fmt.Errorf("%s: %q is not worker:step:n with step one of taken, written, commit, rescale-frozen, rescale-committed, rescale-released", CrashAtEnv, ent)
		}
		n, err := strconv.Atoi(parts[2])
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s: %q: n must be a whole number from 1", CrashAtEnv, ent)
		}
		if parts[0] == name {
			cp.at[parts[1]] = n
		}
	}
	if len(cp.at) == 0 {
		return nil, nil
	}
	return cp, nil
}

// reached counts one more arrival at step and kills the process if it
// is the one asked for. A nil crashPoints does nothing.
func (c *crashPoints) reached(step string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.seen[step]++
	n := c.seen[step]
	hit := c.at[step] == n
	c.mu.Unlock()
	if hit {
		c.die(step, n)
	}
}

func killSelf(step string, n int) {
	fmt.Fprintf(os.Stderr, "%s: killing this worker at step %q (time %d)\n", CrashAtEnv, step, n)
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // SIGKILL is not delivered at once
}

// StallStartEnv names the environment variable with which a test makes a
// worker that runs with resilience wait, once it has joined its cluster
// and before it reads its checkpoint files, until a file exists (as a
// large state to read would make it wait), to check what the cluster
// does meanwhile. Its value is worker:path (path may hold colons). It is
// for tests only; operators have no reason to set it.
const StallStartEnv = "MACHIDA_TEST_STALL_START"

// parseStall returns the path that the worker named name waits for
// before it reads its files ("": none), from spec (StallStartEnv's
// value).
func parseStall(spec, name string) (string, error) {
	if strings.TrimSpace(spec) == "" {
		return "", nil
	}
	w, path, ok := strings.Cut(spec, ":")
	if !ok || w == "" || path == "" {
		return "", fmt.Errorf("%s: %q is not worker:path", StallStartEnv, spec)
	}
	if w != name {
		return "", nil
	}
	return path, nil
}

// stallUntil waits until path exists (or ctx ends: its error).
func stallUntil(ctx context.Context, path string) error {
	fmt.Fprintf(os.Stderr, "%s: waiting for %s before reading the checkpoint files\n", StallStartEnv, path)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: %w", StallStartEnv, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
