package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/proctest"
)

// The expected outputs here are GNU parallel's (checked by hand against GNU
// parallel 20221122; gnu_compare_test.go checks many more against GNU
// parallel itself where it is installed).
func TestParallelFlags(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	lines := write("lines", "x\ny\n")
	more := write("more", "1\n2\n")
	script := write("noshebang", "echo script $1\n")
	if err := os.Chmod(script, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		args  []string
		stdin string
		out   string
		code  int
	}{
		// The shell rule.
		{"pipe in the command", []string{"echo {} | tr a-z A-Z", ":::", "ab"}, "", "AB\n", 0},
		{"redirect and ;", []string{"-k", "echo {} > /dev/null; echo done {}", ":::", "a", "b"}, "", "done a\ndone b\n", 0},
		{"exit status of the shell", []string{"exit {}", ":::", "3"}, "", "", 1},
		{"inputs are commands", []string{"-k", ":::", "echo foo", "echo bar"}, "", "foo\nbar\n", 0},
		{"a script without #! runs in the shell", []string{script, ":::", "a"}, "", "script a\n", 0},
		{"a missing program is the shell's 127", []string{"/nonexistent/prog", ":::", "a"}, "", "", 1},
		{"an input is never a command", []string{"-k", "echo {}", ":::", "x; echo INJECTED", "$(echo SUB)", "`echo BQ`", "'q'", "a\nb"}, "", "x; echo INJECTED\n$(echo SUB)\n`echo BQ`\n'q'\na\nb\n", 0},
		{"the input with spaces stays one word", []string{"printf '<%s>\\n'", ":::", "a b"}, "", "<a b>\n", 0},
		{"an empty input", []string{"printf '<%s>\\n'", ":::", ""}, "", "<>\n", 0},
		{"-q quotes the command", []string{"-q", "printf", "%s|%s\\n", "a b", "{}", ":::", "c"}, "", "a b|c\n", 0},
		{"a variable in the command is the shell's", []string{"echo ${NOSUCHVAR}{}", ":::", "a"}, "", "a\n", 0},

		// Input sources.
		{"cartesian product", []string{"-k", "echo", ":::", "a", "b", ":::", "1", "2"}, "", "a 1\na 2\nb 1\nb 2\n", 0},
		{":::+ links, shortest wins", []string{"-k", "echo", ":::", "a", "b", ":::+", "1", "2", "3"}, "", "a 1\nb 2\n", 0},
		{"--link wraps", []string{"-k", "--link", "echo", ":::", "a", "b", ":::", "1", "2", "3"}, "", "a 1\nb 2\na 3\n", 0},
		{":::: FILE", []string{"-k", "echo", "::::", lines}, "", "x\ny\n", 0},
		{":::: two files", []string{"-k", "echo", "::::", lines, more}, "", "x 1\nx 2\ny 1\ny 2\n", 0},
		{"-a twice", []string{"-k", "-a", lines, "-a", more, "echo"}, "", "x 1\nx 2\ny 1\ny 2\n", 0},
		{"-a - is stdin", []string{"-k", "-a", "-", "echo"}, "s\nt\n", "s\nt\n", 0},
		{":::: mixed with :::", []string{"-k", "echo", "::::", lines, ":::", "z"}, "", "x z\ny z\n", 0},

		// Replacement strings.
		{"{} {.} {/} {//} {/.}", []string{"echo {} {.} {/} {//} {/.}", ":::", "d.x/f.tar.gz"}, "", "d.x/f.tar.gz d.x/f.tar f.tar.gz d.x f.tar\n", 0},
		{"{.} leaves a dot in a directory", []string{"echo {.}", ":::", "a.b/c"}, "", "a.b/c\n", 0},
		{"{#} and {%}", []string{"-j1", "-k", "echo {#}-{%}", ":::", "a", "b"}, "", "1-1\n2-1\n", 0},
		{"positional", []string{"-k", "echo {2} {1}", ":::", "a", ":::", "b/c.d"}, "", "b/c.d a\n", 0},
		{"positional modifiers", []string{"echo {1/} {1.} {1//} {1/.}", ":::", "p/q.r"}, "", "q.r p/q p q\n", 0},
		{"-I", []string{"-I", "XX", "echo XX-{}", ":::", "a"}, "", "a-{}\n", 0},
		{"--colsep", []string{"-k", "--colsep", ",", "echo {2}:{1}"}, "a,b\nc,d\n", "b:a\nd:c\n", 0},
		{"--header", []string{"-k", "--header", ":", "--colsep", "\t", "echo {name}={val}"}, "name\tval\nx\t1\n", "x=1\n", 0},
		{"unknown forms stay", []string{"echo {foo} {}} {0}", ":::", "a"}, "", "{foo} a} {0}\n", 0},
		{"no replacement string: appended", []string{"echo pre", ":::", "a"}, "", "pre a\n", 0},
		{"{#} alone: nothing appended", []string{"-k", "echo {#}", ":::", "a", "b"}, "", "1\n2\n", 0},

		{"{//} ignores a trailing slash", []string{"-k", "echo {//}", ":::", "a/b/", "/"}, "", "a\n/\n", 0},
		{"-n 0 gives no input", []string{"-k", "-n", "0", "echo x", ":::", "a", "b"}, "", "x\nx\n", 0},
		{"a lone empty ::: reads stdin", []string{"-k", "echo", ":::"}, "s\n", "s\n", 0},
		{"an empty ::: beside others is one empty value", []string{"-k", "echo", ":::", ":::", "a"}, "", " a\n", 0},
		{"--trim", []string{"-k", "--trim", "lr", "echo x{}x", ":::", " a "}, "", "xax\n", 0},
		{"Perl expressions are refused", []string{"echo {=uc=}", ":::", "a"}, "", "", 255},

		// Several arguments per job.
		{"-n 2", []string{"-k", "-n", "2", "echo", ":::", "a", "b", "c"}, "", "a b\nc\n", 0},
		{"-N 2", []string{"-k", "-N", "2", "echo {2}-{1}", ":::", "a", "b", "c"}, "", "b-a\n-c\n", 0},
		{"-X repeats the word", []string{"-j1", "-X", "echo p{}q", ":::", "a", "b"}, "", "paq pbq\n", 0},
		{"-m", []string{"-j1", "-m", "echo p{}q", ":::", "a", "b"}, "", "pa bq\n", 0},
		{"-X spreads over slots", []string{"-k", "-j2", "-X", "echo", ":::", "a", "b", "c"}, "", "a b\nc\n", 0},
		{"--xargs", []string{"-j2", "--xargs", "echo", ":::", "a", "b", "c"}, "", "a b c\n", 0},
		{"-s limits the line", []string{"-k", "-j1", "-s", "12", "--xargs", "echo", ":::", "aa", "bb", "cc"}, "", "aa bb\ncc\n", 0},

		// Input framing.
		{"-0", []string{"-k", "-0", "printf", "'<%s>\\n'"}, "a b\x00c\n\x00", "<a b>\n<c\n>\n", 0},
		{"-d ,", []string{"-k", "-d", ",", "printf", "'<%s>\\n'"}, "a,b", "<a>\n<b>\n", 0},
		{"-d '\\n'", []string{"-k", "-d", "\\n", "printf", "'<%s>\\n'"}, "a\nb\n", "<a>\n<b>\n", 0},
		{"-E", []string{"-k", "-E", "STOP", "echo"}, "a\nSTOP\nb\n", "a\n", 0},
		{"-r", []string{"-k", "-r", "printf", "'<%s>\\n'"}, "a\n\n  \nb\n", "<a>\n<b>\n", 0},
		{"empty lines run without -r", []string{"-k", "printf", "'<%s>\\n'"}, "a\n\n", "<a>\n<>\n", 0},
		{"CRLF is kept", []string{"-k", "printf", "'%s|'"}, "a\r\nb\r\n", "a\r|b\r|", 0},

		// Output.
		{"no newline is added", []string{"-k", "printf", "%s"}, "a\nb\n", "ab", 0},
		{"--tag", []string{"-k", "--tag", "printf 'l1\\nl2'", ":::", "a b", "c"}, "", "a b\tl1\na b\tl2c\tl1\nc\tl2", 0},
		{"--tagstring", []string{"-k", "--tagstring", "<{}-{#}>", "echo hi", ":::", "a", "b"}, "", "<a-1>\thi a\n<b-2>\thi b\n", 0},
		{"--dry-run quotes as GNU", []string{"-k", "--dry-run", "echo", ":::", "a b", "it's", "", "x;y", "plain-1.txt"}, "",
			"echo 'a b'\necho 'it'\"'\"'s'\necho ''\necho 'x;y'\necho plain-1.txt\n", 0},
		{"--verbose goes to stderr", []string{"--verbose", "echo", ":::", "a"}, "", "a\n", 0},
		{"-v goes to stdout", []string{"-v", "echo", ":::", "a"}, "", "echo a\na\n", 0},
		{"--tag tags after \\r too", []string{"--tag", "printf 'x\\ry\\n'", ":::", "a"}, "", "a\tx\ra\ty\n", 0},
		{"--results that cannot be written", []string{"--results", "/dev/null/nowhere", "true", ":::", "a"}, "", "", 255},
		{"-n 3 over a product ends", []string{"-k", "-n", "3", "echo", ":::", "a", "b", ":::", "1", "2"}, "", "a 1 a 2 b 1\nb 2\n", 0},
		{"-u", []string{"-u", "-j1", "echo", ":::", "a", "b"}, "", "a\nb\n", 0},
		{"--line-buffer", []string{"-j1", "--line-buffer", "--tag", "printf 'x\\ny'", ":::", "a"}, "", "a\tx\na\ty", 0},
		{"stderr after stdout, per job", []string{"-k", "echo out {}; echo err {} >&2", ":::", "a"}, "", "out a\n", 0},

		// Jobs.
		{"-j 0", []string{"-k", "-j", "0", "echo", ":::", "a", "b"}, "", "a\nb\n", 0},
		{"-j 50%", []string{"-k", "-j", "50%", "echo", ":::", "a"}, "", "a\n", 0},
		{"-j +1", []string{"-k", "-j", "+1", "echo", ":::", "a"}, "", "a\n", 0},
		{"-j -1", []string{"-k", "-j", "-1", "echo", ":::", "a"}, "", "a\n", 0},
		{"--delay", []string{"-k", "--delay", "0.05", "echo", ":::", "a", "b"}, "", "a\nb\n", 0},
		{"--shuf runs every job", []string{"--shuf", "-j1", "true", ":::", "a", "b", "c"}, "", "", 0},
		{"--retries counts attempts", []string{"--retries", "3", "echo try; exit 2", ":::", "a"}, "", "try\n", 1},
		{"--env is accepted", []string{"--env", "HOME", "echo", ":::", "a"}, "", "a\n", 0},
		{"-S : is this machine", []string{"-S", ":", "echo", ":::", "a"}, "", "a\n", 0},
		{"-S a host that cannot be reached fails its job", []string{"-S", "nohost.invalid", "echo", ":::", "a"}, "", "", 1},
		{"--transfer needs a remote host", []string{"-S", ":", "--transfer", "echo", ":::", "a"}, "", "", 255},
		{"-S 0/host", []string{"-S", "0/nohost.invalid", "echo", ":::", "a"}, "", "", 255},
		{"PARALLEL_SEQ", []string{"-k", "echo $PARALLEL_SEQ", ":::", "a", "b"}, "", "1 a\n2 b\n", 0},

		// --pipe.
		{"--pipe -N", []string{"-k", "--pipe", "-N", "2", "wc", "-l"}, "1\n2\n3\n4\n5\n", "2\n2\n1\n", 0},
		{"--pipe --block", []string{"-k", "--pipe", "--block", "4", "cat; echo ."}, "aa\nbb\ncc\n", "aa\n.\nbb\n.\ncc\n.\n", 0},

		// Exit status.
		{"failures counted", []string{"exit {}", ":::", "0", "1", "2", "3"}, "", "", 3},
		{"--halt now,fail=1 gives the job's status", []string{"-j1", "--halt", "now,fail=1", "exit {}", ":::", "0", "7", "0"}, "", "", 7},
		{"--halt soon,fail=1", []string{"-j1", "--halt", "soon,fail=1", "echo {}; exit {}", ":::", "0", "2", "0"}, "", "0\n2\n", 2},
		{"--halt 2 is now,fail=1", []string{"-j1", "--halt", "2", "echo {}; exit {}", ":::", "0", "4", "0"}, "", "0\n4\n", 4},
		{"--halt now,success=1", []string{"-j1", "--halt", "now,success=1", "echo {}; exit {}", ":::", "1", "0", "1"}, "", "1\n0\n", 0},
		{"--halt soon,done=1", []string{"-j1", "--halt", "soon,done=1", "echo {}; exit {}", ":::", "5", "0"}, "", "5\n", 5},
		{"--halt fail=50%", []string{"-j1", "--halt", "now,fail=50%", "exit {}", ":::", "1", "1", "0", "0"}, "", "", 50},
		{"a signal under --halt is 128+N", []string{"-j1", "--halt", "now,fail=1", "kill -9 $$", ":::", "a"}, "", "", 137},
		{"a bad flag", []string{"--frobnicate", "echo"}, "", "", 255},
		{"a bad -j", []string{"-j", "many", "echo", ":::", "a"}, "", "", 255},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := arbor(t, tt.stdin, append([]string{"parallel"}, tt.args...)...)
			if out != tt.out || code != tt.code {
				t.Fatalf("arbor parallel %q:\nstdout %q, status %d\nwant   %q, status %d\nstderr %q", tt.args, out, code, tt.out, tt.code, errOut)
			}
		})
	}
}

