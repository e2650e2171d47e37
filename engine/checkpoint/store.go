// Package checkpoint keeps one worker's checkpoints in --resilience-dir
// (runtime spec 4.2): a snapshot file per checkpoint, written so that a
// crash in the middle of writing never leaves a file that reads as
// complete (temporary file, fsync, rename, fsync of the directory, and a
// CRC-32C over the contents), and 0.6's `<app>-<worker>.checkpoint_ids`
// list of committed checkpoints (16-byte records: checkpoint id, rollback
// id; the last whole record is authoritative).
//
// A Store is the files alone: no goroutines, no timers, no protocol.
// Who takes a checkpoint, when it is complete across the cluster and
// what a section holds are the engine's. Not safe for concurrent use:
// one goroutine (the worker's checkpoint driver) owns a Store.
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
}

// Open returns the store of worker's checkpoints of app in dir (which
// must exist).
func Open(dir, app, worker string) *Store {
	return &Store{dir: dir, base: app + "-" + worker}
}

const (
	magic        = "MCKP"
	version      = 1
	snapshotPart = ".checkpoint-"
	idsSuffix    = ".checkpoint_ids"
	floorSuffix  = ".rescale_floor"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// SnapshotPath is the file of checkpoint id as a whole snapshot (its own
// base); LinkPath that of checkpoint id holding only what changed since
// id-1, on the chain that starts at the whole snapshot base.
func (s *Store) SnapshotPath(id uint64) string { return s.LinkPath(id, id) }

// LinkPath: see SnapshotPath.
func (s *Store) LinkPath(id, base uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%s%s%016x-%016x", s.base, snapshotPart, id, base))
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
	if v := binary.BigEndian.Uint16(body[4:]); v != version {
		return bad("format version %d; this build reads version %d", v, version)
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
// either no file for id or the whole one.
func (s *Store) Write(id uint64, sections []Section) error { return s.WriteLink(id, id, sections) }

// WriteLink stores checkpoint id as a link of the chain that starts at
// the whole snapshot base (base == id: a whole snapshot itself); the
// sections of a link hold what changed since checkpoint id-1. A file of
// the same id written before (a retry, or the future a rollback
// abandoned) is replaced.
func (s *Store) WriteLink(id, base uint64, sections []Section) error {
	// The other file of this id goes first: two files of one id must
	// never be there together.
	files, err := s.snapshots()
	if err != nil {
		return err
	}
	for _, f := range files {
		if f.id == id && f.base != base {
			if err := os.Remove(s.LinkPath(f.id, f.base)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("checkpoint %d: %w", id, err)
			}
		}
	}
	if err := writeAtomic(s.LinkPath(id, base), Encode(id, sections)); err != nil {
		return fmt.Errorf("checkpoint %d: %w", id, err)
	}
	return nil
}

// Read loads checkpoint id; a damaged or torn file wraps ErrCorrupt.
func (s *Store) Read(id uint64) ([]Section, error) {
	secs, _, err := s.readLink(id)
	return secs, err
}

// readLink reads the file of checkpoint id and says which chain it is on.
func (s *Store) readLink(id uint64) ([]Section, uint64, error) {
	files, err := s.snapshots()
	if err != nil {
		return nil, 0, err
	}
	base, found := uint64(0), false
	for _, f := range files {
		if f.id == id {
			base, found = f.base, true
		}
	}
	if !found {
		return nil, 0, fmt.Errorf("checkpoint %d: no file %s: %w", id, s.SnapshotPath(id), fs.ErrNotExist)
	}
	path := s.LinkPath(id, base)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("checkpoint %d: %w", id, err)
	}
	got, secs, err := Decode(b)
	if err != nil {
		return nil, 0, fmt.Errorf("checkpoint %d (%s): %w", id, path, err)
	}
	if got != id {
		return nil, 0, fmt.Errorf("checkpoint %d (%s): %w: it holds checkpoint %d", id, path, ErrCorrupt, got)
	}
	return secs, base, nil
}

// Load returns the whole state of checkpoint id: its chain's whole
// snapshot with every link up to id applied. A missing or damaged file
// on the chain fails it (wrapping ErrCorrupt when damaged); base is the
// chain's start.
func (s *Store) Load(id uint64) (im *Image, base uint64, err error) {
	secs, base, err := s.readLink(id)
	if err != nil {
		return nil, 0, err
	}
	if base > id {
		return nil, 0, fmt.Errorf("checkpoint %d: %w: its chain starts later, at %d", id, ErrCorrupt, base)
	}
	links := [][]Section{secs}
	for at := id; at > base; {
		at--
		ls, lb, err := s.readLink(at)
		if err != nil {
			return nil, 0, fmt.Errorf("checkpoint %d builds on %d: %w", id, at, err)
		}
		if lb != base {
			return nil, 0, fmt.Errorf("checkpoint %d builds on %d, which is on another chain (%d, not %d): %w", id, at, lb, base, ErrCorrupt)
		}
		links = append(links, ls)
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

// LatestImage is Latest for chains: the newest committed checkpoint
// whose chain reads whole, as an image.
func (s *Store) LatestImage() (r Record, im *Image, skipped []error, ok bool, err error) {
	recs, err := s.Committed()
	if err != nil {
		return Record{}, nil, nil, false, err
	}
	for i := len(recs) - 1; i >= 0; i-- {
		img, _, lerr := s.Load(recs[i].ID)
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

// Prune removes the snapshot files of all but the newest keep committed
// checkpoints (keeping every file on their chains), and those of
// checkpoints written but never committed that are older than the newest
// committed one.
func (s *Store) Prune(keep int) error {
	recs, err := s.Committed()
	if err != nil {
		return err
	}
	files, err := s.snapshots()
	if err != nil {
		return err
	}
	baseOf := map[uint64]uint64{}
	for _, f := range files {
		baseOf[f.id] = f.base
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
	var errs []error
	for _, f := range files {
		if f.id > newest {
			continue // one being taken now
		}
		keepIt := false
		for _, k := range kept {
			if f.base == k.from && f.id >= k.from && f.id <= k.to {
				keepIt = true
			}
		}
		if keepIt {
			continue
		}
		if err := os.Remove(s.LinkPath(f.id, f.base)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// RemoveAll deletes every checkpoint file of this worker (a clean
// shutdown, spec 3.8).
func (s *Store) RemoveAll() error {
	files, err := s.snapshots()
	if err != nil {
		return err
	}
	var errs []error
	for _, f := range files {
		if err := os.Remove(s.LinkPath(f.id, f.base)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	for _, p := range []string{s.IDsPath(), s.FloorPath()} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	errs = append(errs, s.RemoveTemps())
	return errors.Join(errs...)
}

// RemoveTemps deletes the temporary files of writes a crash cut short
// (they are never read).
func (s *Store) RemoveTemps() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("list checkpoints in %s: %w", s.dir, err)
	}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, s.base+snapshotPart) && strings.HasSuffix(name, ".tmp") || name == s.base+floorSuffix+".tmp" {
			if err := os.Remove(filepath.Join(s.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// snapFile is one snapshot file: its checkpoint and its chain's start.
type snapFile struct{ id, base uint64 }

// snapshots lists the snapshot files present, by id ascending.
func (s *Store) snapshots() ([]snapFile, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list checkpoints in %s: %w", s.dir, err)
	}
	prefix := s.base + snapshotPart
	var out []snapFile
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, prefix) || strings.HasSuffix(name, ".tmp") {
			continue
		}
		idHex, baseHex, ok := strings.Cut(strings.TrimPrefix(name, prefix), "-")
		if !ok || len(idHex) != 16 || len(baseHex) != 16 {
			continue
		}
		id, err1 := strconv.ParseUint(idHex, 16, 64)
		base, err2 := strconv.ParseUint(baseHex, 16, 64)
		if err1 == nil && err2 == nil {
			out = append(out, snapFile{id, base})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out, nil
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
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
