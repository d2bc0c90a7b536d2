package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestTreeDemo builds the demo and runs it as a user would.
func TestTreeDemo(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "treedemo")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out)
	}
	for _, want := range []string{
		"started root.worker-1", "started root.worker-2",
		"root.worker-2 streamed 25",
		"relayed 25 from root.worker-1.helper",
		`call failed in root.worker-2: type *fmt.wrapError, message "divide 42 by zero: division error"`,
		"call failed because root.worker-2 crashed: status 2, panic: worker-2 hit a bug",
		"stopped root.worker-1: exited cleanly",
		"stopped root.worker-2: actor root.worker-2",
		"processes left behind: 0",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}
