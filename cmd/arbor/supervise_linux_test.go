package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/proctest"
	"golang.org/x/sys/unix"
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
	return startAppWith(t, tmp, files, nil, args...)
}

// startAppWith is startApp with tweak applied to the command before it
// starts (a terminal, a session, more environment).
func startAppWith(t *testing.T, tmp string, files map[string]string, tweak func(*exec.Cmd), args ...string) *app {
	t.Helper()
	a := &app{t: t, dir: t.TempDir(), tmp: tmp, out: &proctest.Buffer{}, err: &proctest.Buffer{}}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(a.dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	a.cmd = exec.Command(arborBin, append([]string{"supervise"}, args...)...)
	a.cmd.Dir, a.cmd.Env = a.dir, append(os.Environ(), "TMPDIR="+tmp, "XDG_RUNTIME_DIR=")
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.err
	if tweak != nil {
		tweak(a.cmd)
	}
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
	cmd.Dir, cmd.Env = dir, append(os.Environ(), "TMPDIR="+a.tmp, "XDG_RUNTIME_DIR=")
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
	deadline := time.Now().Add(15 * time.Second)
	for strings.Count(a.err.String(), "fatal crash") != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("crash not FATAL again after its revival:\n%s", a.err)
		}
		time.Sleep(time.Millisecond)
	}
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

// openPty opens a pseudo-terminal pair: the master, and the slave to make a
// child's controlling terminal.
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlocking the pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("naming the pty: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("opening the pty slave: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// pidsOf reads the pid files a Procfile's commands write into dir.
func pidsOf(t *testing.T, dir string, names ...string) []int {
	t.Helper()
	var pids []int
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		pids = append(pids, pid)
	}
	return pids
}

// escapingProcfile starts, in each of two processes, a background job and
// a grandchild in a session of its own, and writes every pid to a file.
const escapingProcfile = `bg: echo $$ > bg.pid; sleep 300 & echo $! > bg.job; wait
sid: echo $$ > sid.pid; setsid sh -c 'echo $$ > sid.job; exec sleep 300' & wait
`

var escapedPidFiles = []string{"bg.pid", "bg.job", "sid.pid", "sid.job"}

// escapedPids waits for escapingProcfile's pid files and reads them.
func (a *app) escapedPids() []int {
	a.t.Helper()
	proctest.Eventually(a.t, 15*time.Second, "every pid file", func() bool {
		for _, f := range escapedPidFiles {
			if b, err := os.ReadFile(filepath.Join(a.dir, f)); err != nil || len(b) == 0 {
				return false
			}
		}
		return true
	})
	return pidsOf(a.t, a.dir, escapedPidFiles...)
}

// SIGHUP from a terminal that closed stops every process, grandchildren
// included, removes the control socket and exits 129 (issue 11, item 1).
// Before, arbor died of it at once and left all of them running.
func TestSIGHUPFromTheTerminalStopsEverything(t *testing.T) {
	_, slave := openPty(t)
	tmp := t.TempDir()
	a := startAppWith(t, tmp, map[string]string{"Procfile": escapingProcfile}, func(cmd *exec.Cmd) {
		cmd.Stdin = slave
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	}, "Procfile")
	pids := a.escapedPids()
	proctest.Eventually(t, 15*time.Second, "the control socket", func() bool { return a.states(a.dir) != nil })
	a.cmd.Process.Signal(syscall.SIGHUP)
	var err error
	proctest.Within(t, 20*time.Second, "supervise to stop", func() { err = a.cmd.Wait() })
	if code := exitCode(t, err); code != 129 {
		t.Fatalf("status %d, want 129\n%s", code, a.err)
	}
	for i, pid := range pids {
		proctest.Gone(t, escapedPidFiles[i], pid)
	}
	if socks, _ := filepath.Glob(filepath.Join(tmp, "arborctl-*", "*.sock")); len(socks) != 0 {
		t.Fatalf("control socket left behind: %v", socks)
	}
}

