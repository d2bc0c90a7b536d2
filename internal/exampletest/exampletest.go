// Package exampletest builds and runs the programs under examples/ from
// their tests, as a user would run them.
package exampletest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Build compiles the example in the current directory and returns the
// binary's path.
func Build(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(mustGetwd(t)))
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// Command returns a command for the built example, with an environment
// that spares its processes the race detector's exit delay.
func Command(bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	return cmd
}

// Run builds and runs the example, fails the test if it fails, and returns
// its combined output.
func Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := Command(Build(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("example failed: %v\n%s", err, out)
	}
	return string(out)
}

// Expect fails the test unless output contains every one of wants.
func Expect(t testing.TB, output string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(output, w) {
			t.Errorf("output lacks %q", w)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", output)
	}
}

func mustGetwd(t testing.TB) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}
