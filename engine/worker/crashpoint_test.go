package worker

import (
	"testing"

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
