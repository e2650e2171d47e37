// Package archtest checks the import rules of ARCHITECTURE.md with go list:
// bridge imports nothing of ours, the engine never imports bridge or host,
// the binaries are thin, the end-to-end tests are black-box, and cgo
// appears only in bridge.
package archtest

import (
	"encoding/json"
	"io"
	"os/exec"
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

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
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
	for _, p := range listPackages(t) {
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
			if len(all) > 0 {
				t.Errorf("%s imports %v; end-to-end tests are black-box", name, all)
			}
		}
	}
}
