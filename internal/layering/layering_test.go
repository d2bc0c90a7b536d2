// Package layering holds a test that keeps arbor's packages in their
// dependency order: protocol <- ipc <- spawn <- nursery <- supervisor <- cmd.
package layering

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/arbor-go/arbor"

// layers lists arbor's packages from the bottom up; a package may import
// only packages of lower layers (and internal helpers).
var layers = []string{"protocol", "ipc", "spawn", "nursery", "supervisor", "cmd"}

func layerOf(pkg string) int {
	rel := strings.TrimPrefix(pkg, module+"/")
	for i, l := range layers {
		if rel == l || strings.HasPrefix(rel, l+"/") {
			return i
		}
	}
	return -1
}

func TestLowerPackagesNeverImportHigherOnes(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-test=false", "-f",
		`{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || !strings.HasPrefix(fields[0], module) {
			continue
		}
		from := layerOf(fields[0])
		if from < 0 {
			continue
		}
		checked++
		for _, imp := range fields[1:] {
			if to := layerOf(imp); to > from {
				t.Errorf("%s imports %s: %s sits below %s", fields[0], imp, layers[from], layers[to])
			}
		}
	}
	if checked == 0 {
		t.Fatal("no arbor package was checked")
	}
}

func TestLayerOf(t *testing.T) {
	for pkg, want := range map[string]int{
		module + "/protocol":      0,
		module + "/ipc":           1,
		module + "/cmd/arbor":     5,
		module + "/internal/x":    -1,
		module + "/protocolextra": -1,
	} {
		if got := layerOf(pkg); got != want {
			t.Errorf("layerOf(%s) = %d, want %d", pkg, got, want)
		}
	}
}
