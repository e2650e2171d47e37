package pyapi

import (
	"io/fs"
	"os/exec"
	"slices"
	"testing"
)

// TestUnittestSuite runs the wallaroo package's own unittest suite with the
// python3 on PATH, so `go test ./...` covers the Python API too.
func TestUnittestSuite(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not on PATH")
	}
	cmd := exec.Command(py, "-m", "unittest", "discover", "-s", "wallaroo/tests", "-t", ".")
	cmd.Env = append(cmd.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s -m unittest failed: %v\n%s", py, err, out)
	}
	t.Logf("%s", out)
}

func TestEmbeddedFiles(t *testing.T) {
	var names []string
	fs.WalkDir(Files, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, p)
		}
		return err
	})
	for _, want := range []string{"wallaroo/__init__.py", "wallaroo/_runner.py", "wallaroo/experimental/__init__.py"} {
		if !slices.Contains(names, want) {
			t.Errorf("embedded files %v lack %s", names, want)
		}
	}
	for _, n := range names {
		if slices.Contains([]string{"tests"}, n) {
			t.Errorf("tests embedded: %s", n)
		}
	}
}
