package checkpoint

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sections(tag string) []Section {
	return []Section{{Name: "opaque 0.3", Data: []byte("partitions of " + tag)}, {Name: "generator 1", Data: nil}, {Name: "", Data: []byte{0}}}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	b := Encode(7, sections("a"))
	id, secs, err := Decode(b)
	require.NoError(t, err)
	assert.Equal(t, uint64(7), id)
	require.Len(t, secs, 3)
	assert.Equal(t, "opaque 0.3", secs[0].Name)
	assert.Equal(t, []byte("partitions of a"), secs[0].Data)
	assert.Empty(t, secs[1].Data)
}

// A snapshot of an older format version is read; one of a newer version
// (or of none) is refused, naming the versions this build reads.
func TestDecodeReadsTheVersionsItKnows(t *testing.T) {
	withVersion := func(v uint16) []byte {
		b := Encode(9, sections("v"))
		body := b[:len(b)-4]
		binary.BigEndian.PutUint16(body[4:], v)
		return binary.BigEndian.AppendUint32(body, crc32.Checksum(body, castagnoli))
	}
	for v := uint16(minVersion); v <= version; v++ {
		id, secs, err := Decode(withVersion(v))
		require.NoError(t, err, "version %d", v)
		assert.Equal(t, uint64(9), id)
		assert.Len(t, secs, 3)
	}
	for _, v := range []uint16{0, version + 1} {
		_, _, err := Decode(withVersion(v))
		assert.ErrorIs(t, err, ErrCorrupt)
		assert.ErrorContains(t, err, fmt.Sprintf("format version %d; this build reads versions %d to %d", v, minVersion, version))
	}
}

func TestDecodeRefusesDamage(t *testing.T) {
	b := Encode(7, sections("a"))
	for name, bad := range map[string][]byte{
		"torn":         b[:len(b)-5],
		"empty":        nil,
		"one bit off":  append(append([]byte(nil), b[:10]...), append([]byte{b[10] ^ 1}, b[11:]...)...),
		"trailing":     append(append([]byte(nil), b...), 0),
		"garbage tail": append(append([]byte(nil), b[:len(b)-4]...), 1, 2, 3, 4),
	} {
		_, _, err := Decode(bad)
		assert.ErrorIs(t, err, ErrCorrupt, name)
	}
}

