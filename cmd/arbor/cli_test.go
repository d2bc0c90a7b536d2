package main

import (
	"errors"
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
)

// The tests run the built binary, as a user would.
var arborBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "arborcli-test-")
	if err != nil {
		panic(err)
	}
	arborBin = filepath.Join(dir, "arbor")
	// Built as README says a release is: static, without cgo (cgo would
	// link libc only for net's DNS resolver, which arbor never uses, and
	// cost 1.5 MiB of memory in every arbor process).
	build := exec.Command("go", "build", "-o", arborBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building arbor: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// arbor runs the CLI and returns stdout, stderr and the exit status.
func arbor(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(arborBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	var err error
	proctest.Within(t, 60*time.Second, "arbor "+strings.Join(args, " "), func() { err = cmd.Run() })
	return out.String(), errOut.String(), exitCode(t, err)
}

// exitCode is the status of a process that err (from Run or Wait) reports
// on; an error that is no exit status fails the test.
func exitCode(t *testing.T, err error) int {
	t.Helper()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.ExitCode()
	}
	t.Fatal(err)
	return -1
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		stdin string
		code  int
		out   string
	}{
		{"all succeed", []string{"parallel", "-k", "echo", ":::", "a", "b", "c"}, "", 0, "a\nb\nc\n"},
		{"two of four fail", []string{"parallel", "-k", "echo {}; test {} -lt 3", ":::", "1", "2", "3", "4"}, "", 2, "1\n2\n3\n4\n"},
		{"inputs from stdin", []string{"parallel", "-k", "echo", "in:{}"}, "x\ny\n", 0, "in:x\nin:y\n"},
		{"missing program", []string{"parallel", "/nonexistent/tool", ":::", "a"}, "", 1, ""},
		{"inputs are commands", []string{"parallel", "-k"}, "echo one\necho two\n", 0, "one\ntwo\n"},
		{"unknown command", []string{"frobnicate"}, "", 2, ""},
		{"bad flag", []string{"parallel", "--frob", "echo"}, "", 255, ""},
		{"bad halt", []string{"parallel", "--halt", "sometimes", "echo", ":::", "a"}, "", 255, ""},
		{"no command, no input", []string{"parallel"}, "", 0, ""},
		{"version", []string{"version"}, "", 0, "arbor "},
		{"help", []string{"parallel", "--help"}, "", 0, "Usage: arbor parallel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := arbor(t, tt.stdin, tt.args...)
			if code != tt.code || !strings.Contains(out, tt.out) {
				t.Fatalf("status %d, stdout %q, stderr %q; want status %d and %q", code, out, errOut, tt.code, tt.out)
			}
			if (code == 2 || code == 255) && tt.out == "" && !strings.HasPrefix(errOut, "arbor: ") {
				t.Fatalf("a usage error should print one line saying what is wrong: %q", errOut)
			}
		})
	}
}

func TestFailureCountIsCapped(t *testing.T) {
	args := []string{"parallel", "-j", "8", "false", ":::"}
	for i := range 110 {
		args = append(args, strconv.Itoa(i))
	}
	if _, _, code := arbor(t, "", args...); code != 101 {
		t.Fatalf("status %d, want 101", code)
	}
}

// pidJob is a job that records its shell's pid in dir and then sleeps,
// or fails at once for the input "fail".
func pidJob(dir string) []string {
	return []string{fmt.Sprintf(`if [ {} = fail ]; then sleep 0.3; exit 1; fi; echo $$ > %s/{}; exec sleep 30`, dir)}
}

func pidsIn(t *testing.T, dir string) []int {
	entries, _ := os.ReadDir(dir)
	var pids []int
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			pids = append(pids, p)
		}
	}
	return pids
}

func TestHaltNowKillsRunningJobs(t *testing.T) {
	dir := t.TempDir()
	args := append([]string{"parallel", "-j", "4", "--halt", "now,fail=1"}, pidJob(dir)...)
	args = append(args, ":::", "a", "b", "c", "fail")
	_, _, code := arbor(t, "", args...)
	if code != 1 {
		t.Fatalf("status %d, want 1 (one failure)", code)
	}
	pids := pidsIn(t, dir)
	if len(pids) != 3 {
		t.Fatalf("want the 3 sleeping jobs recorded, got %v", pids)
	}
	proctest.Gone(t, "jobs killed by --halt now", pids...)
}

func TestHaltSoonStartsNothingNew(t *testing.T) {
	out, _, code := arbor(t, "", "parallel", "-j", "1", "--halt", "soon,fail=1", "echo ran {}; exit {}", ":::", "1", "0", "0")
	if code != 1 || out != "ran 1\n" {
		t.Fatalf("status %d, output %q: no job should start after the first failure", code, out)
	}
	// A percentage: 1 failure of 4 jobs is 25%. GNU parallel's rule for
	// the status: 25% of 4 jobs is one job, and then the failing job's own
	// status counts, as with fail=1.
	out, _, code = arbor(t, "", "parallel", "-j", "1", "--halt", "soon,fail=25%", "echo ran {}; exit {}", ":::", "0", "1", "0", "0")
	if code != 1 || out != "ran 0\nran 1\n" {
		t.Fatalf("status %d, output %q", code, out)
	}
	// 50% of 4 is two jobs: the status is the percentage that failed.
	out, _, code = arbor(t, "", "parallel", "-j", "1", "--halt", "soon,fail=50%", "echo ran {}; exit {}", ":::", "0", "1", "0", "3")
	if code != 50 || out != "ran 0\nran 1\nran 0\nran 3\n" {
		t.Fatalf("status %d, output %q", code, out)
	}
}

