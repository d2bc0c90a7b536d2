package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/proctest"
	"github.com/arbor-go/arbor/internal/sshtest"
)

// login is an sshlogin for srv: the whole ssh command, as -S takes it.
func login(srv *sshtest.Server) string { return strings.Join(srv.Launcher(), " ") }

// TestParallelRemote: -S runs jobs on a host through a real sshd, each with
// its sequence number, slot and sshlogin; N/host and ':' share the jobs.
func TestParallelRemote(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	l := login(srv)
	out, errOut, code := arbor(t, "", "parallel", "-k", "-S", l, "--remote-arbor", arborBin,
		`echo {} $PARALLEL_SEQ "$PARALLEL_SSHLOGIN"`, ":::", "a", "b", "c")
	if code != 0 || out != "a 1 "+l+"\nb 2 "+l+"\nc 3 "+l+"\n" {
		t.Fatalf("status %d, stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	// One slot here, two there: both places run jobs.
	out, errOut, code = arbor(t, "", "parallel", "-k", "-S", "1/:,2/"+l, "--remote-arbor", arborBin,
		`sleep 0.2; echo "{} ${PARALLEL_SSHLOGIN:-here}"`, ":::", "1", "2", "3", "4", "5", "6")
	if code != 0 || !strings.Contains(out, " here\n") || !strings.Contains(out, " "+l+"\n") || strings.Count(out, "\n") != 6 {
		t.Fatalf("status %d, stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	// A failing job's status comes back.
	_, _, code = arbor(t, "", "parallel", "-S", l, "--remote-arbor", arborBin, "exit {}", ":::", "3")
	if code != 1 {
		t.Errorf("one remote job failing with status 3: arbor exited %d, want 1 (the number of failed jobs)", code)
	}
}

// TestParallelRemoteFiles: --transfer sends each input file to the job's
// host, --return brings the result back, --cleanup removes both there, all
// in a --workdir of the job's own.
func TestParallelRemoteFiles(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	dir := t.TempDir()
	for _, f := range []string{"one.txt", "two.txt"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("words in "+f+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(arborBin, "parallel", "-S", login(srv), "--remote-arbor", arborBin, "--workdir", "...",
		"--trc", "{}.up", "tr a-z A-Z < {} > {}.up", ":::", "one.txt", "two.txt")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	for _, f := range []string{"one.txt", "two.txt"} {
		b, err := os.ReadFile(filepath.Join(dir, f+".up"))
		if err != nil || string(b) != strings.ToUpper("words in "+f+"\n") {
			t.Errorf("%s.up: %q, %v", f, b, err)
		}
	}
	// A --return file the job did not make is reported; with --cleanup
	// the job's directory is removed all the same, and the job's status
	// is its own.
	cmd2 := exec.Command(arborBin, "parallel", "-S", login(srv), "--remote-arbor", arborBin, "--workdir", "...",
		"--trc", "{}.missing", "true", ":::", "one.txt")
	cmd2.Dir = dir
	var stderr2 bytes.Buffer
	cmd2.Stderr = &stderr2
	if err := cmd2.Run(); err != nil {
		t.Errorf("a job whose --return file is missing: %v, want its own status 0\n%s", err, stderr2.String())
	}
	if !strings.Contains(stderr2.String(), "--return one.txt.missing") {
		t.Errorf("the missing --return file is not reported:\n%s", stderr2.String())
	}
	host, _ := os.Hostname()
	home, _ := os.UserHomeDir() // the sshd's user is root, as this test's
	for _, c := range []*exec.Cmd{cmd, cmd2} {
		left, _ := filepath.Glob(filepath.Join(home, ".parallel", "tmp", host+"-"+strconv.Itoa(c.Process.Pid)+"-*"))
		if len(left) > 0 {
			t.Errorf("--cleanup left the job directories %v", left)
		}
	}
}

// TestParallelRemoteKilled: arbor parallel SIGKILLed while a remote job
// runs. Its ssh dies with it (the parent-death signal), the connection
// goes, and arbor remote-job on the host stops the job's process group.
func TestParallelRemoteKilled(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	pidFile := filepath.Join(t.TempDir(), "pid")
	cmd := exec.Command(arborBin, "parallel", "-S", login(srv), "--remote-arbor", arborBin,
		`echo $$ > {}.tmp && mv {}.tmp {} && exec sleep 600`, ":::", pidFile)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var job int
	proctest.Eventually(t, 20*time.Second, "the remote job to start", func() bool {
		b, err := os.ReadFile(pidFile)
		job, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && job > 0
	})
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	killed := time.Now()
	proctest.Eventually(t, 20*time.Second, "the remote job to be stopped", func() bool { return !proctest.Alive(job) })
	t.Logf("the remote job was gone %v after arbor parallel was killed", time.Since(killed).Round(time.Millisecond))
}

// TestRemoteJobStopsWithItsParent: arbor remote-job stops its job's group
// when its parent goes, without a signal of its own.
func TestRemoteJobStopsWithItsParent(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	// sh starts remote-job in the background and exits once the job runs:
	// remote-job's parent is then gone.
	sh := exec.Command("sh", "-c", arborBin+` remote-job -- sh -c 'echo $$ > `+pidFile+`.tmp && mv `+pidFile+`.tmp `+pidFile+` && exec sleep 600' </dev/null >/dev/null 2>&1 &
		while [ ! -e `+pidFile+` ]; do sleep 0.01; done`)
	if out, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var job int
	proctest.Eventually(t, 20*time.Second, "the job to start", func() bool {
		b, err := os.ReadFile(pidFile)
		job, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && job > 0
	})
	proctest.Eventually(t, 20*time.Second, "the orphaned job to be stopped", func() bool { return !proctest.Alive(job) })
}