func TestStoreWriteCommitLatestPrune(t *testing.T) {
	dir := t.TempDir()
	s := Open(dir, "Word Count", "worker1")
	_, _, _, ok, err := s.LatestImage()
	require.NoError(t, err)
	assert.False(t, ok, "nothing committed yet")
	for id := uint64(1); id <= 4; id++ {
		require.NoError(t, s.Write(id, sections(string(rune('a'+id)))))
		require.NoError(t, s.Commit(Record{ID: id, Rollback: 0}))
	}
	require.NoError(t, s.Write(5, sections("f"))) // written, not committed
	recs, err := s.Committed()
	require.NoError(t, err)
	assert.Len(t, recs, 4)
	r, _, skipped, ok, err := s.LatestImage()
	require.NoError(t, err)
	require.True(t, ok, "%v", skipped)
	assert.Equal(t, uint64(4), r.ID)
	assert.Empty(t, skipped)
	secs, err := s.Read(4)
	require.NoError(t, err)
	assert.Equal(t, []byte("partitions of e"), secs[0].Data)

	// Keep the last two committed: 1 and 2 go, 3 and 4 stay, and 5 (being
	// taken) stays.
	require.NoError(t, s.Prune(2))
	assert.Equal(t, []uint64{3, 4, 5}, ids(t, s))
	assert.FileExists(t, filepath.Join(dir, "Word Count-worker1.evlog"), "0.6's name")

	// A damaged newest snapshot: the previous committed one is used, and
	// the damage is reported.
	damage(t, s, 4)
	r, _, skipped, ok, err = s.LatestImage()
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, uint64(3), r.ID)
	require.Len(t, skipped, 1)
	assert.ErrorIs(t, skipped[0], ErrCorrupt)

	// A commit record torn by a crash is not a commit.
	f, err := os.OpenFile(s.IDsPath(), os.O_WRONLY|os.O_APPEND, 0o600)
	require.NoError(t, err)
	f.Write([]byte{0, 0, 0, 0, 0, 0, 0, 9, 0})
	f.Close()
	recs, err = s.Committed()
	require.NoError(t, err)
	assert.Len(t, recs, 4)

	// A crash before the rename leaves only a temporary file, never a
	// log that reads as whole.
	require.NoError(t, os.WriteFile(s.EventLogPath()+".tmp", []byte("half"), 0o600))
	_, err = s.Read(6)
	assert.True(t, errors.Is(err, os.ErrNotExist))
	assert.Equal(t, []uint64{3, 4, 5}, ids(t, s))

	// Files of the layout before the event log go too.
	legacy := filepath.Join(dir, "Word Count-worker1.checkpoint-0000000000000001-0000000000000001")
	require.NoError(t, os.WriteFile(legacy, []byte("old"), 0o600))
	require.NoError(t, s.RemoveAll())
	for _, p := range []string{s.EventLogPath() + ".tmp", s.EventLogPath(), legacy} {
		assert.NoFileExists(t, p)
	}
	recs, err = s.Committed()
	require.NoError(t, err)
	assert.Empty(t, recs)
	// Another worker's files are not touched.
	other := Open(dir, "Word Count", "worker10")
	require.NoError(t, other.Write(1, nil))
	require.NoError(t, s.RemoveAll())
	_, err = other.Read(1)
	assert.NoError(t, err)
}

// Checkpoints as chains: a whole snapshot, then links holding what
// changed; loading one applies its chain; pruning keeps the chains of
// the newest two; a damaged link fails the checkpoints built on it, not
// the ones before.
func TestStoreChains(t *testing.T) {
	s := Open(t.TempDir(), "app", "w")
	img := func(kv ...string) []Section {
		im := NewImage()
		require.NoError(t, im.Apply(Delta{Steps: []StepDelta{delta("1.1", kv...)}}))
		return im.Sections()
	}
	require.NoError(t, s.WriteLink(1, 1, img("a", "1", "b", "1")))
	require.NoError(t, s.WriteLink(2, 1, img("a", "2")))
	require.NoError(t, s.WriteLink(3, 1, img("c", "3")))
	for id := uint64(1); id <= 3; id++ {
		require.NoError(t, s.Commit(Record{ID: id}))
	}
	im, base, err := s.Load(3)
	require.NoError(t, err)
	assert.EqualValues(t, 1, base)
	assert.Equal(t, map[string]string{"a": "2", "b": "1", "c": "3"}, states(im, "1.1"))
	im, _, err = s.Load(2)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"a": "2", "b": "1"}, states(im, "1.1"))

	// A new whole snapshot starts a chain; the newest two (4 and 5) keep
	// 4's chain only.
	require.NoError(t, s.WriteLink(4, 4, img("a", "4", "b", "4", "c", "4")))
	require.NoError(t, s.Commit(Record{ID: 4}))
	require.NoError(t, s.WriteLink(5, 4, img("b", "5")))
	require.NoError(t, s.Commit(Record{ID: 5}))
	require.NoError(t, s.Prune(2))
	files, err := s.snapshots()
	require.NoError(t, err)
	assert.Equal(t, []snapFile{{4, 4}, {5, 4}}, files)

	// Damage the link 5: 4 is used.
	damage(t, s, 5)
	r, im, skipped, ok, err := s.LatestImage()
	require.NoError(t, err)
	require.True(t, ok)
	assert.EqualValues(t, 4, r.ID)
	assert.Len(t, skipped, 1)
	assert.Equal(t, map[string]string{"a": "4", "b": "4", "c": "4"}, states(im, "1.1"))

	// Rewriting an id on another chain replaces its entry.
	require.NoError(t, s.WriteLink(5, 5, img("z", "z")))
	files, err = s.snapshots()
	require.NoError(t, err)
	assert.Equal(t, []snapFile{{4, 4}, {5, 5}}, files)
	// A link whose predecessor is missing does not load.
	require.NoError(t, s.WriteLink(7, 5, img("y", "y")))
	_, _, err = s.Load(7)
	assert.Error(t, err)
}