func TestParallelVerboseAndStderr(t *testing.T) {
	_, errOut, _ := arbor(t, "", "parallel", "--verbose", "echo err {} >&2", ":::", "a")
	if errOut != "echo err a >&2\nerr a\n" {
		t.Fatalf("stderr %q", errOut)
	}
}

func TestParallelBinaryAndLongLines(t *testing.T) {
	dir := t.TempDir()
	blob := make([]byte, 300<<10)
	for i := range blob {
		blob[i] = byte(i * 7)
	}
	long := strings.Repeat("x", 100<<10) + "\n" + strings.Repeat("y", 70<<10) // no final newline
	if err := os.WriteFile(filepath.Join(dir, "blob"), blob, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "long"), []byte(long), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"blob": string(blob), "long": long} {
		for _, mode := range []string{"--group", "--ungroup", "--line-buffer", "-k"} {
			out, _, code := arbor(t, "", "parallel", mode, "cat", ":::", filepath.Join(dir, name))
			if code != 0 || out != want {
				t.Errorf("%s %s: status %d, %d bytes, want %d bytes byte for byte", mode, name, code, len(out), len(want))
			}
		}
	}
	// A 100 KiB input fits in a command line (GNU parallel refuses lines
	// past about 63 KiB; arbor goes to the kernel's 128 KiB).
	out, _, code := arbor(t, strings.Repeat("z", 100<<10)+"\n", "parallel", "echo {} | wc -c")
	if code != 0 || out != "102401\n" {
		t.Fatalf("a 100 KiB input: status %d, %q", code, out)
	}
	// A job's output larger than any buffer: held in a file, then printed.
	out, _, code = arbor(t, "", "parallel", "head -c 20000000 /dev/zero; true", ":::", "a")
	if code != 0 || len(out) != 20000000 {
		t.Fatalf("20 MB of output: status %d, %d bytes", code, len(out))
	}
}