func TestOutputModes(t *testing.T) {
	script := "sleep 0.{}; echo first {}; echo second {}"
	out, _, _ := arbor(t, "", "parallel", "-k", "--tag", script, ":::", "3", "1", "2")
	want := "3\tfirst 3\n3\tsecond 3\n1\tfirst 1\n1\tsecond 1\n2\tfirst 2\n2\tsecond 2\n"
	if out != want {
		t.Fatalf("--keep-order --tag:\n%s\nwant\n%s", out, want)
	}
	// Grouped (the default): each job's lines stay together.
	out, _, _ = arbor(t, "", "parallel", "echo first {}; sleep 0.2; echo second {}", ":::", "a", "b")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || strings.Fields(lines[0])[1] != strings.Fields(lines[1])[1] {
		t.Fatalf("grouped output interleaved: %q", out)
	}
	// --line-buffer prints as lines come: the two jobs interleave.
	out, _, _ = arbor(t, "", "parallel", "--line-buffer", "echo first {}; sleep 0.3; echo second {}", ":::", "a", "b")
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "first") || !strings.HasPrefix(lines[1], "first") {
		t.Fatalf("--line-buffer output %q", out)
	}
}

func TestTimeoutRetriesAndJoblog(t *testing.T) {
	dir := t.TempDir()
	joblog := filepath.Join(dir, "log")
	marker := filepath.Join(dir, "m")
	// "flaky" fails once, then succeeds; "slow" outlives its timeout.
	// --retries counts attempts in all, as GNU parallel does.
	script := fmt.Sprintf(`case {} in flaky) if [ -e %s ]; then exit 0; fi; touch %s; exit 1;; slow) exec sleep 30;; esac`, marker, marker)
	_, _, code := arbor(t, "", "parallel", "-k", "--retries", "2", "--timeout", "300ms", "--joblog", joblog, script, ":::", "flaky", "slow")
	if code != 1 {
		t.Fatalf("status %d, want 1 (the slow job)", code)
	}
	b, err := os.ReadFile(joblog)
	if err != nil {
		t.Fatal(err)
	}
	// GNU's 9 columns; the slow job was killed (Exitval -1) with SIGTERM.
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 3 || lines[0] != joblogHeader {
		t.Fatalf("joblog:\n%s", b)
	}
	rows := map[string][]string{}
	for _, l := range lines[1:] {
		f := strings.Split(l, "\t")
		if len(f) != 9 {
			t.Fatalf("joblog row %q has %d columns, want 9", l, len(f))
		}
		rows[f[0]] = f
	}
	if f := rows["1"]; f == nil || f[6] != "0" || f[7] != "0" || !strings.Contains(f[8], "flaky") {
		t.Fatalf("the flaky job should succeed on its second attempt: %q", rows["1"])
	}
	if f := rows["2"]; f == nil || f[6] != "-1" || f[7] != "15" || !strings.Contains(f[8], "slow") {
		t.Fatalf("the slow job should be killed with SIGTERM: %q", rows["2"])
	}
}

func TestInterruptStopsEveryJob(t *testing.T) {
	dir := t.TempDir()
	args := append([]string{"parallel", "-j", "3"}, pidJob(dir)...)
	args = append(args, ":::", "a", "b", "c", "d")
	cmd := exec.Command(arborBin, args...)
	var errOut strings.Builder
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	proctest.Eventually(t, 10*time.Second, "three jobs running", func() bool { return len(pidsIn(t, dir)) == 3 })
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 130 {
		t.Fatalf("status %v, want 130", err)
	}
	if !strings.Contains(errOut.String(), "interrupted: ") {
		t.Fatalf("no summary: %q", errOut.String())
	}
	proctest.Gone(t, "jobs of an interrupted run", pidsIn(t, dir)...)
}

func TestSchema(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "basics")
	if out, err := exec.Command("go", "build", "-o", bin, "../../examples/basics").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	out, errOut, code := arbor(t, "", "schema", bin)
	if code != 0 || !strings.Contains(out, "basics.cube") || !strings.Contains(out, "(int) -> int") {
		t.Fatalf("status %d\n%s\n%s", code, out, errOut)
	}
	out, _, code = arbor(t, "", "schema", "--json", bin)
	if code != 0 || !strings.Contains(out, `"name": "basics.cube"`) {
		t.Fatalf("--json: status %d\n%s", code, out)
	}
	_, errOut, code = arbor(t, "", "schema", "/bin/echo")
	if code != 1 || !strings.Contains(errOut, "not an arbor actor") {
		t.Fatalf("a non-actor binary: status %d, %q", code, errOut)
	}
}

func TestProgressOnlyWhenAsked(t *testing.T) {
	// GNU parallel never draws one unasked, even on a terminal.
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("no script(1) to provide a terminal")
	}
	for _, bar := range []string{"", "--bar"} {
		cmd := exec.Command("script", "-qec", arborBin+" parallel "+bar+" -j 2 'sleep 0.{}' ::: 1 2 3", "/dev/null")
		var out []byte
		var err error
		proctest.Within(t, 30*time.Second, "arbor on a terminal", func() { out, err = cmd.Output() })
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(string(out), "3/3 done, 0 failed, 0 running"); got != (bar != "") {
			t.Fatalf("with %q: progress line shown %v: %q", bar, got, out)
		}
	}
}

func TestProgressNotOnAPipe(t *testing.T) {
	_, errOut, _ := arbor(t, "", "parallel", "-j", "2", "sleep 0.{}", ":::", "1", "2", "3")
	if strings.Contains(errOut, "done,") {
		t.Fatalf("progress printed unasked: %q", errOut)
	}
}