// A rollback record abandons what was committed after the checkpoint it
// returns to.
func TestCommittedFollowsRollbacks(t *testing.T) {
	s := Open(t.TempDir(), "app", "w")
	for _, r := range []Record{{1, 0}, {2, 0}, {3, 0}, {2, 1}, {3, 1}, {4, 1}} {
		require.NoError(t, s.Commit(r))
	}
	recs, err := s.Committed()
	require.NoError(t, err)
	assert.Equal(t, []Record{{1, 0}, {2, 1}, {3, 1}, {4, 1}}, recs)
}

// FuzzDecode: no input makes Decode panic, and what decodes encodes back
// to the same bytes.
func FuzzDecode(f *testing.F) {
	f.Add(Encode(1, sections("x")))
	f.Add(Encode(0, nil))
	f.Add([]byte("MCKP"))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, secs, err := Decode(b)
		if err != nil {
			return
		}
		if !bytes.Equal(Encode(id, secs), b) {
			t.Fatalf("snapshot %d does not encode back to its bytes", id)
		}
	})
}

func TestFloorRecordedCheckedAndRemoved(t *testing.T) {
	dir := t.TempDir()
	s := Open(dir, "app", "initializer")
	f, err := s.Floor()
	require.NoError(t, err)
	assert.Zero(t, f, "no file: no floor")
	require.NoError(t, s.SetFloor(41))
	require.NoError(t, s.SetFloor(42))
	f, err = s.Floor()
	require.NoError(t, err)
	assert.Equal(t, uint64(42), f)

	b, err := os.ReadFile(s.FloorPath())
	require.NoError(t, err)
	b[3] ^= 1
	require.NoError(t, os.WriteFile(s.FloorPath(), b, 0o600))
	_, err = s.Floor()
	assert.ErrorIs(t, err, ErrCorrupt)

	require.NoError(t, os.WriteFile(s.FloorPath()+".tmp", []byte("torn"), 0o600))
	require.NoError(t, s.RemoveAll())
	left, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, left)
}

// A log whose frames are damaged or cut reads up to the damage; a
// checkpoint after it is lost, one before it is not; the next write
// keeps what could be read.
func TestEventLogDamagedFramesAndCuts(t *testing.T) {
	s := Open(t.TempDir(), "app", "w")
	for id := uint64(1); id <= 3; id++ {
		require.NoError(t, s.Write(id, sections(string(rune('a'+id)))))
		require.NoError(t, s.Commit(Record{ID: id}))
	}
	whole, err := os.ReadFile(s.EventLogPath())
	require.NoError(t, err)
	for name, b := range map[string][]byte{
		"cut in the last entry": whole[:len(whole)-3],
		"frame of 3 damaged":    flipAt(whole, offsetOf(t, whole, 3)+2),
	} {
		require.NoError(t, os.WriteFile(s.EventLogPath(), b, 0o600), name)
		r, _, skipped, ok, err := s.LatestImage()
		require.NoError(t, err, name)
		require.True(t, ok, name)
		assert.EqualValues(t, 2, r.ID, name)
		require.Len(t, skipped, 1, name)
		assert.ErrorIs(t, skipped[0], ErrCorrupt, name)
	}
	for name, b := range map[string][]byte{
		"not a log":   []byte("MCKPxxxx"),
		"new version": append([]byte("MEVL\x00\x09"), whole[6:]...),
	} {
		require.NoError(t, os.WriteFile(s.EventLogPath(), b, 0o600), name)
		_, _, skipped, ok, err := s.LatestImage()
		require.NoError(t, err, name)
		assert.False(t, ok, name)
		require.Len(t, skipped, 3, name)
		assert.ErrorIs(t, skipped[0], ErrCorrupt, name)
	}
	// A fresh Store (a restarted worker) writing after a cut keeps what
	// reads.
	require.NoError(t, os.WriteFile(s.EventLogPath(), flipAt(whole, offsetOf(t, whole, 3)+2), 0o600))
	s2 := Open(s.dir, "app", "w")
	require.NoError(t, s2.Write(4, sections("e")))
	assert.Equal(t, []uint64{1, 2, 4}, ids(t, s2))
}

