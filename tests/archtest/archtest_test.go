// Package archtest checks the import rules of ARCHITECTURE.md with go list:
// bridge imports nothing of ours, the engine never imports bridge or host,
// the binaries are thin, the end-to-end tests are black-box (they may
// import internal/childproc, how they start processes), and cgo
// appears only in bridge. It lists the module twice, as built for Python 3
// and with -tags py2 (the Python 2.7 build): machida/ has only py2 files,
// so a plain go list drops it, and bridge/ has files of each build.
package archtest

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/wallaroo-go/machida"

type pkg struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
	CgoFiles     []string
}

// builds are the build configurations checked: go list's flags, and the
// packages that configuration must contain.
var builds = []struct {
	name  string
	flags []string
	must  []string
}{
	{"Python 3", nil, []string{"machida3", "bridge", "host"}},
	{"Python 2.7 (-tags py2)", []string{"-tags", "py2"}, []string{"machida", "bridge", "host"}},
}

func listPackages(t *testing.T, flags ...string) []pkg {
	t.Helper()
	args := append(append([]string{"list"}, flags...), "-json", module+"/...")
	cmd := exec.Command("go", args...)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v", strings.Join(args, " "), err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func ours(imports []string) []string {
	var out []string
	for _, i := range imports {
		if strings.HasPrefix(i, module+"/") {
			out = append(out, strings.TrimPrefix(i, module+"/"))
		}
	}
	return out
}

func TestImportRules(t *testing.T) {
	for _, b := range builds {
		t.Run(b.name, func(t *testing.T) {
			pkgs := listPackages(t, b.flags...)
			seen := map[string]bool{}
			for _, p := range pkgs {
				seen[strings.TrimPrefix(p.ImportPath, module+"/")] = true
			}
			for _, want := range b.must {
				if !seen[want] {
					t.Errorf("go list saw no package %s in the %s build; its rules went unchecked", want, b.name)
				}
			}
			checkImports(t, pkgs)
		})
	}
}

// checkImports applies the import rules to the packages of one build.
func checkImports(t *testing.T, pkgs []pkg) {
	t.Helper()
	for _, p := range pkgs {
		name := strings.TrimPrefix(p.ImportPath, module+"/")
		deps := ours(p.Imports)
		all := ours(append(append(append([]string{}, p.Imports...), p.TestImports...), p.XTestImports...))
		if len(p.CgoFiles) > 0 && name != "bridge" {
			t.Errorf("%s uses cgo (%v); only bridge may", name, p.CgoFiles)
		}
		switch {
		case name == "bridge":
			if len(all) > 0 {
				t.Errorf("bridge imports %v; it must import nothing of ours", all)
			}
		case strings.HasPrefix(name, "engine/"):
			for _, d := range all {
				if d == "bridge" || d == "host" || !strings.HasPrefix(d, "engine/") && !strings.HasPrefix(d, "internal/") {
					t.Errorf("%s imports %s; the engine imports only engine and internal packages", name, d)
				}
			}
		case name == "machida3" || name == "machida":
			for _, d := range deps {
				if d != "host" {
					t.Errorf("%s imports %s; a binary imports only host", name, d)
				}
			}
		case strings.HasPrefix(name, "cmd/"):
			for _, d := range all {
				if !strings.HasPrefix(d, "internal/") {
					t.Errorf("%s imports %s; the tools stand alone", name, d)
				}
			}
		case strings.HasPrefix(name, "internal/"):
			if len(all) > 0 {
				t.Errorf("%s imports %v; internal helpers import nothing of ours", name, all)
			}
		case strings.HasPrefix(name, "tests/e2e"):
			// (internal/childproc is how the suite starts processes,
			// not something it tests.)
			if others := slices.DeleteFunc(all, func(d string) bool { return d == "internal/childproc" }); len(others) > 0 {
				t.Errorf("%s imports %v; end-to-end tests are black-box", name, others)
			}
		}
	}
}