// A daemon's SIGHUP, and arbor reload, re-read the spec: a changed child
// restarts with its new command, an unchanged one keeps running, a new
// one starts, a removed one stops (issue 11, reload).
func TestReload(t *testing.T) {
	a := startAppWith(t, t.TempDir(), map[string]string{
		"Procfile": "keep: echo keep up; exec sleep 300\nchange: echo old command; exec sleep 300\ngo: echo going; exec sleep 300\n"},
		func(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} }, // a daemon: no controlling terminal
		"Procfile")
	dir := a.dir
	procfile := filepath.Join(dir, "Procfile")
	pid := func(name string) string {
		text, _, _ := a.ctl(dir, "ps")
		for _, line := range strings.Split(text, "\n") {
			if f := strings.Fields(line); len(f) > 2 && f[0] == name {
				return f[1]
			}
		}
		return ""
	}
	proctest.Eventually(t, 15*time.Second, "three children up", func() bool {
		return strings.Contains(a.out.String(), "going") && strings.Contains(a.out.String(), "old command") && pid("keep") != ""
	})
	keep := pid("keep")
	os.WriteFile(procfile, []byte("keep: echo keep up; exec sleep 300\nchange: echo new command; exec sleep 300\n"), 0o600)
	a.cmd.Process.Signal(syscall.SIGHUP)
	proctest.Eventually(t, 15*time.Second, "the reload", func() bool {
		return strings.Contains(a.err.String(), "restarted change") && strings.Contains(a.out.String(), "new command")
	})
	if !strings.Contains(a.err.String(), "removed go") || pid("go") != "" {
		t.Fatalf("go was not removed:\n%s", a.err)
	}
	if got := pid("keep"); got != keep {
		t.Fatalf("keep was restarted: pid %s, then %s", keep, got)
	}
	os.WriteFile(procfile, []byte("keep: echo keep up; exec sleep 300\nchange: echo new command; exec sleep 300\nextra: echo extra up; exec sleep 300\n"), 0o600)
	out, stderr, code := a.ctl(dir, "reload")
	if code != 0 || !strings.Contains(out, "added extra") {
		t.Fatalf("arbor reload: %d %q %q", code, out, stderr)
	}
	os.WriteFile(procfile, []byte("keep: broken\nnot a line\n"), 0o600)
	if _, stderr, code := a.ctl(dir, "reload"); code != 1 || !strings.Contains(stderr, "line 2") {
		t.Fatalf("a bad spec: %d %q", code, stderr)
	}
	if got := pid("keep"); got != keep || pid("extra") == "" {
		t.Fatalf("a failed reload changed the tree: keep %s, extra %q", got, pid("extra"))
	}
	if code := interruptAndWait(t, a.cmd); code != 130 {
		t.Fatalf("status %d\n%s", code, a.err)
	}
}

// SIGKILL of arbor supervise: the parent-death signal reaches the direct
// children, and the keeper ends the rest, background jobs and setsid
// grandchildren included, within 2 s (issue 11, item 2). Without cgroups,
// the setsid grandchild survives the SIGKILL but not a normal stop.
func TestSIGKILLLeavesNoDescendant(t *testing.T) {
	for _, cgroups := range []bool{true, false} {
		t.Run(fmt.Sprintf("cgroups=%v", cgroups), func(t *testing.T) {
			a := startAppWith(t, t.TempDir(), map[string]string{"Procfile": escapingProcfile}, func(cmd *exec.Cmd) {
				if !cgroups {
					cmd.Env = append(cmd.Env, "ARBOR_NO_CGROUPS=1")
				}
			}, "Procfile")
			pids := a.escapedPids()
			if cgroups && !cgroupWritable() {
				t.Skip("no writable cgroup v2 here: arbor runs without cgroups")
			}
			if in := inArborCgroup(pids[0]); in != cgroups {
				t.Fatalf("arbor's cgroup for the child: %v, want %v", in, cgroups)
			}
			if cgroups {
				a.cmd.Process.Signal(syscall.SIGKILL)
				a.cmd.Wait()
				for i, pid := range pids {
					proctest.Gone(t, escapedPidFiles[i], pid) // within 2 s
				}
				return
			}
			// Without cgroups a normal stop still reaches the setsid
			// grandchild, orphaned to arbor (the subreaper) once its
			// parent is stopped.
			if code := interruptAndWait(t, a.cmd); code != 130 {
				t.Fatalf("status %d\n%s", code, a.err)
			}
			for i, pid := range pids {
				proctest.Gone(t, escapedPidFiles[i], pid)
			}
		})
	}
}

