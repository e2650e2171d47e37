package worker

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wallaroo-go/machida/engine/checkpoint"
)

// genProc is a Checkpointer whose whole state is one generator position.
type genProc struct {
	pos      byte
	restored int
}

func (p *genProc) SetTracking(bool) error { return nil }

func (p *genProc) TakeCheckpoint(full bool) (checkpoint.Delta, error) {
	return checkpoint.Delta{Full: full, Gens: map[int][]byte{0: {p.pos}}}, nil
}

func (p *genProc) RestoreCheckpoint(im *checkpoint.Image) (int, error) {
	p.pos = im.Gens[0][0]
	p.restored++
	return len(im.Gens), nil
}

func newTestResilience(t *testing.T, dir string, p *genProc) *resilience {
	t.Helper()
	nop := func(string, ...any) {}
	return newResilience(Resilience{Dir: dir}, p, checkpoint.Open(dir, "app", "initializer"), nil, &gate{}, nop, nop, nop, func(string) {})
}

// A checkpoint taken before the last grow or shrink is never restored,
// also by a process that starts again (the floor is in the files), and
// the next checkpoint numbers on from the newest in the files.
func TestResilience_RescaleFloorSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	p := &genProc{pos: 7}
	r := newTestResilience(t, dir, p)
	ok, err := r.start()
	require.NoError(t, err)
	assert.False(t, ok, "nothing to recover yet")
	id, err := r.final()
	require.NoError(t, err)
	assert.Equal(t, uint64(1), id)

	// Started again: checkpoint 1 comes back.
	p2 := &genProc{}
	r2 := newTestResilience(t, dir, p2)
	ok, err = r2.start()
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, byte(7), p2.pos)

	// The cluster grew after checkpoint 1; the process dies before the
	// next one completes.
	r2.afterRescale()
	p3 := &genProc{pos: 99}
	r3 := newTestResilience(t, dir, p3)
	ok, err = r3.start()
	require.NoError(t, err)
	assert.False(t, ok, "a checkpoint from before the grow was restored")
	assert.Zero(t, p3.restored)
	assert.Equal(t, uint64(1), r3.floor.Load())
	id, err = r3.final()
	require.NoError(t, err)
	assert.Equal(t, uint64(2), id, "the next checkpoint must number on from the files' newest")

	// And that one is used by the next start.
	p4 := &genProc{}
	r4 := newTestResilience(t, dir, p4)
	ok, err = r4.start()
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, byte(99), p4.pos)
}
