package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/proctest"
)

// TestPsShowsALibraryTree: a program that opens its nursery WithControl is
// listed by arbor ps --tree, actor under actor, and arbor stop stops one of
// its actors by name.
func TestPsShowsALibraryTree(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "librarytree")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/librarytree").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	runtime := filepath.Join(dir, "run") // a control directory of the test's own
	if err := os.Mkdir(runtime, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_RUNTIME_DIR", runtime)
	prog := exec.Command(bin)
	prog.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	out, err := prog.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := prog.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		prog.Process.Signal(syscall.SIGTERM)
		prog.Wait()
	}()
	var line string
	proctest.Within(t, 30*time.Second, "the tree to start", func() { line, _ = bufio.NewReader(out).ReadString('\n') })
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("the program said %q", line)
	}
	stdout, stderr, code := arbor(t, "", "ps", "--tree")
	if code != 0 {
		t.Fatalf("arbor ps --tree: status %d\n%s", code, stderr)
	}
	host, _ := os.Hostname()
	for _, want := range []string{"root ", "  root.pool ", "    root.pool.worker ", host, "RUNNING"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("arbor ps --tree does not show %q:\n%s", want, stdout)
		}
	}
	if _, stderr, code := arbor(t, "", "stop", "root.pool.worker"); code != 0 {
		t.Fatalf("arbor stop root.pool.worker: status %d\n%s", code, stderr)
	}
	proctest.Eventually(t, 20*time.Second, "the worker to leave the tree", func() bool {
		stdout, _, _ := arbor(t, "", "ps", "--tree")
		return !strings.Contains(stdout, "root.pool.worker")
	})
}
