package host

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/wallaroo-go/machida/pyapi"
)

// extractAPI writes the embedded wallaroo package to a directory keyed by
// its content hash (under the user's cache directory, else the temporary
// directory) and returns the directory to put on sys.path. An existing
// complete copy is reused; a new one is written aside and renamed into
// place, so concurrent workers never see a half-written package.
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
		if _, err := os.Stat(filepath.Join(dir, "wallaroo", "__init__.py")); err == nil {
			return dir, nil
		}
		if err := writeAPI(dir); err != nil {
			lastErr = err
			continue
		}
		return dir, nil
	}
	return "", fmt.Errorf("write the wallaroo package for the interpreter: %w", lastErr)
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