func TestParallelStartsJobsWhileStdinIsOpen(t *testing.T) {
	cmd := exec.Command(arborBin, "parallel", "echo got {}")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	fmt.Fprintln(stdin, "first")
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	select {
	case l := <-lines:
		if l != "got first" {
			t.Fatalf("first output %q", l)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no job ran while stdin stayed open")
	}
	stdin.Close()
	for range lines {
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestParallelJoblogAndResume(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	out, _, code := arbor(t, "", "parallel", "-j1", "--joblog", log, "echo {}; exit {}", ":::", "0", "1")
	if code != 1 || out != "0\n1\n" {
		t.Fatalf("first run: status %d, %q", code, out)
	}
	rows := joblogRows(t, log)
	if len(rows) != 2 || rows[0][6] != "0" || rows[1][6] != "1" || rows[1][8] != "echo 1; exit 1" || rows[0][1] != ":" || rows[0][5] != "2" {
		t.Fatalf("joblog rows %q", rows)
	}
	// --resume: jobs 1 and 2 are in the log; only the new job 3 runs.
	out, _, code = arbor(t, "", "parallel", "-k", "--joblog", log, "--resume", "echo {}; exit {}", ":::", "0", "1", "2")
	if code != 1 || out != "2\n" {
		t.Fatalf("--resume: status %d, %q", code, out)
	}
	// --resume-failed: the failed jobs 2 and 3 run again, and job 4.
	out, _, code = arbor(t, "", "parallel", "-k", "--joblog", log, "--resume-failed", "echo {}; exit 0", ":::", "0", "1", "2", "3")
	if code != 0 || out != "1\n2\n3\n" {
		t.Fatalf("--resume-failed: status %d, %q", code, out)
	}
	if rows := joblogRows(t, log); len(rows) != 6 {
		t.Fatalf("the log should have 6 rows now: %q", rows)
	}
	// A corrupt log is an error that says where, not a silent rerun.
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte(joblogHeader+"\nx\t:\t0\t0\t0\t0\t0\t0\tcmd\n"), 0o644)
	_, errOut, code := arbor(t, "", "parallel", "--joblog", bad, "--resume", "echo", ":::", "a")
	if code != 255 || !strings.Contains(errOut, "line 2") { // GNU parallel's "other error"
		t.Fatalf("corrupt joblog: status %d, %q", code, errOut)
	}
}

// joblogRows returns the rows of a job log, checking GNU's header and nine
// columns on every row.
func joblogRows(t *testing.T, path string) [][]string {
	t.Helper()
	header, rows := readJoblog(t, path)
	if header != joblogHeader {
		t.Fatalf("joblog header %q", header)
	}
	for _, f := range rows {
		if len(f) != 9 {
			t.Fatalf("joblog row %q: %d columns", f, len(f))
		}
	}
	return rows
}

func TestParallelResults(t *testing.T) {
	dir := t.TempDir()
	res := filepath.Join(dir, "res")
	out, _, code := arbor(t, "", "parallel", "-k", "--results", res, "echo {1}{2}; echo e >&2", ":::", "a", "b/c", ":::", "1")
	if code != 0 || out != "" { // GNU parallel prints nothing with --results
		t.Fatalf("status %d, %q", code, out)
	}
	for path, want := range map[string]string{
		"1/a/2/1/stdout":    "a1\n",
		"1/a/2/1/stderr":    "e\n",
		"1/a/2/1/seq":       "1",
		`1/b\_c/2/1/stdout`: "b/c1\n",
		`1/b\_c/2/1/seq`:    "2",
	} {
		b, err := os.ReadFile(filepath.Join(res, path))
		if err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", path, b, err, want)
		}
	}
}

// --halt now must never print a killed job's output, whatever the timing.
func TestParallelHaltNowPrintsNoKilledOutput(t *testing.T) {
	for i := range 5 {
		out, _, code := arbor(t, "", "parallel", "-j", "3", "--halt", "now,fail=1",
			"if [ {} = fail ]; then exit 3; fi; echo partial {}; sleep 30; echo never {}", ":::", "a", "b", "fail")
		if code != 3 || out != "" {
			t.Fatalf("run %d: status %d, stdout %q: killed jobs' output printed", i, code, out)
		}
	}
}

func TestParallelTimeout(t *testing.T) {
	out, errOut, code := arbor(t, "", "parallel", "-k", "--timeout", "0.3", "echo start {}; sleep {}; echo end {}", ":::", "0", "30")
	if code != 1 || out != "start 0\nend 0\nstart 30\n" || !strings.Contains(errOut, "timed out") {
		t.Fatalf("status %d, stdout %q, stderr %q", code, out, errOut)
	}
	// N%: jobs that take far longer than the median of those done are
	// killed; quick ones are not.
	_, _, code = arbor(t, "", "parallel", "-j1", "--timeout", "3000%", "sleep", ":::", "0.01", "0.01", "0.01", "0.01", "30")
	if code != 1 {
		t.Fatalf("--timeout 3000%%: status %d, want 1 (the slow job)", code)
	}
}

// A job's process group goes down whole: a shell job's background child
// is stopped with it when the run is interrupted.
func TestParallelInterruptStopsJobGroups(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(arborBin, "parallel", "-j", "2", fmt.Sprintf("sleep 30 & echo $! > %s/{}; wait", dir), ":::", "a", "b")
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	proctest.Eventually(t, 10*time.Second, "two background sleeps", func() bool { return len(pidsIn(t, dir)) == 2 })
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 130 {
		t.Fatalf("status %v, want 130; stderr %q", err, errOut.String())
	}
	proctest.Gone(t, "background children of interrupted jobs", pidsIn(t, dir)...)
}

// A parent killed with SIGKILL leaves no job behind: each job gets the
// parent-death signal (Linux). The jobs here are run without a shell, so
// the sleeps are arbor's direct children.
func TestParallelParentKilledLeavesNoJob(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	cmd := exec.Command(arborBin, "parallel", "-j", "3", "--line-buffer", "sleep", ":::", "30", "31", "32")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var jobs []int
	proctest.Eventually(t, 10*time.Second, "three jobs running", func() bool {
		jobs = jobs[:0]
		for _, pid := range childrenOf(cmd.Process.Pid) {
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) == "sleep" {
				jobs = append(jobs, pid) // not the keeper
			}
		}
		return len(jobs) == 3
	})
	cmd.Process.Kill()
	cmd.Wait()
	proctest.Gone(t, "jobs of a parallel killed with SIGKILL", jobs...)
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == fmt.Sprint(pid) {
			var p int
			fmt.Sscan(e.Name(), &p)
			out = append(out, p)
		}
	}
	return out
}

