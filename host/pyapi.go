package host

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/wallaroo-go/machida/pyapi"
)

// extractAPI writes the embedded wallaroo package to a directory keyed by
// its content hash (under the user's cache directory, else the temporary
// directory) and returns the directory to put on sys.path. An existing copy
// is reused only if it is ours and byte for byte the embedded one; a new
// one is written aside and renamed into place, so concurrent workers never
// see a half-written package.
func extractAPI() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(pyapi.Files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := pyapi.Files.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("read embedded wallaroo package: %w", err)
	}
	name := "pyapi-" + hex.EncodeToString(h.Sum(nil))[:16]
	var lastErr error
	for _, base := range cacheBases() {
		dir := filepath.Join(base, "machida", name)
		if sameAsEmbedded(dir) {
			return dir, nil
		}
		if ownedByMe(dir) {
			os.RemoveAll(dir) // our own copy, damaged: write it again
		}
		if err := writeAPI(dir); err == nil && sameAsEmbedded(dir) {
			return dir, nil
		} else if err != nil {
			lastErr = err
		}
	}
	// No shared copy we can trust (e.g. someone else's in /tmp): use a
	// private directory of our own.
	base, err := os.MkdirTemp("", "machida-pyapi-")
	if err != nil {
		return "", fmt.Errorf("write the wallaroo package for the interpreter: %w", errors.Join(lastErr, err))
	}
	dir := filepath.Join(base, name)
	if err := writeAPI(dir); err != nil {
		return "", fmt.Errorf("write the wallaroo package for the interpreter: %w", err)
	}
	return dir, nil
}

// sameAsEmbedded reports whether dir holds exactly the embedded files and
// is owned by this user and not writable by others, so that code found
// there (possibly under a shared /tmp) is ours.
func sameAsEmbedded(dir string) bool {
	if !ownedByMe(dir) {
		return false
	}
	ok := true
	err := fs.WalkDir(pyapi.Files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !ok {
			return err
		}
		target := filepath.Join(dir, filepath.FromSlash(p))
		if !ownedByMe(target) {
			ok = false
			return nil
		}
		if d.IsDir() {
			return nil
		}
		want, err := pyapi.Files.ReadFile(p)
		if err != nil {
			return err
		}
		got, err := os.ReadFile(target)
		if err != nil || !bytes.Equal(got, want) {
			ok = false
		}
		return nil
	})
	return err == nil && ok
}

func ownedByMe(path string) bool {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&os.ModeSymlink != 0 || fi.Mode().Perm()&0o022 != 0 {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Getuid()
}

func cacheBases() []string {
	var bases []string
	if d, err := os.UserCacheDir(); err == nil {
		bases = append(bases, d)
	}
	return append(bases, os.TempDir())
}

func writeAPI(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".tmp-pyapi-")
	if err != nil {
		return err
	}
	err = fs.WalkDir(pyapi.Files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(tmp, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := pyapi.Files.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err == nil {
		err = os.Rename(tmp, dir)
		if err != nil {
			if _, statErr := os.Stat(filepath.Join(dir, "wallaroo", "__init__.py")); statErr == nil {
				err = nil // another worker won the race
			}
		}
	}
	if err != nil {
		os.RemoveAll(tmp)
		return err
	}
	return nil
}
