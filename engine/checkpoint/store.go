// Package checkpoint keeps one worker's checkpoints in --resilience-dir
// under 0.6's names (runtime spec 4.2), in our format:
//
//   - `<app>-<worker>.evlog`, the event log: the checkpoints this worker
//     keeps (a whole snapshot and the links after it that hold only what
//     changed), each entry framed with a CRC-32C. A link is appended and
//     fsynced (a crash in the middle tears only that entry, which then
//     reads as absent: the checkpoint before it is used); a whole
//     snapshot, and the removal of checkpoints no longer kept, rewrite
//     the log through a temporary file, fsync, rename and fsync of the
//     directory.
//     With --log-rotation the log moves on to a new file now and then
//     (Rotate): `<app>-<worker>-<16 hex digits>.evlog`, named by its
//     offset (the bytes the log held in the files before it), which
//     starts with every checkpoint kept; the file with the greatest
//     offset is the log, and the one before it is removed.
//   - `<app>-<worker>.checkpoint_ids`, 0.6's list of committed
//     checkpoints (16-byte records: checkpoint id, rollback id; the last
//     whole record is authoritative).
//
// A Store is the files alone: no goroutines, no timers, no protocol.
// Who takes a checkpoint, when it is complete across the cluster and
// what a section holds are the engine's. Not safe for concurrent use:
// one goroutine (the worker's checkpoint driver) owns a Store and the
// copy of the event log it keeps between writes.
package checkpoint

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ErrCorrupt is wrapped by every error about a snapshot whose bytes are
// not a whole, intact snapshot (torn by a crash, or damaged).
var ErrCorrupt = errors.New("checkpoint: corrupt snapshot")

// Section is one named part of a snapshot (a state step's partitions, a
// generator's position, a link's sequence numbers...).
type Section struct {
	Name string
	Data []byte
}

// Record is one committed checkpoint: its id and the rollback id it was
// committed under.
type Record struct {
	ID, Rollback uint64
}

// Store is one worker's checkpoint files.
type Store struct {
	dir, base string
	// path is the event log's current file (resolved on first use: the
	// rotated file of the greatest offset, else <base>.evlog) and offset
	// its offset (0 for <base>.evlog); size is its length as last
	// written or read; grown is how much it has grown since it began (or
	// since this Store first read it): the sum of what each write added
	// to its length, so that a rewrite that drops old checkpoints does
	// not set the count back (size rotation would stop for good once
	// the file stayed below the length it began with); written whether
	// an entry was written to it since then.
	path    string
	offset  uint64
	size    int64
	grown   int64
	written bool
	// cache is the event log as this Store last wrote it (cached: read
	// or written once), so that a write does not read the log back;
	// intact: the file holds exactly that, nothing torn after it (an
	// append may follow). Reads for recovery go to the disk.
	cache  []entry
	cached bool
	intact bool
}

// Open returns the store of worker's checkpoints of app in dir (which
// must exist).
func Open(dir, app, worker string) *Store {
	return &Store{dir: dir, base: app + "-" + worker}
}

