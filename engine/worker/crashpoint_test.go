package worker

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCrashPoints_ParseAndCount(t *testing.T) {
	cp, err := parseCrashPoints("worker1:written:2, initializer:commit:1", "worker1")
	require.NoError(t, err)
	var died []string
	cp.die = func(step string, n int) { died = append(died, step) }
	cp.reached("written")
	cp.reached("commit") // another worker's entry
	assert.Empty(t, died)
	cp.reached("written")
	assert.Equal(t, []string{"written"}, died)
	cp.reached("written")
	assert.Len(t, died, 1, "only the n-th time")

	none, err := parseCrashPoints("worker1:written:2", "worker2")
	require.NoError(t, err)
	assert.Nil(t, none)
	none.reached("written") // a nil one does nothing

	for _, bad := range []string{"worker1:written", "worker1:flushed:1", "worker1:taken:0", "w:taken:x"} {
		_, err := parseCrashPoints(bad, "worker1")
		assert.Error(t, err, bad)
	}
}

func TestStallStart_ParseAndWait(t *testing.T) {
	path, err := parseStall("worker1:/tmp/a:b", "worker1")
	require.NoError(t, err)
	assert.Equal(t, "/tmp/a:b", path)
	path, err = parseStall("worker2:/tmp/x", "worker1")
	require.NoError(t, err)
	assert.Empty(t, path, "another worker's entry")
	path, err = parseStall("", "worker1")
	require.NoError(t, err)
	assert.Empty(t, path)
	for _, bad := range []string{"worker1", "worker1:", ":/tmp/x"} {
		_, err := parseStall(bad, "worker1")
		assert.ErrorContains(t, err, StallStartEnv, bad)
	}

	file := filepath.Join(t.TempDir(), "go")
	done := make(chan error, 1)
	go func() { done <- stallUntil(context.Background(), file) }()
	select {
	case err := <-done:
		t.Fatalf("returned before the file existed: %v", err)
	default:
	}
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(time.Minute):
		t.Fatal("still waiting a minute after the file was made")
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, stallUntil(ctx, filepath.Join(t.TempDir(), "never")), context.Canceled)
}