// ids lists the checkpoints s's event log holds.
func ids(t *testing.T, s *Store) []uint64 {
	t.Helper()
	files, err := s.snapshots()
	require.NoError(t, err)
	var out []uint64
	for _, f := range files {
		out = append(out, f.id)
	}
	return out
}

// offsetOf is where the frame of checkpoint id starts in the log b.
func offsetOf(t *testing.T, b []byte, id uint64) int {
	t.Helper()
	for at := 6; at+frameLen <= len(b); {
		n := int(binary.BigEndian.Uint32(b[at+16:]))
		if binary.BigEndian.Uint64(b[at:]) == id {
			return at
		}
		at += frameLen + n
	}
	t.Fatalf("no entry of checkpoint %d", id)
	return 0
}

// flipAt is a copy of b with the byte at i inverted.
func flipAt(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0xff
	return c
}

// damage inverts a byte in the middle of checkpoint id's snapshot.
func damage(t *testing.T, s *Store, id uint64) {
	t.Helper()
	b, err := os.ReadFile(s.EventLogPath())
	require.NoError(t, err)
	at := offsetOf(t, b, id)
	n := int(binary.BigEndian.Uint32(b[at+16:]))
	require.NoError(t, os.WriteFile(s.EventLogPath(), flipAt(b, at+frameLen+n/2), 0o600))
}

// Links are appended to the event log (a whole snapshot rewrites it); an
// append torn by a crash reads as absent, the checkpoint before it is
// used, and the next write after a restart rewrites the log whole.
func TestEventLogAppendsLinksAndSurvivesATornAppend(t *testing.T) {
	dir := t.TempDir()
	s := Open(dir, "app", "w")
	size := func() int64 {
		st, err := os.Stat(s.EventLogPath())
		require.NoError(t, err)
		return st.Size()
	}
	require.NoError(t, s.WriteLink(1, 1, sections("a")))
	require.NoError(t, s.Commit(Record{ID: 1}))
	before := size()
	link := Encode(2, sections("b"))
	require.NoError(t, s.WriteLink(2, 1, sections("b")))
	require.NoError(t, s.Commit(Record{ID: 2}))
	assert.Equal(t, before+int64(frameLen+len(link)), size(), "the link was not appended")

	// A crash in the middle of appending 3: half its bytes.
	f, err := os.OpenFile(s.EventLogPath(), os.O_WRONLY|os.O_APPEND, 0o600)
	require.NoError(t, err)
	torn := appendFrame(nil, entry{id: 3, base: 1, blob: Encode(3, sections("c"))})
	_, err = f.Write(torn[:len(torn)/2])
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, s.Commit(Record{ID: 3})) // as if another worker's commit came
	r, _, skipped, ok, err := Open(dir, "app", "w").LatestImage()
	require.NoError(t, err)
	require.True(t, ok)
	assert.EqualValues(t, 2, r.ID)
	require.Len(t, skipped, 1)
	assert.ErrorIs(t, skipped[0], ErrCorrupt)

	// A restarted worker's next write leaves a log that reads whole.
	s2 := Open(dir, "app", "w")
	require.NoError(t, s2.WriteLink(3, 1, sections("c")))
	es, err := s2.load()
	require.NoError(t, err)
	assert.Len(t, es, 3)
	im, _, err := s2.Load(3)
	require.NoError(t, err)
	assert.NotNil(t, im)
}

