package host

import (
	"os"
	"path/filepath"
	"testing"
)

func TestExtractAPI_ReusesOnlyAnIntactCopy(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	first, err := extractAPI()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(first, "wallaroo", "_runner.py")); err != nil {
		t.Fatalf("extracted package incomplete: %v", err)
	}
	again, err := extractAPI()
	if err != nil || again != first {
		t.Fatalf("second extract = %q, %v; want the same directory %q", again, err, first)
	}
	// A file changes: that copy is not trusted; ours is written again.
	init := filepath.Join(first, "wallaroo", "__init__.py")
	if err := os.WriteFile(init, []byte("raise SystemExit('injected')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	third, err := extractAPI()
	if err != nil {
		t.Fatal(err)
	}
	if !sameAsEmbedded(third) {
		t.Errorf("new copy %s does not match the embedded files", third)
	}
}
