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

// startAt starts a process's resilience on dir with a processor whose
// generator is at pos, and says whether it recovered from the files.
func startAt(t *testing.T, dir string, pos byte) (*resilience, *genProc, bool) {
	t.Helper()
	p := &genProc{pos: pos}
	r := newTestResilience(t, dir, p)
	ok, err := r.start()
	require.NoError(t, err)
	return r, p, ok
}

// A checkpoint taken before the last grow or shrink is never restored,
// also by a process that starts again (the floor is in the files), and
// the next checkpoint numbers on from the newest in the files.
func TestResilience_RescaleFloorSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	r, _, ok := startAt(t, dir, 7)
	assert.False(t, ok, "nothing to recover yet")
	id, err := r.final()
	require.NoError(t, err)
	assert.Equal(t, uint64(1), id)

	// Started again: checkpoint 1 comes back.
	r2, p2, ok := startAt(t, dir, 0)
	assert.True(t, ok)
	assert.Equal(t, byte(7), p2.pos)

	// The cluster grew after checkpoint 1; the process dies before the
	// next one completes.
	r2.afterRescale()
	r3, p3, ok := startAt(t, dir, 99)
	assert.False(t, ok, "a checkpoint from before the grow was restored")
	assert.Zero(t, p3.restored)
	assert.Equal(t, uint64(1), r3.floor.Load())
	id, err = r3.final()
	require.NoError(t, err)
	assert.Equal(t, uint64(2), id, "the next checkpoint must number on from the files' newest")

	// And that one is used by the next start.
	_, p4, ok := startAt(t, dir, 0)
	assert.True(t, ok)
	assert.Equal(t, byte(99), p4.pos)
}