// snapFile is one checkpoint the event log holds: its id and its
// chain's start.
type snapFile struct{ id, base uint64 }

// snapshots lists the checkpoints in the event log, by id ascending.
func (s *Store) snapshots() ([]snapFile, error) {
	es, err := s.load()
	var out []snapFile
	for _, e := range es {
		out = append(out, snapFile{e.id, e.base})
	}
	return out, err
}

func TestEventLogRotation(t *testing.T) {
	dir := t.TempDir()
	s := Open(dir, "Word Count", "worker1")
	_, err := s.Rotate()
	assert.ErrorIs(t, err, ErrNothingToRotate, "nothing written yet")

	require.NoError(t, s.Write(1, sections("a")))
	require.NoError(t, s.Commit(Record{ID: 1}))
	require.NoError(t, s.WriteLink(2, 1, sections("b")))
	require.NoError(t, s.Commit(Record{ID: 2}))
	first := s.EventLogPath()
	assert.Equal(t, filepath.Join(dir, "Word Count-worker1.evlog"), first)
	info, err := os.Stat(first)
	require.NoError(t, err)
	size := info.Size()
	assert.Equal(t, size, s.EventLogGrowth(), "a new log grows from nothing")

	// The new file is named by the old one's length (its offset) and
	// holds every checkpoint kept; the old file is gone.
	path, err := s.Rotate()
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, fmt.Sprintf("Word Count-worker1-%016x.evlog", size)), path)
	assert.Equal(t, path, s.EventLogPath())
	assert.NoFileExists(t, first)
	assert.Zero(t, s.EventLogGrowth(), "a rotated log grows from what it began with")
	_, err = s.Rotate()
	assert.ErrorIs(t, err, ErrNothingToRotate, "nothing written since the rotation")
	secs, err := s.Read(2)
	require.NoError(t, err)
	require.Len(t, secs, 3)
	assert.Equal(t, []byte("partitions of b"), secs[0].Data)

	// Links go on in the new file; a second rotation's offset adds up.
	require.NoError(t, s.WriteLink(3, 1, sections("c")))
	require.NoError(t, s.Commit(Record{ID: 3}))
	info, err = os.Stat(path)
	require.NoError(t, err)
	second := info.Size()
	assert.Less(t, s.EventLogGrowth(), second)
	assert.Positive(t, s.EventLogGrowth())
	path2, err := s.Rotate()
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, fmt.Sprintf("Word Count-worker1-%016x.evlog", size+second)), path2)
	assert.NoFileExists(t, path)

	// A new process (a restart) finds the newest file, also when a crash
	// left the file before it (rotated, not yet removed) and a temporary
	// file of a later rotation.
	require.NoError(t, os.WriteFile(path, []byte("MEVL\x00\x01"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("Word Count-worker1-%016x.evlog.tmp", 1<<40)), []byte("torn"), 0o600))
	r := Open(dir, "Word Count", "worker1")
	assert.Equal(t, path2, r.EventLogPath())
	rec, im, skipped, ok, err := r.LatestImage()
	require.NoError(t, err)
	require.True(t, ok, "%v", skipped)
	assert.Equal(t, uint64(3), rec.ID)
	assert.NotNil(t, im)
	require.NoError(t, r.RemoveTemps())
	_, err = os.Stat(filepath.Join(dir, fmt.Sprintf("Word Count-worker1-%016x.evlog.tmp", 1<<40)))
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.NoFileExists(t, path, "the log before the newest is removed at the start")
	assert.FileExists(t, path2)

	// A clean stop removes every file of the log, rotated ones included;
	// another worker's files stay.
	other := filepath.Join(dir, fmt.Sprintf("Word Count-worker2-%016x.evlog", 5))
	require.NoError(t, os.WriteFile(other, []byte("x"), 0o600))
	require.NoError(t, r.RemoveAll())
	left, err := filepath.Glob(filepath.Join(dir, "Word Count-worker1*"))
	require.NoError(t, err)
	assert.Empty(t, left)
	assert.FileExists(t, other)
}