// inArborCgroup reports whether pid runs in a cgroup arbor made.
func inArborCgroup(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	return err == nil && strings.Contains(string(b), "/arbor-")
}

// cgroupWritable reports whether this process could make a cgroup v2 of
// its own, as arbor does, found independently of arbor's code.
func cgroupWritable() bool {
	own, _ := os.ReadFile("/proc/self/cgroup")
	var path string
	for _, line := range strings.Split(string(own), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			path = p
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mounts")
	for _, line := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && f[2] == "cgroup2" && path != "" {
			dir := filepath.Join(f[1], path, fmt.Sprintf("arbor-test-%d", os.Getpid()))
			if os.Mkdir(dir, 0o755) == nil {
				os.Remove(dir)
				return true
			}
		}
	}
	return false
}

// Limits in the spec: rlimits are seen from inside the process; a limit
// this machine cannot enforce (no memory controller delegated) is refused
// at start, naming the child and the reason (issue 11, resource limits).
func TestSpecLimits(t *testing.T) {
	dir := t.TempDir()
	spec := `{"children": [{"name": "limited", "command": ["sh", "-c", "echo \"limits $(ulimit -n) $(ulimit -c)\"; exec sleep 30"],
  "limits": {"open_files": 99, "core": "none"}}]}`
	os.WriteFile(filepath.Join(dir, "app.json"), []byte(spec), 0o600)
	cmd, out, errOut := superviseIn(t, dir, "--control", filepath.Join(dir, "ctl.sock"), "app.json")
	proctest.Eventually(t, 15*time.Second, "the limits from inside", func() bool { return hasLine(out.String(), "limited", "limits 99 0") })
	if code := interruptAndWait(t, cmd); code != 130 {
		t.Fatalf("status %d\n%s", code, errOut)
	}
	memory := `{"children": [{"name": "a", "command": ["true"]}, {"name": "big", "command": ["true"], "limits": {"memory": "64M", "pids": 10}}]}`
	os.WriteFile(filepath.Join(dir, "mem.json"), []byte(memory), 0o600)
	_, stderr, code := arbor(t, "", "supervise", "--control", filepath.Join(dir, "ctl2.sock"), filepath.Join(dir, "mem.json"))
	controllers, _ := os.ReadFile("/sys/fs/cgroup/unified/cgroup.controllers")
	if strings.Contains(string(controllers), "memory") {
		t.Skip("this machine delegates the memory controller: the refusal is not seen here")
	}
	if code != 1 || !strings.Contains(stderr, "children[1].limits") || !strings.Contains(stderr, "memory") {
		t.Fatalf("a memory limit that cannot be enforced: status %d, %q", code, stderr)
	}
	t.Logf("refused: %s", strings.TrimSpace(stderr))
}