const (
	magic = "MCKP"
	// version 2: the envelope batches of a snapshot's in-flight section
	// may hold packed text columns (wire version 12), which a build that
	// reads only version 1 would misread; version 1 snapshots are read as
	// before.
	version     = 2
	minVersion  = 1
	evlogSuffix = ".evlog"
	legacyPart  = ".checkpoint-" // one file per checkpoint, before the event log
	idsSuffix   = ".checkpoint_ids"
	floorSuffix = ".rescale_floor"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// EventLogPath is the event log's current file, which holds the
// checkpoints' snapshots. (If the directory cannot be listed, the
// unrotated name, not remembered: reads and writes go through resolve,
// which reports the error.)
func (s *Store) EventLogPath() string {
	if err := s.resolve(); err != nil {
		return filepath.Join(s.dir, s.base+evlogSuffix)
	}
	return s.path
}

// resolve finds the event log's current file once: the rotated file of
// the greatest offset, else <base>.evlog. A directory that cannot be
// listed is an error (guessing would read, and later write, the wrong
// file).
func (s *Store) resolve() error {
	if s.path != "" {
		return nil
	}
	names, err := s.rotatedNames()
	if err != nil {
		return err
	}
	path, offset, found := filepath.Join(s.dir, s.base+evlogSuffix), uint64(0), false
	for _, name := range names {
		if off, ok := s.rotatedOffset(name); ok && (!found || off > offset) {
			path, offset, found = filepath.Join(s.dir, name), off, true
		}
	}
	s.path, s.offset = path, offset
	return nil
}

// rotatedNames lists the names of the rotated event log files in the
// directory (any offset).
func (s *Store) rotatedNames() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list the event log files in %s: %w", s.dir, err)
	}
	var out []string
	for _, e := range entries {
		if _, ok := s.rotatedOffset(e.Name()); ok {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// rotatedOffset reads the offset out of a rotated event log file's name.
func (s *Store) rotatedOffset(name string) (uint64, bool) {
	hex, ok := strings.CutPrefix(name, s.base+"-")
	if !ok {
		return 0, false
	}
	hex, ok = strings.CutSuffix(hex, evlogSuffix)
	if !ok || len(hex) != 16 {
		return 0, false
	}
	off, err := strconv.ParseUint(hex, 16, 64)
	return off, err == nil
}

// EventLogGrowth is how much the event log's current file has grown
// since it began (or since this Store first read it): the sum of what
// each write added to its length (a rewrite that made it shorter takes
// nothing off).
func (s *Store) EventLogGrowth() int64 {
	if _, err := s.current(); err != nil {
		return 0
	}
	return s.grown
}

// ErrNothingToRotate is returned by Rotate when no checkpoint was written
// to the event log's current file since it began (0.6 ignored such a
// rotation too).
var ErrNothingToRotate = errors.New("checkpoint: nothing written to the event log since it began")

// StaleLogError is Rotate's error when the new file is written (the log
// goes on there) but the old one could not be removed.
type StaleLogError struct {
	Old string
	Err error
}

func (e *StaleLogError) Error() string {
	return fmt.Sprintf("the old event log %s is not removed: %v", e.Old, e.Err)
}

func (e *StaleLogError) Unwrap() error { return e.Err }

// Rotate moves the event log on to a new file (--log-rotation), named by
// its offset (the old file's offset plus its length, and above every
// offset on the disk), that holds every checkpoint kept; the old file is
// removed once the new one is on disk. A crash in between leaves both,
// and the new one (greater offset) is read. Returns the new file's path.
// Once the new file has its name the log goes on there, even if the
// directory could not be synced after the rename (then the old file is
// kept too, and the error is a StaleLogError).
func (s *Store) Rotate() (string, error) {
	es, err := s.current()
	if err != nil {
		return "", err
	}
	if !s.written {
		return "", ErrNothingToRotate
	}
	old := s.path
	next := s.offset + uint64(s.size)
	names, err := s.rotatedNames()
	if err != nil {
		return "", fmt.Errorf("rotate the event log: %w", err)
	}
	for _, name := range names {
		// A file left by an earlier failure must never be read
		// instead of the new one.
		if off, _ := s.rotatedOffset(name); off >= next {
			next = off + 1
		}
	}
	path := filepath.Join(s.dir, fmt.Sprintf("%s-%016x%s", s.base, next, evlogSuffix))
	err = s.saveTo(path, es)
	var unsynced *dirSyncError
	if err != nil && !errors.As(err, &unsynced) {
		return "", fmt.Errorf("rotate the event log: %w", err)
	}
	s.path, s.offset = path, next
	s.grown, s.written = 0, false
	if unsynced != nil {
		return path, &StaleLogError{Old: old, Err: err}
	}
	if err := os.Remove(old); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return path, &StaleLogError{Old: old, Err: err}
	}
	return path, nil
}

// IDsPath is the committed-checkpoints file.
func (s *Store) IDsPath() string { return filepath.Join(s.dir, s.base+idsSuffix) }

// Encode lays out a snapshot: magic, version, id, the sections (name and
// data, each length-prefixed), then the CRC-32C of all that.
func Encode(id uint64, sections []Section) []byte {
	n := 4 + 2 + 8 + 4
	for _, sec := range sections {
		n += 4 + len(sec.Name) + 8 + len(sec.Data)
	}
	b := make([]byte, 0, n+4)
	b = append(b, magic...)
	b = binary.BigEndian.AppendUint16(b, version)
	b = binary.BigEndian.AppendUint64(b, id)
	b = binary.BigEndian.AppendUint32(b, uint32(len(sections)))
	for _, sec := range sections {
		b = binary.BigEndian.AppendUint32(b, uint32(len(sec.Name)))
		b = append(b, sec.Name...)
		b = binary.BigEndian.AppendUint64(b, uint64(len(sec.Data)))
		b = append(b, sec.Data...)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// Decode reads a snapshot Encode made; anything else wraps ErrCorrupt
// and says what is wrong. The sections' data alias b.
func Decode(b []byte) (id uint64, sections []Section, err error) {
	bad := func(format string, args ...any) (uint64, []Section, error) {
		return 0, nil, fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
	}
	if len(b) < 4+2+8+4+4 {
		return bad("%d bytes, shorter than any snapshot", len(b))
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return bad("checksum %08x, the contents give %08x (torn or damaged)", sum, got)
	}
	if string(body[:4]) != magic {
		return bad("starts with %q, not %q", body[:4], magic)
	}
	if v := binary.BigEndian.Uint16(body[4:]); v < minVersion || v > version {
		return bad("format version %d; this build reads versions %d to %d", v, minVersion, version)
	}
	id = binary.BigEndian.Uint64(body[6:])
	count := binary.BigEndian.Uint32(body[14:])
	rest := body[18:]
	for i := uint32(0); i < count; i++ {
		if len(rest) < 4 {
			return bad("section %d of %d cut short", i+1, count)
		}
		nl := binary.BigEndian.Uint32(rest)
		rest = rest[4:]
		if uint64(nl)+8 > uint64(len(rest)) {
			return bad("section %d of %d: name of %d bytes cut short", i+1, count, nl)
		}
		name := string(rest[:nl])
		rest = rest[nl:]
		dl := binary.BigEndian.Uint64(rest)
		rest = rest[8:]
		if dl > uint64(len(rest)) {
			return bad("section %q: %d bytes of data, %d left", name, dl, len(rest))
		}
		sections = append(sections, Section{Name: name, Data: rest[:dl]})
		rest = rest[dl:]
	}
	if len(rest) != 0 {
		return bad("%d bytes after the last section", len(rest))
	}
	return id, sections, nil
}

// Write stores checkpoint id's sections: a crash at any point leaves
// either the event log as it was or the whole new one.
func (s *Store) Write(id uint64, sections []Section) error { return s.WriteLink(id, id, sections) }

// WriteLink stores checkpoint id as a link of the chain that starts at
// the whole snapshot base (base == id: a whole snapshot itself); the
// sections of a link hold what changed since checkpoint id-1. A link
// that follows the log's last entry is appended to the log and fsynced
// (a crash in the middle leaves a torn last entry, which reads as
// absent); anything else (a whole snapshot, an entry of the same id
// written before: a retry, or the future a rollback abandoned, a log
// whose end is damaged) rewrites the log whole, through a temporary file
// (written, fsynced, renamed, the directory fsynced).
func (s *Store) WriteLink(id, base uint64, sections []Section) error {
	es, err := s.current()
	if err != nil {
		return fmt.Errorf("checkpoint %d: %w", id, err)
	}
	if s.intact && base != id && len(es) > 0 && es[len(es)-1].id < id {
		if err := s.appendEntry(entry{id: id, base: base, blob: Encode(id, sections)}); err != nil {
			return fmt.Errorf("checkpoint %d: %w", id, err)
		}
		s.written = true
		return nil
	}
	out := make([]entry, 0, len(es)+1)
	for _, e := range es {
		if e.id != id {
			out = append(out, e)
		}
	}
	out = append(out, entry{id: id, base: base, blob: Encode(id, sections)})
	sort.SliceStable(out, func(i, j int) bool { return out[i].id < out[j].id })
	if err := s.save(out); err != nil {
		return fmt.Errorf("checkpoint %d: %w", id, err)
	}
	s.written = true
	return nil
}

// Read loads checkpoint id; a damaged entry wraps ErrCorrupt.
func (s *Store) Read(id uint64) ([]Section, error) {
	es, lerr := s.load()
	secs, _, err := readLink(es, lerr, s.EventLogPath(), id)
	return secs, err
}

// readLink decodes the entry of checkpoint id among es (what load read,
// with lerr if it could not read all of path) and says which chain it is
// on.
func readLink(es []entry, lerr error, path string, id uint64) ([]Section, uint64, error) {
	for _, e := range es {
		if e.id != id {
			continue
		}
		got, secs, err := Decode(e.blob)
		if err != nil {
			return nil, 0, fmt.Errorf("checkpoint %d (%s): %w", id, path, err)
		}
		if got != id {
			return nil, 0, fmt.Errorf("checkpoint %d (%s): %w: its entry holds checkpoint %d", id, path, ErrCorrupt, got)
		}
		return secs, e.base, nil
	}
	if lerr != nil {
		return nil, 0, fmt.Errorf("checkpoint %d: %w", id, lerr)
	}
	return nil, 0, &MissingError{ID: id, Path: path, Empty: len(es) == 0}
}

// MissingError says a checkpoint is not in the event log at all (as
// opposed to damaged there). It matches fs.ErrNotExist with errors.Is.
type MissingError struct {
	ID    uint64
	Path  string // the event log's file
	Empty bool   // the event log holds no checkpoint (or there is none)
}

func (e *MissingError) Error() string {
	if e.Empty {
		return fmt.Sprintf("checkpoint %d: the event log %s holds no checkpoint (missing or empty)", e.ID, e.Path)
	}
	return fmt.Sprintf("checkpoint %d is not in the event log %s", e.ID, e.Path)
}

// Is makes errors.Is(err, fs.ErrNotExist) hold.
func (e *MissingError) Is(target error) bool { return target == fs.ErrNotExist }

// Written lists the checkpoints the event log holds an entry of, in the
// log's order, and what cut the reading short (wrapping ErrCorrupt), if
// anything. Whether each one reads whole is Load's to say.
func (s *Store) Written() ([]uint64, error) {
	es, err := s.load()
	ids := make([]uint64, len(es))
	for i, e := range es {
		ids[i] = e.id
	}
	return ids, err
}

// NewestWhole reads the event log once and returns the newest of ids
// (oldest first) whose chain reads whole (every link present and intact;
// the state is not built); skipped says why the newer ones
// did not (the first few, then how many more), ok is false when none
// does. err is a failure to read (not damage).
func (s *Store) NewestWhole(ids []uint64) (id uint64, skipped []error, ok bool, err error) {
	es, lerr := s.load()
	if lerr != nil && !errors.Is(lerr, ErrCorrupt) {
		return 0, nil, false, lerr
	}
	const keep = 3
	n := 0
	for i := len(ids) - 1; i >= 0; i-- {
		if _, _, err := chainLinks(es, lerr, s.EventLogPath(), ids[i]); err == nil {
			ok, id = true, ids[i]
			break
		} else if n++; n <= keep {
			skipped = append(skipped, err)
		}
	}
	if n > keep {
		skipped = append(skipped, fmt.Errorf("and %d more", n-keep))
	}
	return id, skipped, ok, nil
}

// SetAsideIDs renames a damaged committed-checkpoints file out of the
// way (to the same name with ".damaged" added, replacing an older one)
// and returns its new path: the next Commit starts a new list.
func (s *Store) SetAsideIDs() (string, error) {
	to := s.IDsPath() + ".damaged"
	if err := os.Rename(s.IDsPath(), to); err != nil {
		return "", fmt.Errorf("set the damaged %s aside: %w", s.IDsPath(), err)
	}
	return to, nil
}

// IDsFileSize is the size of the committed-checkpoints file (0 if there
// is none): a size that is not a whole number of 16-byte records tells
// of damage (or of a record cut short by a crash).
func (s *Store) IDsFileSize() int64 {
	st, err := os.Stat(s.IDsPath())
	if err != nil {
		return 0
	}
	return st.Size()
}

// Load returns the whole state of checkpoint id: its chain's whole
// snapshot with every link up to id applied. A missing or damaged entry
// on the chain fails it (wrapping ErrCorrupt when damaged); base is the
// chain's start.
func (s *Store) Load(id uint64) (im *Image, base uint64, err error) {
	es, lerr := s.load()
	return loadChain(es, lerr, s.EventLogPath(), id)
}

func loadChain(es []entry, lerr error, path string, id uint64) (im *Image, base uint64, err error) {
	links, base, err := chainLinks(es, lerr, path, id)
	if err != nil {
		return nil, 0, err
	}
	im = NewImage()
	for i := len(links) - 1; i >= 0; i-- {
		part, err := ImageOf(links[i])
		if err != nil {
			return nil, 0, fmt.Errorf("checkpoint %d: %w", id, err)
		}
		im.Merge(part, i == len(links)-1)
	}
	return im, base, nil
}

// chainLinks reads (and checks) every link of checkpoint id's chain,
// newest first, without building its state.
func chainLinks(es []entry, lerr error, path string, id uint64) (links [][]Section, base uint64, err error) {
	secs, base, err := readLink(es, lerr, path, id)
	if err != nil {
		return nil, 0, err
	}
	if base > id {
		return nil, 0, fmt.Errorf("checkpoint %d: %w: its chain starts later, at %d", id, ErrCorrupt, base)
	}
	links = [][]Section{secs}
	for at := id; at > base; {
		at--
		ls, lb, err := readLink(es, lerr, path, at)
		if err != nil {
			return nil, 0, fmt.Errorf("checkpoint %d builds on %d: %w", id, at, err)
		}
		if lb != base {
			return nil, 0, fmt.Errorf("checkpoint %d builds on %d, which is on another chain (%d, not %d): %w", id, at, lb, base, ErrCorrupt)
		}
		links = append(links, ls)
	}
	return links, base, nil
}

// LatestImage is Latest for chains: the newest committed checkpoint
// whose chain reads whole, as an image. It reads the event log from the
// disk, not what this Store last wrote.
func (s *Store) LatestImage() (r Record, im *Image, skipped []error, ok bool, err error) {
	recs, err := s.Committed()
	if err != nil {
		return Record{}, nil, nil, false, err
	}
	es, lerr := s.load()
	if lerr != nil && !errors.Is(lerr, ErrCorrupt) {
		// Not damage but a failure to read (the directory or the file):
		// falling back to an older checkpoint would hide it.
		return Record{}, nil, nil, false, lerr
	}
	for i := len(recs) - 1; i >= 0; i-- {
		img, _, lerr := loadChain(es, lerr, s.EventLogPath(), recs[i].ID)
		if lerr == nil {
			return recs[i], img, skipped, true, nil
		}
		skipped = append(skipped, lerr)
	}
	return Record{}, nil, skipped, false, nil
}

// Commit appends a committed checkpoint to the ids file and syncs it.
func (s *Store) Commit(r Record) error {
	f, err := os.OpenFile(s.IDsPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("commit checkpoint %d: %w", r.ID, err)
	}
	// A last record cut short by a crash is not part of the list: the
	// new one goes in its place, not after it (which would misalign
	// every record from then on).
	if st, err := f.Stat(); err == nil && st.Size()%16 != 0 {
		if err := f.Truncate(st.Size() - st.Size()%16); err != nil {
			f.Close()
			return fmt.Errorf("commit checkpoint %d: cut the torn record of %s: %w", r.ID, s.IDsPath(), err)
		}
	}
	var rec [16]byte
	binary.BigEndian.PutUint64(rec[:8], r.ID)
	binary.BigEndian.PutUint64(rec[8:], r.Rollback)
	_, err = f.Write(rec[:])
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("commit checkpoint %d: %w", r.ID, err)
	}
	return nil
}

// FloorPath is the file SetFloor writes.
func (s *Store) FloorPath() string { return filepath.Join(s.dir, s.base+floorSuffix) }

// SetFloor records that no rollback may return to checkpoint id or an
// older one (the cluster grew or shrank after it: its partitions were
// elsewhere then). Written atomically, with a checksum.
func (s *Store) SetFloor(id uint64) error {
	b := binary.BigEndian.AppendUint64(nil, id)
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	if err := writeAtomic(s.FloorPath(), b); err != nil {
		return fmt.Errorf("record the rescale floor %d: %w", id, err)
	}
	return nil
}

// Floor returns what SetFloor recorded last (0 if nothing); a damaged
// file wraps ErrCorrupt.
func (s *Store) Floor() (uint64, error) {
	b, err := os.ReadFile(s.FloorPath())
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("rescale floor: %w", err)
	}
	if len(b) != 12 || crc32.Checksum(b[:8], castagnoli) != binary.BigEndian.Uint32(b[8:]) {
		return 0, fmt.Errorf("rescale floor %s: %w", s.FloorPath(), ErrCorrupt)
	}
	return binary.BigEndian.Uint64(b), nil
}

// Committed lists the committed checkpoints, oldest first. A last record
// cut short by a crash is left out (it was never committed).
func (s *Store) Committed() ([]Record, error) {
	b, err := os.ReadFile(s.IDsPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("committed checkpoints: %w", err)
	}
	// The timeline as it stands: a record whose id is not above the one
	// before it is a rollback to it, which abandons the checkpoints
	// committed after it.
	var out []Record
	for len(b) >= 16 {
		r := Record{ID: binary.BigEndian.Uint64(b), Rollback: binary.BigEndian.Uint64(b[8:])}
		for len(out) > 0 && out[len(out)-1].ID >= r.ID {
			out = out[:len(out)-1]
		}
		out = append(out, r)
		b = b[16:]
	}
	return out, nil
}

// Prune drops from the event log the entries of all but the newest keep
// committed checkpoints (keeping every entry on their chains), and those
// of checkpoints written but never committed that are older than the
// newest committed one. The log is rewritten only when it loses an entry.
func (s *Store) Prune(keep int) error {
	recs, err := s.Committed()
	if err != nil {
		return err
	}
	es, err := s.current()
	if err != nil {
		return err
	}
	baseOf := map[uint64]uint64{}
	for _, e := range es {
		baseOf[e.id] = e.base
	}
	type span struct{ from, to uint64 }
	var kept []span
	seen := map[uint64]bool{}
	var newest uint64
	if len(recs) > 0 {
		newest = recs[len(recs)-1].ID
	}
	for i := len(recs) - 1; i >= 0 && len(seen) < keep; i-- {
		id := recs[i].ID
		if seen[id] {
			continue
		}
		seen[id] = true
		if b, ok := baseOf[id]; ok {
			kept = append(kept, span{b, id})
		}
	}
	if len(kept) == 0 && len(recs) > 0 {
		// None of the committed checkpoints is in the log: the list and
		// the log disagree (a damaged list). Dropping everything would
		// leave nothing to recover from; keep it all.
		return nil
	}
	out := es[:0:0]
	for _, e := range es {
		keepIt := e.id > newest // one being taken now
		for _, k := range kept {
			if e.base == k.from && e.id >= k.from && e.id <= k.to {
				keepIt = true
			}
		}
		if keepIt {
			out = append(out, e)
		}
	}
	if len(out) == len(es) {
		return nil
	}
	return s.save(out)
}

// RemoveAll deletes every checkpoint file of this worker (a clean
// shutdown, spec 3.8).
func (s *Store) RemoveAll() error {
	var errs []error
	paths := []string{filepath.Join(s.dir, s.base+evlogSuffix), s.IDsPath(), s.IDsPath() + ".damaged", s.FloorPath()}
	names, err := s.rotatedNames()
	if err != nil {
		errs = append(errs, err)
	}
	for _, name := range names {
		paths = append(paths, filepath.Join(s.dir, name))
	}
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	s.cache, s.cached, s.intact = nil, false, false
	s.path, s.offset, s.size, s.grown, s.written = "", 0, 0, 0, false
	errs = append(errs, s.removeMatching(func(name string) bool {
		return strings.HasPrefix(name, s.base+legacyPart)
	}))
	errs = append(errs, s.RemoveTemps())
	return errors.Join(errs...)
}

// RemoveTemps deletes the temporary files of writes a crash cut short,
// and event log files older than the current one (a crash between a
// rotation's new file and the removal of the old): they are never read.
func (s *Store) RemoveTemps() error {
	if err := s.resolve(); err != nil {
		return err
	}
	current := filepath.Base(s.path)
	return s.removeMatching(func(name string) bool {
		if _, rotated := s.rotatedOffset(name); (rotated || name == s.base+evlogSuffix) && name != current {
			return true
		}
		if t, ok := strings.CutSuffix(name, ".tmp"); ok {
			if _, rotated := s.rotatedOffset(t); rotated {
				return true
			}
		}
		return name == s.base+evlogSuffix+".tmp" || name == s.base+floorSuffix+".tmp" ||
			strings.HasPrefix(name, s.base+legacyPart) && strings.HasSuffix(name, ".tmp")
	})
}

// removeMatching removes the files of dir whose names match.
func (s *Store) removeMatching(match func(string) bool) error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("list checkpoints in %s: %w", s.dir, err)
	}
	var errs []error
	for _, e := range entries {
		if match(e.Name()) {
			if err := os.Remove(filepath.Join(s.dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// entry is one checkpoint in the event log: its id, its chain's start
// and its snapshot as Encode laid it out (with its own checksum).
type entry struct {
	id, base uint64
	blob     []byte
}

// The event log's layout: evlogMagic, a uint16 version, then entries,
// each a frame (uint64 id, uint64 base, uint32 length, and the CRC-32C
// of those 20 bytes) followed by length bytes of snapshot.
const (
	evlogMagic   = "MEVL"
	evlogVersion = 1
	frameLen     = 8 + 8 + 4 + 4
)

// load reads the event log from the disk: no file is no entries. What
// cannot be read (a damaged header or frame, a cut) wraps ErrCorrupt,
// with the entries before it.
func (s *Store) load() ([]entry, error) {
	if err := s.resolve(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		s.size = 0
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read event log: %w", err)
	}
	s.size = int64(len(b))
	return parseLog(b, s.path)
}

// loadCached reads the event log for current: the first read also
// sets where its growth is counted from.
func (s *Store) loadCached() ([]entry, error) {
	es, err := s.load()
	s.grown = 0
	return es, err
}

// parseLog splits an event log into its entries.
func parseLog(b []byte, path string) ([]entry, error) {
	if len(b) < 6 || string(b[:4]) != evlogMagic {
		return nil, fmt.Errorf("%w: %s does not start as an event log", ErrCorrupt, path)
	}
	if v := binary.BigEndian.Uint16(b[4:]); v != evlogVersion {
		return nil, fmt.Errorf("%w: %s is of format version %d; this build reads version %d", ErrCorrupt, path, v, evlogVersion)
	}
	var es []entry
	for rest := b[6:]; len(rest) > 0; {
		if len(rest) < frameLen {
			return es, fmt.Errorf("%w: %s: %d bytes after entry %d, too few for an entry", ErrCorrupt, path, len(rest), len(es))
		}
		f := rest[:frameLen]
		if crc32.Checksum(f[:20], castagnoli) != binary.BigEndian.Uint32(f[20:]) {
			return es, fmt.Errorf("%w: %s: the frame of entry %d is damaged; it and the entries after it are lost", ErrCorrupt, path, len(es)+1)
		}
		n := uint64(binary.BigEndian.Uint32(f[16:]))
		if n > uint64(len(rest)-frameLen) {
			return es, fmt.Errorf("%w: %s: entry %d is cut short", ErrCorrupt, path, len(es)+1)
		}
		es = append(es, entry{id: binary.BigEndian.Uint64(f), base: binary.BigEndian.Uint64(f[8:]), blob: rest[frameLen : frameLen+n]})
		rest = rest[frameLen+n:]
	}
	return es, nil
}

// current is the event log as this Store last wrote it, read from the
// disk the first time (what cannot be read is left out: it is lost for
// reading too).
func (s *Store) current() ([]entry, error) {
	if s.cached {
		return s.cache, nil
	}
	es, err := s.loadCached()
	if err != nil && !errors.Is(err, ErrCorrupt) {
		return nil, err
	}
	s.cache, s.cached, s.intact = es, true, err == nil
	return es, nil
}

// appendEntry appends e to the event log (intact, with entries) and
// fsyncs it.
func (s *Store) appendEntry(e entry) error {
	if err := s.resolve(); err != nil {
		return err
	}
	s.intact = false // until the append is known whole
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("append to event log: %w", err)
	}
	b := appendFrame(make([]byte, 0, frameLen+len(e.blob)), e)
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("append to event log %s: %w", s.path, err)
	}
	e.blob = b[frameLen:]
	s.cache = append(s.cache, e)
	s.intact = true
	s.resized(s.size + int64(len(b)))
	return nil
}

// resized records that a write left the event log's current file n
// bytes long.
func (s *Store) resized(n int64) {
	if n > s.size {
		s.grown += n - s.size
	}
	s.size = n
}

// appendFrame appends e's frame and snapshot to b.
func appendFrame(b []byte, e entry) []byte {
	f := binary.BigEndian.AppendUint64(nil, e.id)
	f = binary.BigEndian.AppendUint64(f, e.base)
	f = binary.BigEndian.AppendUint32(f, uint32(len(e.blob)))
	f = binary.BigEndian.AppendUint32(f, crc32.Checksum(f, castagnoli))
	return append(append(b, f...), e.blob...)
}

// save writes es as the whole event log, atomically.
func (s *Store) save(es []entry) error {
	if err := s.resolve(); err != nil {
		return err
	}
	return s.saveTo(s.path, es)
}

// saveTo writes es as the whole event log to path (the current file, or
// the next one of a rotation), atomically; the cache holds them after.
func (s *Store) saveTo(path string, es []entry) error {
	n := 6
	for _, e := range es {
		n += frameLen + len(e.blob)
	}
	b := make([]byte, 0, n)
	b = append(b, evlogMagic...)
	b = binary.BigEndian.AppendUint16(b, evlogVersion)
	for _, e := range es {
		b = appendFrame(b, e)
	}
	s.cache, s.cached, s.intact = nil, false, false
	werr := writeAtomic(path, b)
	var unsynced *dirSyncError
	if werr != nil && !errors.As(werr, &unsynced) {
		return fmt.Errorf("write event log %s: %w", path, werr)
	}
	// The file holds b now (only its directory entry may not be on the
	// disk yet, if unsynced). The entries alias b from now on, not the
	// callers' slices.
	s.resized(int64(len(b)))
	es2, err := parseLog(b, path)
	if err != nil {
		return err
	}
	s.cache, s.cached, s.intact = es2, true, true
	if werr != nil {
		return fmt.Errorf("write event log %s: %w", path, werr)
	}
	return nil
}

// writeAtomic writes data to path through a temporary file: written,
// fsynced, renamed over path, and the directory fsynced.
func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return &dirSyncError{err}
	}
	return nil
}

// syncDir fsyncs a directory (a variable: tests make it fail).
var syncDir = defaultSyncDir

func defaultSyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// dirSyncError is writeAtomic's error when the file is written, synced
// and renamed into place, but its directory could not be synced: the new
// contents are what the path holds now (a crash of the process loses
// nothing; a power cut might bring the old ones back).
type dirSyncError struct{ err error }

func (e *dirSyncError) Error() string {
	return fmt.Sprintf("written and renamed into place, but the directory is not synced: %v", e.err)
}

func (e *dirSyncError) Unwrap() error { return e.err }