// A consumer that does not read: arbor waits on its stdout (the jobs'
// output waits in files meanwhile), and once the consumer reads, every
// job's output arrives whole, nothing dropped or mixed.
func TestParallelSlowConsumer(t *testing.T) {
	dir := t.TempDir()
	joblog := filepath.Join(dir, "log")
	const jobs, size = 40, 100 << 10 // 4 MB in all, far more than a pipe holds
	cmd := exec.Command(arborBin, "parallel", "-j", "4", "--joblog", joblog,
		fmt.Sprintf("head -c %d /dev/zero | tr '\\0' {}", size), ":::")
	for i := range jobs {
		cmd.Args = append(cmd.Args, string(rune('a'+i%26)))
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	// Nothing is read until a job has finished and is being printed.
	proctest.Eventually(t, 20*time.Second, "the first job in the joblog", func() bool {
		b, _ := os.ReadFile(joblog)
		return bytes.Count(b, []byte("\n")) >= 2
	})
	var out []byte
	proctest.Within(t, 60*time.Second, "reading the output", func() {
		out, err = io.ReadAll(stdout)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if len(out) != jobs*size {
		t.Fatalf("%d bytes, want %d", len(out), jobs*size)
	}
	for i := 0; i < len(out); i += size {
		if n := bytes.Count(out[i:i+size], out[i:i+1]); n != size {
			t.Fatalf("job output at %d is mixed: %d of %d bytes are %q", i, n, size, out[i])
		}
	}
}

// No room for a job's output (TMPDIR unusable): the job fails with a message
// that says why, and the others are not affected.
func TestParallelNoRoomForOutput(t *testing.T) {
	cmd := exec.Command(arborBin, "parallel", "echo", ":::", "a", "b")
	cmd.Env = append(os.Environ(), "TMPDIR=/nonexistent/arbor-test")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	var err error
	proctest.Within(t, 30*time.Second, "arbor parallel without a TMPDIR", func() { err = cmd.Run() })
	if code := exitCode(t, err); code != 2 || out.Len() != 0 || !strings.Contains(errOut.String(), "making a file for a job's output") {
		t.Fatalf("status %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
}
