package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/proctest"
)

// app is one arbor supervise run in a directory of its own, with a TMPDIR
// of the test's, so that default control sockets never meet the user's.
type app struct {
	t        *testing.T
	dir, tmp string
	cmd      *exec.Cmd
	out, err *proctest.Buffer
}

// startApp writes files into a new directory and runs arbor supervise
// there with args (the spec file last, or none).
func startApp(t *testing.T, tmp string, files map[string]string, args ...string) *app {
	t.Helper()
	a := &app{t: t, dir: t.TempDir(), tmp: tmp, out: &proctest.Buffer{}, err: &proctest.Buffer{}}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(a.dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	a.cmd = exec.Command(arborBin, append([]string{"supervise"}, args...)...)
	a.cmd.Dir, a.cmd.Env = a.dir, append(os.Environ(), "TMPDIR="+tmp)
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.err
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if a.cmd.ProcessState == nil {
			a.cmd.Process.Kill()
			a.cmd.Wait()
		}
	})
	return a
}

// ctl runs an arbor control command in dir with the app's TMPDIR.
func (a *app) ctl(dir string, args ...string) (string, string, int) {
	a.t.Helper()
	cmd := exec.Command(arborBin, args...)
	cmd.Dir, cmd.Env = dir, append(os.Environ(), "TMPDIR="+a.tmp)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	var err error
	proctest.Within(a.t, 30*time.Second, "arbor "+strings.Join(args, " "), func() { err = cmd.Run() })
	return out.String(), errOut.String(), exitCode(a.t, err)
}

// states runs arbor ps in dir and returns each child's state, or nil if
// ps fails (the app is not listening yet, say).
func (a *app) states(dir string) map[string]string {
	a.t.Helper()
	text, _, code := a.ctl(dir, "ps")
	if code != 0 {
		return nil
	}
	rows := map[string]string{}
	lines := strings.Split(strings.TrimSpace(text), "\n")
	multi := strings.HasPrefix(lines[0], "APP")
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if multi {
			rows[f[0]+"/"+f[1]] = f[3]
		} else {
			rows[f[0]] = f[2]
		}
	}
	return rows
}

// A Procfile's crash-looping process is marked FATAL alone; a one-shot
// process that exits 0 is done, not restarted into a give-up; the others
// keep running, and arbor restart revives the fatal one (issue 11, item 3).
func TestProcfileCrashLoopIsFatalAlone(t *testing.T) {
	a := startApp(t, t.TempDir(), map[string]string{"Procfile": "steady: echo steady up; exec sleep 30\nonce: echo done\ncrash: echo crashing; exit 3\n"}, "Procfile")
	proctest.Eventually(t, 15*time.Second, "crash FATAL", func() bool {
		st := a.states(a.dir)
		return st["crash"] == "FATAL" && st["once"] == "STOPPED" && st["steady"] == "RUNNING"
	})
	if a.cmd.ProcessState != nil {
		t.Fatal("supervise ended")
	}
	log := a.err.String()
	if strings.Contains(log, "restarting once") || strings.Contains(log, "gave up") {
		t.Fatalf("the one-shot process was restarted, or the app gave up:\n%s", log)
	}
	if _, stderr, code := a.ctl(a.dir, "restart", "crash"); code != 0 {
		t.Fatalf("restart: %d %s", code, stderr)
	}
	proctest.Eventually(t, 15*time.Second, "crash FATAL again after its revival", func() bool {
		return strings.Count(a.err.String(), "fatal crash") == 2
	})
	if code := interruptAndWait(t, a.cmd); code != 130 {
		t.Fatalf("status %d\n%s", code, a.err)
	}
}

// Two apps in two directories run at once, each with a control socket of
// its own; ps finds the one of the current directory's Procfile, lists
// every app elsewhere, and says "not running" for one that was killed
// (issue 11, item 4).
func TestTwoAppsAtOnce(t *testing.T) {
	tmp := t.TempDir()
	one := startApp(t, tmp, map[string]string{"Procfile": "web: echo one up; exec sleep 30\n"}, "Procfile")
	two := startApp(t, tmp, map[string]string{"Procfile": "worker: echo two up; exec sleep 30\n"}, "Procfile")
	proctest.Eventually(t, 15*time.Second, "both apps up", func() bool {
		return strings.Contains(one.out.String(), "one up") && strings.Contains(two.out.String(), "two up")
	})
	proctest.Eventually(t, 15*time.Second, "both apps listening", func() bool {
		return one.states(one.dir) != nil && two.states(two.dir) != nil
	})
	if st := one.states(one.dir); len(st) != 1 || st["web"] != "RUNNING" {
		t.Fatalf("ps in the first app's directory: %v", st)
	}
	if st := two.states(two.dir); len(st) != 1 || st["worker"] != "RUNNING" {
		t.Fatalf("ps in the second app's directory: %v", st)
	}
	elsewhere := t.TempDir()
	if st := one.states(elsewhere); len(st) != 2 {
		t.Fatalf("ps elsewhere lists %v, want both apps", st)
	}
	// One app killed outright leaves its socket behind.
	two.cmd.Process.Signal(syscall.SIGKILL)
	two.cmd.Wait()
	_, stderr, code := two.ctl(two.dir, "ps")
	if code != 1 || !strings.Contains(stderr, "not running") {
		t.Fatalf("ps for a killed app: status %d, %q", code, stderr)
	}
	if st := one.states(elsewhere); len(st) != 1 {
		t.Fatalf("ps elsewhere after the kill lists %v, want the live app", st)
	}
	if code := interruptAndWait(t, one.cmd); code != 130 {
		t.Fatalf("status %d\n%s", code, one.err)
	}
}