// The growth that size rotation reads only ever adds up between
// rotations: a rewrite that drops old checkpoints makes the file shorter
// than when it began, and the writes after it still count (rotation by
// size used to stop for good once the file stayed below its first
// length).
func TestEventLogGrowthSurvivesAShorterRewrite(t *testing.T) {
	s := Open(t.TempDir(), "Word Count", "worker1")
	require.NoError(t, s.Write(1, sections("a")))
	require.NoError(t, s.Commit(Record{ID: 1}))
	for id := uint64(2); id <= 6; id++ {
		require.NoError(t, s.WriteLink(id, 1, sections(strings.Repeat("b", 100))))
		require.NoError(t, s.Commit(Record{ID: id}))
	}
	_, err := s.Rotate()
	require.NoError(t, err)
	require.Zero(t, s.EventLogGrowth())
	began := fileSize(t, s.EventLogPath())

	// A whole snapshot, then the older chain pruned: the file is
	// shorter than it began.
	require.NoError(t, s.Write(7, sections("c")))
	require.NoError(t, s.Commit(Record{ID: 7}))
	require.NoError(t, s.Prune(1))
	require.Less(t, fileSize(t, s.EventLogPath()), began)
	grown := s.EventLogGrowth()
	assert.Positive(t, grown, "the whole snapshot added to the file before the prune")

	// Links after it count in full.
	before := fileSize(t, s.EventLogPath())
	require.NoError(t, s.WriteLink(8, 7, sections("d")))
	require.NoError(t, s.Commit(Record{ID: 8}))
	assert.Equal(t, grown+fileSize(t, s.EventLogPath())-before, s.EventLogGrowth())
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	require.NoError(t, err)
	return info.Size()
}

// oneCommitted is the store of worker w of app in dir with checkpoint 1
// written and committed.
func oneCommitted(t *testing.T, dir string) *Store {
	t.Helper()
	s := Open(dir, "app", "w")
	require.NoError(t, s.Write(1, sections("a")))
	require.NoError(t, s.Commit(Record{ID: 1}))
	return s
}

// restartReads opens dir's store anew (a restart), checks that it reads
// the log at path, that its start removes gone (an older file), and that
// its newest usable checkpoint is id.
func restartReads(t *testing.T, dir, path, gone string, id uint64) {
	t.Helper()
	r := Open(dir, "app", "w")
	assert.Equal(t, path, r.EventLogPath())
	require.NoError(t, r.RemoveTemps())
	assert.NoFileExists(t, gone)
	latestIs(t, r, id)
}

// latestIs checks that the newest usable checkpoint in s's files is id.
func latestIs(t *testing.T, s *Store, id uint64) {
	t.Helper()
	rec, _, skipped, ok, err := s.LatestImage()
	require.NoError(t, err)
	require.True(t, ok, "%v", skipped)
	assert.Equal(t, id, rec.ID)
}

// A rotation whose new file is renamed into place but whose directory
// cannot be synced goes on in the new file (it is the one the next start
// reads) and keeps the old one; nothing committed is lost either way.
func TestEventLogRotationDirectoryNotSynced(t *testing.T) {
	dir := t.TempDir()
	s := oneCommitted(t, dir)
	require.NoError(t, s.WriteLink(2, 1, sections("b")))
	require.NoError(t, s.Commit(Record{ID: 2}))
	old := s.EventLogPath()

	failing := errors.New("injected: directory not synced")
	syncDir = func(string) error { return failing }
	path, err := s.Rotate()
	syncDir = defaultSyncDir
	var stale *StaleLogError
	require.ErrorAs(t, err, &stale)
	assert.ErrorIs(t, err, failing)
	assert.Equal(t, old, stale.Old)
	assert.Equal(t, path, s.EventLogPath(), "the log goes on in the renamed file")
	assert.FileExists(t, old, "the old file stays while the new name may not be on the disk")

	require.NoError(t, s.WriteLink(3, 1, sections("c")))
	require.NoError(t, s.Commit(Record{ID: 3}))
	restartReads(t, dir, path, old, 3)
}

