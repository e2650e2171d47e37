package pyapi

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// interpreters returns the python3 on PATH and every interpreter from 2.7
// and 3.8 to 3.13 under $PYENV_ROOT (or ~/.pyenv), by path.
func interpreters() []string {
	var out []string
	if p, err := exec.LookPath("python3"); err == nil {
		out = append(out, p)
	}
	root := os.Getenv("PYENV_ROOT")
	if root == "" {
		if home, err := os.UserHomeDir(); err == nil {
			root = filepath.Join(home, ".pyenv")
		}
	}
	for _, v := range []string{"2.7", "3.8", "3.9", "3.10", "3.11", "3.12", "3.13"} {
		matches, _ := filepath.Glob(filepath.Join(root, "versions", v+".*", "bin", "python"))
		out = append(out, matches...)
	}
	return out
}

// TestUnittestSuite runs the wallaroo package's own unittest suite under
// every interpreter found, so `go test ./...` covers the Python API on
// Python 2.7 and 3.x alike.
func TestUnittestSuite(t *testing.T) {
	pys := interpreters()
	if len(pys) == 0 {
		t.Skip("no Python interpreter found")
	}
	for _, py := range pys {
		t.Run(py, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(py, "-m", "unittest", "discover", "-s", "wallaroo/tests", "-t", ".")
			cmd.Env = append(cmd.Environ(), "PYTHONDONTWRITEBYTECODE=1")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s -m unittest failed: %v\n%s", py, err, out)
			}
		})
	}
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
		if strings.Contains(n, "/tests/") {
			t.Errorf("test files must not be embedded: %s", n)
		}
	}
}

// TestPipInstallOffline installs the package into a fresh virtual
// environment with pip, without any package index, and imports it from
// elsewhere: `pip install ./pyapi` must work on a machine with no network.
func TestPipInstallOffline(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: creates a virtual environment")
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not on PATH")
	}
	venv := t.TempDir()
	if out, err := exec.Command(py, "-m", "venv", venv).CombinedOutput(); err != nil {
		t.Skipf("python3 -m venv unavailable: %v\n%s", err, out)
	}
	pip := exec.Command(venv+"/bin/pip", "install", "--no-index", "--disable-pip-version-check", "-q", ".")
	if out, err := pip.CombinedOutput(); err != nil {
		t.Fatalf("pip install --no-index ./pyapi failed: %v\n%s", err, out)
	}
	imp := exec.Command(venv+"/bin/python", "-c",
		"import wallaroo, wallaroo.experimental, wallaroo._runner; print(wallaroo.__file__)")
	imp.Dir = venv
	out, err := imp.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "site-packages") {
		t.Fatalf("installed package not importable: %v\n%s", err, out)
	}
}