// arbor parallel is contained too: a job's setsid grandchild does not
// survive a SIGKILL of arbor (issue 11, item 2).
func TestParallelSIGKILLLeavesNoDescendant(t *testing.T) {
	if !cgroupWritable() {
		t.Skip("no writable cgroup v2 here")
	}
	dir := t.TempDir()
	cmd := exec.Command(arborBin, "parallel", "-j", "2", fmt.Sprintf(`setsid sh -c 'echo $$ > %s/{}; exec sleep 300' & wait`, dir), ":::", "a", "b")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pids []int
	proctest.Eventually(t, 15*time.Second, "two setsid grandchildren", func() bool {
		pids = pids[:0]
		for _, f := range []string{"a", "b"} {
			b, err := os.ReadFile(filepath.Join(dir, f))
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil || pid == 0 {
				return false
			}
			pids = append(pids, pid)
		}
		return true
	})
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	proctest.Gone(t, "setsid grandchildren of a parallel killed with SIGKILL", pids...)
}

// The control socket on a shared machine (issue 17, item 3): a default
// directory another user made first is refused; a directory given with
// --control keeps its mode; a connection from another user is refused
// even when the socket's mode lets it in.
func TestControlSocketOnASharedMachine(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root, to act as another user")
	}
	const other = 12345
	procfile := "web: echo up; exec sleep 30\n"

	t.Run("a default directory another user made", func(t *testing.T) {
		tmp := t.TempDir()
		dir := filepath.Join(tmp, fmt.Sprintf("arborctl-%d", os.Getuid()))
		os.Mkdir(dir, 0o700)
		os.Chown(dir, other, other)
		d := t.TempDir()
		os.WriteFile(filepath.Join(d, "Procfile"), []byte(procfile), 0o600)
		cmd := exec.Command(arborBin, "supervise", "Procfile")
		cmd.Dir, cmd.Env = d, append(os.Environ(), "TMPDIR="+tmp, "XDG_RUNTIME_DIR=")
		out, err := cmd.CombinedOutput()
		if code := exitCode(t, err); code != 1 || !strings.Contains(string(out), fmt.Sprintf("belongs to user %d", other)) {
			t.Fatalf("status %d: %s", code, out)
		}
	})
	t.Run("a shared directory keeps its mode", func(t *testing.T) {
		shared, err := os.MkdirTemp("", "arbor-shared-") // in /tmp: other users can reach it
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(shared) })
		os.Chmod(shared, 0o777|os.ModeSticky) // as /tmp
		errOut := &proctest.Buffer{}
		spec := filepath.Join(t.TempDir(), "Procfile")
		os.WriteFile(spec, []byte(procfile), 0o600)
		cmd := exec.Command(arborBin, "supervise", "--control", filepath.Join(shared, "x.sock"), spec)
		cmd.Stdout, cmd.Stderr = errOut, errOut
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		proctest.Eventually(t, 10*time.Second, "the socket", func() bool {
			_, err := os.Stat(filepath.Join(shared, "x.sock"))
			return err == nil
		})
		fi, _ := os.Stat(shared)
		if fi.Mode().Perm() != 0o777 || fi.Mode()&os.ModeSticky == 0 {
			t.Fatalf("the shared directory's mode became %v", fi.Mode())
		}
		// Another user let in by the socket's mode is refused anyway.
		os.Chmod(filepath.Join(shared, "x.sock"), 0o666)
		theirs := filepath.Join(shared, "arbor") // one the other user may run
		if b, err := os.ReadFile(arborBin); err != nil || os.WriteFile(theirs, b, 0o755) != nil {
			t.Fatal("copying arbor for the other user")
		}
		ps := exec.Command(theirs, "ps", "--control", filepath.Join(shared, "x.sock"))
		ps.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: other, Gid: other}}
		psOut, err := ps.CombinedOutput()
		if exitCode(t, err) == 0 || strings.Contains(string(psOut), "RUNNING") {
			t.Fatalf("another user's arbor ps was served: %s", psOut)
		}
		proctest.Eventually(t, 10*time.Second, "the refusal in the log", func() bool {
			return strings.Contains(errOut.String(), fmt.Sprintf("refused a control connection from user %d", other))
		})
		if code := interruptAndWait(t, cmd); code != 130 {
			t.Fatalf("status %d\n%s", code, errOut)
		}
	})
}