// A rotated file already on the disk with an offset at or above the next
// one (left by an earlier failure) is never read instead of the log: the
// next rotation names its file above it.
func TestEventLogRotationNamesAboveEveryFileOnDisk(t *testing.T) {
	dir := t.TempDir()
	s := oneCommitted(t, dir)
	stray := filepath.Join(dir, fmt.Sprintf("app-w-%016x.evlog", 1<<20))
	require.NoError(t, os.WriteFile(stray, []byte("MEVL\x00\x01"), 0o600))
	path, err := s.Rotate()
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, fmt.Sprintf("app-w-%016x.evlog", 1<<20+1)), path)
	restartReads(t, dir, path, stray, 1)
}

// A directory that cannot be listed is an error for reads, writes and the
// start's clean-up, not a silent choice of the unrotated file; nothing is
// remembered, so the right file is found once the directory reads again.
func TestEventLogUnlistableDirectory(t *testing.T) {
	dir := t.TempDir()
	s := oneCommitted(t, dir)
	path, err := s.Rotate()
	require.NoError(t, err)

	// The same directory, unreadable to this process: a store on a path
	// that is a file stands in for it (root may read any directory).
	blocked := filepath.Join(t.TempDir(), "not-a-dir")
	require.NoError(t, os.WriteFile(blocked, nil, 0o600))
	b := Open(blocked, "app", "w")
	_, _, err = b.Load(1)
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "list the event log files")
	assert.Error(t, b.RemoveTemps())
	assert.Error(t, b.Write(2, sections("b")))
	_, _, _, ok, err := b.LatestImage()
	assert.False(t, ok)
	assert.Error(t, err, "a failure to read is not a fallback to an older checkpoint")
	assert.Error(t, b.Write(2, sections("b")), "nothing was remembered")

	r := Open(dir, "app", "w")
	assert.Equal(t, path, r.EventLogPath())
	_, _, err = r.Load(1)
	require.NoError(t, err)
}

// A record of the committed list cut short by a crash is replaced by the
// next commit, not followed by it (which would misalign every later
// record); a list that names none of the log's checkpoints (damaged)
// never makes Prune empty the log.
func TestStoreTornCommitAndADisagreeingList(t *testing.T) {
	dir := t.TempDir()
	s := Open(dir, "app", "w")
	require.NoError(t, s.Write(1, sections("1")))
	require.NoError(t, s.Commit(Record{ID: 1}))
	f, err := os.OpenFile(s.IDsPath(), os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.Write([]byte{0, 0, 0, 0, 0, 0, 0}) // a torn record
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, s.Write(2, sections("2")))
	require.NoError(t, s.Commit(Record{ID: 2, Rollback: 3}))
	recs, err := s.Committed()
	require.NoError(t, err)
	assert.Equal(t, []Record{{ID: 1}, {ID: 2, Rollback: 3}}, recs)
	assert.Equal(t, int64(32), s.IDsFileSize())

	// The list replaced by one of checkpoints the log does not hold.
	require.NoError(t, os.Remove(s.IDsPath()))
	require.NoError(t, s.Commit(Record{ID: 77}))
	require.NoError(t, s.Prune(2))
	written, err := Open(dir, "app", "w").Written()
	require.NoError(t, err)
	assert.Equal(t, []uint64{1, 2}, written)
}
