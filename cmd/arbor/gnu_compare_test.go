package main

// GNU parallel is the oracle here: every case in gnuCompatCases runs once
// through GNU parallel and once through 'arbor parallel', each in a
// directory of the same fixture files, with the same environment and stdin,
// and the two must agree on stdout, byte for byte, and on the exit status. Nothing here hard-codes
// what the output should be.
//
// Every case must be deterministic in GNU parallel itself (-k, -j1, a
// single job, ...). To check that after changing the table, run GNU
// against itself:
//
//	ARBOR_COMPAT_SELFCHECK=1 go test -run GNUParallel -v ./cmd/arbor/
//
// ARBOR_COMPAT_REPORT=FILE writes the match count to FILE.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/proctest"
)

// compatCase is one command line, given to both implementations after
// "parallel".
type compatCase struct {
	name  string
	args  []string
	stdin string
	// statusOnly compares the exit status but not stdout, where GNU prints
	// text of its own on stdout (its usage after a bad flag).
	statusOnly bool
}

// seqLines is the output of seq n.
func seqLines(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		b.WriteString(strconv.Itoa(i))
		b.WriteByte('\n')
	}
	return b.String()
}

// nulFixture is the content of nul.bin: NUL-separated records, one with a
// space, one with a newline inside, and a NUL at the end.
const nulFixture = "a\x00b c\x00d\n\x00"

// compatFixtures are written into the directory every case runs in.
func compatFixtures() map[string]string {
	var bin strings.Builder
	for i := range 256 {
		bin.WriteByte(byte(i))
	}
	bin.WriteString("\x00\xff\r\n\x00end")
	return map[string]string{
		"lines.txt":                      "alpha\nbeta\ngamma\n",
		"n.txt":                          "1\n2\n",
		"l.txt":                          "x\ny\nz\n",
		"commands.txt":                   "echo one\necho two\n",
		"crlf.txt":                       "a\r\nb\r\n",
		"nul.bin":                        nulFixture,
		"people.tsv":                     "name\tage\nann\t30\nbob\t41\n",
		"people.csv":                     "name,age\nann,30\nbob,41\n",
		"my file.txt":                    "spaces in name\n",
		"dir with space/sub file.tar.gz": "nested\n",
		"names.txt":                      "my file.txt\ndir with space/sub file.tar.gz\n",
		"nofinal.txt":                    "no final newline",
		"big.txt":                        strings.Repeat("x", 100<<10) + "\n",
		"long.txt":                       strings.Repeat("y", 60<<10) + "\n", // under GNU's 63 KiB line limit
		"bin.dat":                        bin.String(),
		"blank.txt":                      "a\n\n  \n\tb\n",
	}
}

var gnuCompatCases = []compatCase{
	// Commands through the shell.
	{name: "echo three", args: []string{"-k", "echo", ":::", "a", "b", "c"}},
	{name: "single job without -k", args: []string{"echo", ":::", "only"}},
	{name: "pipe in command", args: []string{"-k", "echo {} | tr a-z A-Z", ":::", "ab", "cd"}},
	{name: "redirect", args: []string{"-k", "echo {} > out-{#}.tmp; cat out-{#}.tmp", ":::", "r1", "r2"}},
	{name: "semicolon", args: []string{"-k", "echo {}; echo second", ":::", "a", "b"}},
	{name: "exit 3 in one job", args: []string{"echo {}; exit 3", ":::", "a"}},
	{name: "three of four fail", args: []string{"-j1", "exit {}", ":::", "0", "1", "2", "3"}},
	{name: "inputs are commands :::", args: []string{"-k", ":::", "echo foo", "echo bar"}},
	{name: "inputs are commands stdin", args: []string{"-k"}, stdin: "echo one\necho two\n"},
	{name: "inputs are commands ::::", args: []string{"-k", "::::", "commands.txt"}},
	{name: "stdin lines appended", args: []string{"-k", "echo", "in:"}, stdin: "x\ny\n"},
	{name: "options after command belong to it", args: []string{"-k", "echo", "-k", ":::", "a"}},
	{name: "{} in double quotes", args: []string{"-k", `echo "{}"`, ":::", "a b", "c"}},
	{name: "variable in command", args: []string{"-k", "echo $HOME-{}", ":::", "a"}},
	{name: "job stdin is empty", args: []string{"-k", "cat; echo {}", ":::", "1", "2"}, stdin: "from stdin\n"},
	{name: "missing program", args: []string{"/nonexistent/tool", ":::", "a"}},
	{name: "command, no input", args: []string{"echo"}},
	{name: "no command, no input", args: []string{}},
	{name: "empty :::", args: []string{"-k", "echo", ":::"}},
	{name: "empty second :::", args: []string{"-k", "echo", ":::", "a", ":::"}},

	// Quoting: inputs never run as shell code.
	{name: "injection via :::", args: []string{"-k", "echo", ":::", "x; echo INJECTED"}},
	{name: "injection into shell command", args: []string{"-k", "echo {} | cat", ":::", "x; echo INJECTED", "$(echo SUB)"}},
	{name: "shell specials as input", args: []string{"-k", "echo", ":::", "$HOME", "`echo tick`", `"`, "'", "*", "a  b", "&&", "|"}},
	{name: "empty and spaced inputs", args: []string{"-k", "echo", "[{}]", ":::", "", "a  b", " lead", "trail "}},
	{name: "newline inside ::: input", args: []string{"-k", "echo", "x{}x", ":::", "a\nb"}},
	{name: "tab inside input", args: []string{"-k", "echo", "x{}x", ":::", "a\tb"}},
	{name: "glob not expanded", args: []string{"-k", "echo", ":::", "*.txt"}},
	{name: "-q printf", args: []string{"-q", "-k", "printf", `%s|\n`, ":::", "a b", "$x"}},
	{name: "-q keeps ; literal", args: []string{"-q", "-k", "echo", "a;b", ":::", "1"}},
	{name: "--dry-run quoting", args: []string{"--dry-run", "-k", "echo", ":::", "a'b", `a"b`, `a\b`, "a*", "~", "a$b", "a!b", "#x", "é", "a\tb", "plain", "", "a b"}},
	{name: "--dry-run shell command", args: []string{"--dry-run", "-k", "echo {} > out{#}.txt", ":::", "a b", "c"}},
	{name: "--dry-run -q", args: []string{"--dry-run", "-q", "-k", "echo", "a b", ":::", "c d"}},
	{name: "--dry-run -X", args: []string{"--dry-run", "-j1", "-X", "echo", "x{}", ":::", "a b", "c"}},
	{name: "--dry-run -m", args: []string{"--dry-run", "-j1", "-m", "echo", ":::", "a b", "c"}},
	{name: "--dry-run {} {.}", args: []string{"--dry-run", "-k", "echo", "{}", "{.}", ":::", "a b.c"}},

	// Input sources.
	{name: "two ::: product", args: []string{"-k", "echo", ":::", "a", "b", ":::", "1", "2"}},
	{name: "three sources positional", args: []string{"-k", "echo", "{3}{2}{1}", ":::", "a", "b", ":::", "1", "2", ":::", "x"}},
	{name: ":::+ links", args: []string{"-k", "echo", ":::", "a", "b", "c", ":::+", "1", "2"}},
	{name: ":::+ then product", args: []string{"-k", "echo", ":::", "a", "b", ":::+", "1", "2", ":::", "X", "Y"}},
	{name: "--link wraps", args: []string{"-k", "--link", "echo", ":::", "a", "b", "c", ":::", "1", "2"}},
	{name: "--link equal", args: []string{"-k", "--link", "echo", "{2}{1}", ":::", "a", "b", ":::", "1", "2"}},
	{name: ":::: file", args: []string{"-k", "echo", "::::", "lines.txt"}},
	{name: "-a file", args: []string{"-k", "-a", "lines.txt", "echo"}},
	{name: "-a repeated", args: []string{"-k", "-a", "n.txt", "-a", "l.txt", "echo"}},
	{name: "-a -", args: []string{"-k", "-a", "-", "echo", "got"}, stdin: "s1\ns2\n"},
	{name: ":::: - and :::", args: []string{"-k", "echo", "::::", "-", ":::", "p"}, stdin: "s1\ns2\n"},
	{name: ":::: file and -", args: []string{"-k", "echo", "::::", "n.txt", "-"}, stdin: "s1\ns2\n"},
	{name: ":::: mixed with :::", args: []string{"-k", "echo", "{2}{1}", "::::", "n.txt", ":::", "p", "q"}},
	{name: "::::+", args: []string{"-k", "echo", "::::", "n.txt", "::::+", "l.txt"}},
	{name: "input without final newline", args: []string{"-k", "echo", "x{}x", "::::", "nofinal.txt"}},
	{name: "CRLF input", args: []string{"-k", "echo", "x{}x", "::::", "crlf.txt"}},
	{name: "names with spaces", args: []string{"-k", "cat", "::::", "names.txt"}},
	{name: "-E STOP stdin", args: []string{"-k", "-E", "STOP", "echo"}, stdin: "a\nSTOP\nb\n"},
	{name: "-E STOP :::", args: []string{"-k", "-E", "STOP", "echo", ":::", "a", "STOP", "b"}},
	{name: "-r skips blank lines", args: []string{"-r", "-k", "echo", "x{}x", "::::", "blank.txt"}},
	{name: "blank lines without -r", args: []string{"-k", "echo", "x{}x", "::::", "blank.txt"}},
	{name: "-r all blank", args: []string{"-r", "echo", "x"}, stdin: "\n\n"},
	{name: "-0 file", args: []string{"-0", "-k", "echo", "x{}x", "::::", "nul.bin"}},
	{name: "--null stdin", args: []string{"--null", "-k", "echo", "x{}x"}, stdin: nulFixture},
	{name: "-d , stdin", args: []string{"-d", ",", "-k", "echo", "x{}x"}, stdin: "a,b,c\n"},
	{name: "-d , :::", args: []string{"-d", ",", "-k", "echo", "x{}x", ":::", "a,b"}},
	{name: `-d '\n'`, args: []string{"-d", `\n`, "-k", "echo", "x{}x"}, stdin: "a\nb\n"},
	{name: `-d '\t'`, args: []string{"-d", `\t`, "-k", "echo", "x{}x"}, stdin: "a\tb\n"},
	{name: `-d '\0'`, args: []string{"-d", `\0`, "-k", "echo", "x{}x"}, stdin: nulFixture},

	// Replacement strings.
	{name: "path modifiers", args: []string{"-k", "echo", "{}", "{.}", "{/}", "{//}", "{/.}", ":::", "/a/b.c", "d/e.tar.gz", "f", "noext.", ".hidden", "a/"}},
	{name: "modifiers on names with spaces", args: []string{"-k", "echo", "{/}|{//}|{.}|{/.}", "::::", "names.txt"}},
	{name: "{#} {%} -j1", args: []string{"-j1", "-k", "echo", "{#}", "{%}", ":::", "a", "b", "c"}},
	{name: "{#} -j2", args: []string{"-j2", "-k", "echo", "{#}", ":::", "a", "b", "c"}},
	{name: "positional modifiers", args: []string{"-k", "echo", "{1/}", "{2.}", "{1//}", "{1/.}", ":::", "/a/b.c", "d/e.f.g", ":::", "x.y"}},
	{name: "positional beyond sources", args: []string{"-k", "echo", "[{3}]", ":::", "a"}},
	{name: "{} twice", args: []string{"-k", "echo", "{}", "{}", ":::", "a"}},
	{name: "-I ,,", args: []string{"-k", "-I", ",,", "echo", ",,", "{}", ":::", "a"}},
	{name: "-I XX", args: []string{"-k", "-I", "XX", "echo", "XX-XX", ":::", "a", "b"}},
	{name: "--colsep tab", args: []string{"-k", "--colsep", `\t`, "echo", "{2}:{1}", "::::", "people.tsv"}},
	{name: "--colsep comma", args: []string{"-k", "--colsep", ",", "echo", "{2}/{1}", "::::", "people.csv"}},
	{name: "--colsep regex", args: []string{"-k", "--colsep", "[,;]+", "echo", "{3}/{1}", ":::", "a,b;;c", "x;y,z"}},
	{name: "--colsep fewer columns", args: []string{"-k", "--colsep", ",", "echo", "[{1}]", "[{2}]", "[{3}]", ":::", "a,b"}},
	{name: "--colsep with {}", args: []string{"-k", "--colsep", ",", "echo", "{}", ":::", "a,b"}},
	{name: "--header : csv", args: []string{"-k", "--colsep", ",", "--header", ":", "echo", "{age}:{name}", "::::", "people.csv"}},
	{name: "--header : tsv", args: []string{"-k", "--colsep", `\t`, "--header", ":", "echo", "{name}={age}", "::::", "people.tsv"}},
	{name: "--header : :::", args: []string{"-k", "--header", ":", "echo", "{f}{g}", ":::", "f", "1", "2", ":::", "g", "x", "y"}},
	{name: "unknown forms left", args: []string{"-k", "echo", "{foo}", "{}}", "{{}}", "{", "}", ":::", "a"}},
	{name: "-N0", args: []string{"-k", "-N0", "echo", "hi", ":::", "a", "b"}},

	// Several inputs per job.
	{name: "-n 2", args: []string{"-k", "-n", "2", "echo", ":::", "1", "2", "3", "4", "5"}},
	{name: "-N 2 positional", args: []string{"-k", "-N", "2", "echo", "{1}-{2}", ":::", "1", "2", "3", "4", "5"}},
	{name: "-N 2 appended", args: []string{"-k", "-N", "2", "echo", ":::", "1", "2", "3", "4", "5"}},
	{name: "--max-args=2", args: []string{"--jobs=1", "--keep-order", "--max-args=2", "echo", ":::", "a", "b", "c"}},
	{name: "-m -j1", args: []string{"-j1", "-m", "echo", ":::", "1", "2", "3", "4", "5"}},
	{name: "-m -j2 spreads", args: []string{"-j2", "-k", "-m", "echo", ":::", "1", "2", "3", "4", "5"}},
	{name: "-m with context", args: []string{"-j1", "-m", "echo", "x{}y", ":::", "1", "2", "3"}},
	{name: "-X with context", args: []string{"-j1", "-X", "echo", "x{}y", ":::", "1", "2", "3"}},
	{name: "--xargs", args: []string{"-j1", "--xargs", "echo"}, stdin: seqLines(20)},
	{name: "-m -s 20", args: []string{"-j1", "-m", "-s", "20", "echo", ":::", "aaa", "bbb", "ccc", "ddd", "eee", "fff"}},

	// Output, byte for byte.
	{name: "no final newline", args: []string{"-k", "printf", "%s", ":::", "a", "b"}},
	{name: "cat file without final newline", args: []string{"cat", ":::", "nofinal.txt"}},
	{name: "cat CRLF", args: []string{"-k", "cat", ":::", "crlf.txt", "nofinal.txt"}},
	{name: "100 KiB line out", args: []string{"cat", ":::", "big.txt"}},
	// GNU parallel refuses command lines past about 63 KiB; arbor runs
	// them up to the kernel's limit (a deliberate difference, tested in
	// TestParallelBinaryAndLongLines).
	{name: "60 KiB line in", args: []string{"echo {} | wc -c", "::::", "long.txt"}},
	{name: "binary via cat", args: []string{"-k", "cat", ":::", "bin.dat", "bin.dat"}},
	{name: "--tag", args: []string{"-k", "--tag", "echo", "hi", ":::", "a", "b c"}},
	{name: "--tag two sources", args: []string{"-k", "--tag", "echo", ":::", "a", "b", ":::", "1"}},
	{name: "--tag no final newline", args: []string{"-k", "--tag", `printf 'a\nb{}'`, ":::", "x", "y"}},
	{name: "--tagstring {}-x", args: []string{"-k", "--tagstring", "{}-x", "echo", "hi", ":::", "a", "b"}},
	{name: "--tagstring {#}", args: []string{"-k", "--tagstring", "{#}:", "echo", ":::", "a", "b"}},
	{name: "--verbose stdout", args: []string{"--verbose", "-k", "echo", ":::", "a b", "x"}},
	{name: "--group", args: []string{"--group", "-k", "echo {}; echo {}", ":::", "a", "b"}},
	{name: "--ungroup -j1", args: []string{"--ungroup", "-j1", "echo {}; echo {}", ":::", "a", "b"}},
	{name: "--line-buffer -j1", args: []string{"--line-buffer", "-j1", "echo {}; echo {}", ":::", "a", "b"}},
	{name: "--line-buffer --tag -j1", args: []string{"--line-buffer", "--tag", "-j1", "echo {}; echo {}", ":::", "a", "b"}},
	{name: "stderr kept off stdout", args: []string{"-k", "echo out {}; echo err {} >&2", ":::", "a", "b"}},
	{name: "-k reorders", args: []string{"-k", "-j3", "sleep 0.{}; echo {}", ":::", "3", "1", "2"}},

	// Job slots.
	{name: "-j 1", args: []string{"-j", "1", "echo", ":::", "a", "b", "c"}},
	{name: "-j 0", args: []string{"-k", "-j", "0", "echo", ":::", "a", "b", "c"}},
	{name: "-j 50%", args: []string{"-k", "-j", "50%", "echo", ":::", "a", "b", "c"}},
	{name: "-j +0", args: []string{"-k", "-j", "+0", "echo", ":::", "a", "b", "c"}},
	{name: "-j -1", args: []string{"-k", "-j", "-1", "echo", ":::", "a", "b", "c"}},
	{name: "bundled -kj1", args: []string{"-kj1", "echo", ":::", "a", "b"}},
	{name: "bad -j", args: []string{"-j", "foo", "echo", ":::", "a"}, statusOnly: true},
	{name: "--shuf single input", args: []string{"--shuf", "echo", ":::", "only"}},
	{name: "--shuf identical inputs", args: []string{"--shuf", "-k", "echo", ":::", "x", "x", "x"}},

	// Time limits and retries.
	{name: "--timeout fast job", args: []string{"--timeout", "1", "echo", ":::", "fast"}},
	{name: "--timeout kills slow job", args: []string{"-k", "--timeout", "1", "sleep {}; echo {}", ":::", "0", "5"}},
	{name: "--retries 2 always failing", args: []string{"-k", "-j1", "--retries", "2", "echo try {}; exit 4", ":::", "a", "b"}},
	{name: "--retries 3 succeeds", args: []string{"-k", "--retries", "3", "echo {}", ":::", "a", "b"}},

	// --halt and exit statuses.
	{name: "--halt now,fail=1", args: []string{"-j1", "--halt", "now,fail=1", "echo {}; exit {}", ":::", "0", "7", "0"}},
	{name: "--halt soon,fail=1", args: []string{"-j1", "--halt", "soon,fail=1", "echo {}; exit {}", ":::", "0", "7", "0"}},
	{name: "--halt now,success=1", args: []string{"-j1", "--halt", "now,success=1", "echo {}; exit {}", ":::", "3", "0", "4"}},
	{name: "--halt soon,done=1", args: []string{"-j1", "--halt", "soon,done=1", "echo {}; exit {}", ":::", "3", "0", "4"}},
	{name: "--halt 2", args: []string{"-j1", "--halt", "2", "echo {}; exit {}", ":::", "0", "3", "0"}},
	{name: "--halt 1", args: []string{"-j1", "--halt", "1", "echo {}; exit {}", ":::", "0", "5", "0"}},
	{name: "--halt now,fail=50%", args: []string{"-j1", "--halt", "now,fail=50%", "echo {}; exit {}", ":::", "0", "3", "4", "5", "0"}},
	{name: "--halt now,fail=2", args: []string{"-j1", "--halt", "now,fail=2", "echo {}; exit {}", ":::", "1", "0", "2", "3"}},
	{name: "exit 7 with --halt now,fail=1", args: []string{"-j1", "--halt", "now,fail=1", "exit {}", ":::", "7", "1"}},
	{name: "job killed by signal", args: []string{"-k", "-j1", ":::", "echo a", "kill -9 $$", "echo b"}},
	{name: "killed by signal with --halt", args: []string{"-k", "-j1", "--halt", "now,fail=1", ":::", "echo a", "kill -9 $$", "echo b"}},
	{name: "100 failures", args: []string{"-j", "8", "false"}, stdin: seqLines(100)},
	{name: "110 failures", args: []string{"-j", "8", "false"}, stdin: seqLines(110)},
	{name: "bad flag", args: []string{"--frob", "echo", ":::", "a"}, statusOnly: true},

	// Found in review of the first arbor version.
	{name: "-k --halt now drops held output", args: []string{"-k", "-j4", "--halt", "now,fail=1", "sleep 0.{}; echo {}; test {} != 4", ":::", "1", "6", "2", "4", "9"}},
	{name: "--retries stop after --halt soon", args: []string{"-j2", "--retries", "2", "--halt", "soon,fail=1", "echo {}; sleep 0.{}; exit {}", ":::", "0", "3", "1", "0", "0"}},
	{name: "-E empty is no end", args: []string{"-k", "-E", "", "echo", ":::", "a", "", "b"}},
	{name: "--xapply", args: []string{"-k", "--xapply", "echo", ":::", "a", "b", "c", ":::", "1", "2"}},
	{name: "-L 2", args: []string{"-k", "-L", "2", "echo", ":::", "a", "b", "c"}},
	{name: "--arg-sep", args: []string{"-k", "--arg-sep", ",,", "echo", ",,", "a", "b"}},
	{name: "--pipe --block 10k is 10000", args: []string{"-k", "--pipe", "--block", "10k", "wc", "-l"}, stdin: seqLines(20000)},
	{name: "--pipe --block 10K is 10240", args: []string{"-k", "--pipe", "--block", "10K", "wc", "-l"}, stdin: seqLines(20000)},
	{name: "--pipe --header repeats it", args: []string{"-k", "--pipe", "-N", "3", "--header", ":", "cat"}, stdin: seqLines(10)},
	{name: "--pipe ignores -0", args: []string{"-k", "--pipe", "-0", "-N2", "od -c"}, stdin: "a\x00b\x00c\x00"},
	{name: "a missing :::: file", args: []string{"echo", "::::", "/nonexistent/file"}},
	{name: "a joblog that cannot be written", args: []string{"--joblog", "/nonexistent/dir/log", "echo", ":::", "a"}},
	{name: "bad --halt", args: []string{"--halt", "sometimes", "echo", ":::", "a"}},

	// --pipe.
	{name: "--pipe -N 3 wc -l", args: []string{"--pipe", "-N", "3", "-k", "wc", "-l"}, stdin: seqLines(10)},
	{name: "--pipe --block 10 wc -l", args: []string{"--pipe", "--block", "10", "-k", "wc", "-l"}, stdin: seqLines(10)},
	{name: "--pipe --block 10 cat", args: []string{"--pipe", "--block", "10", "-k", "echo ==; cat"}, stdin: seqLines(10)},
	{name: "--pipe -N3 {#}", args: []string{"--pipe", "-N3", "-k", "echo {#}; cat"}, stdin: seqLines(10)},
	{name: "--pipe no final newline", args: []string{"--pipe", "-k", "cat"}, stdin: "a\nb\nno newline"},
	{name: "--pipe -N1 CRLF", args: []string{"--pipe", "-N1", "-k", "wc", "-c"}, stdin: "a\r\nbb\r\n"},

	// Remote and environment, locally.
	{name: "-S :", args: []string{"-S", ":", "-k", "echo", ":::", "a", "b"}},
	{name: "--env NAME", args: []string{"--env", "ARBOR_COMPAT_VAR", "-k", "echo $ARBOR_COMPAT_VAR {}", ":::", "a"}},
}

// deliberateDifferences are the places where arbor differs from GNU
// parallel on purpose; for these the test checks arbor's own behaviour,
// not GNU's. Each entry must also be documented in 'arbor help parallel'
// (see parallelHelpTail, "Where arbor differs from GNU parallel").
var deliberateDifferences = []struct {
	name   string
	signal syscall.Signal // sent to arbor once both jobs are running
	code   int            // arbor's exit status
}{
	// GNU parallel 20221122 kills its jobs and exits 255 on either signal;
	// arbor stops every job's process group and exits 128+signal.
	{"SIGINT stops the run with 130", syscall.SIGINT, 130},
	{"SIGTERM stops the run with 143", syscall.SIGTERM, 143},
}

// gnuParallel returns the path of GNU parallel, or skips the test.
func gnuParallel(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("parallel")
	if err != nil {
		t.Skip("GNU parallel is not on PATH")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, path, "--version").Output()
	if !bytes.Contains(out, []byte("GNU parallel")) {
		t.Skipf("%s is not GNU parallel", path)
	}
	return path
}

// compatEnv is the environment both implementations run in: a home of
// their own (no ~/.parallel, no citation notice), no PARALLEL options, one
// known shell and the C locale.
func compatEnv(t *testing.T) []string {
	t.Helper()
	home := t.TempDir()
	parHome := filepath.Join(home, ".parallel")
	if err := os.MkdirAll(parHome, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(parHome, "will-cite"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "PARALLEL"), strings.HasPrefix(k, "LC_"),
			k == "HOME", k == "SHELL", k == "LANG", k == "LANGUAGE", k == "ARBOR_COMPAT_VAR":
			continue
		}
		env = append(env, kv)
	}
	// GNU parallel takes the shell it was started from (it looks up its
	// parent processes) unless PARALLEL_SHELL says; name it for both.
	return append(env,
		"HOME="+home,
		"PARALLEL_HOME="+parHome,
		"SHELL=/bin/sh",
		"PARALLEL_SHELL=/bin/sh",
		"LC_ALL=C",
		"ARBOR_COMPAT_VAR=from-env",
	)
}

// writeFixtures writes compatFixtures into dir.
func writeFixtures(t *testing.T, dir string) {
	t.Helper()
	for name, content := range compatFixtures() {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// implementation is how to start one of the two: the program and the
// words before the case's arguments.
type implementation struct {
	name string
	argv []string
}

// implementations returns GNU parallel and arbor, or GNU twice with
// ARBOR_COMPAT_SELFCHECK set (to check the cases are deterministic).
func implementations(gnu string) (implementation, implementation) {
	g := implementation{"GNU parallel", []string{gnu, "--will-cite"}}
	if os.Getenv("ARBOR_COMPAT_SELFCHECK") != "" {
		return g, implementation{"GNU parallel (again)", g.argv}
	}
	return g, implementation{"arbor parallel", []string{arborBin, "parallel"}}
}

type compatResult struct {
	stdout []byte
	stderr []byte
	code   int
}

// runCompat runs impl with args in dir, bounded in time.
func runCompat(t *testing.T, impl implementation, dir string, env []string, stdin string, args []string) compatResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	argv := append(append([]string(nil), impl.argv...), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	// A job left running may hold the pipes open after the kill.
	cmd.WaitDelay = 5 * time.Second
	var err error
	proctest.Within(t, 40*time.Second, fmt.Sprintf("%s %q", impl.name, args), func() { err = cmd.Run() })
	res := compatResult{stdout: out.Bytes(), stderr: errOut.Bytes()}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Errorf("%s %q: did not finish within 30s; stdout %s", impl.name, args, clip(res.stdout))
		res.code = -1
	case errors.As(err, &exit):
		res.code = exit.ExitCode()
	case err != nil:
		t.Errorf("%s %q: %v", impl.name, args, err)
		res.code = -1
	}
	return res
}

// clip quotes b for a message, cut to a readable length.
func clip(b []byte) string {
	const limit = 600
	if len(b) <= limit {
		return fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf("%q... (%d bytes)", b[:limit], len(b))
}

func TestGNUParallelCompat(t *testing.T) {
	gnu := gnuParallel(t)
	ref, other := implementations(gnu)
	env := compatEnv(t)
	// One directory for each implementation, so that cases may run at the
	// same time and a case that writes files cannot disturb the other run.
	refDir, otherDir := t.TempDir(), t.TempDir()
	writeFixtures(t, refDir)
	writeFixtures(t, otherDir)

	seen := map[string]bool{}
	for _, c := range gnuCompatCases {
		if seen[c.name] {
			t.Fatalf("two cases are called %q", c.name)
		}
		seen[c.name] = true
	}

	var match atomic.Int64
	t.Run("cases", func(t *testing.T) {
		for _, c := range gnuCompatCases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				want := runCompat(t, ref, refDir, env, c.stdin, c.args)
				got := runCompat(t, other, otherDir, env, c.stdin, c.args)
				if want.code == got.code && (c.statusOnly || bytes.Equal(want.stdout, got.stdout)) {
					match.Add(1)
					return
				}
				t.Errorf("parallel %q (stdin %s)\n  %s: status %d, stdout %s\n  %s: status %d, stdout %s\n  %s stderr: %s",
					c.args, clip([]byte(c.stdin)),
					ref.name, want.code, clip(want.stdout),
					other.name, got.code, clip(got.stdout),
					other.name, clip(got.stderr))
			})
		}
	})
	line := fmt.Sprintf("GNU parallel compatibility: %d of %d invocations match", match.Load(), len(gnuCompatCases))
	t.Log(line)
	if path := os.Getenv("ARBOR_COMPAT_REPORT"); path != "" {
		if err := os.WriteFile(path, []byte(line+"\n"), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// resultsCases run with --results res (res is added before the command).
var resultsCases = []compatCase{
	{name: "one source", args: []string{"-k", "echo {}; echo err {} >&2", ":::", "a", "b"}},
	{name: "two sources, slash and space", args: []string{"-k", "echo {1} {2}", ":::", "a", "b/c", ":::", "x y", "1"}},
	{name: "--header :", args: []string{"-k", "--header", ":", "echo {a}{b}", ":::", "a", "I", "II", ":::", "b", "III"}},
	{name: "file source", args: []string{"-k", "echo", "::::", "n.txt"}},
	{name: "failing jobs", args: []string{"-k", "echo {}; exit {}", ":::", "0", "1", "2"}},
	{name: "no output", args: []string{"-k", "true", ":::", "q"}},
	{name: "no final newline", args: []string{"-k", "printf", "%s", ":::", "a"}},
	{name: "-n 2: every input names a level", args: []string{"-k", "-n", "2", "echo", ":::", "a", "b", "a", "c"}},
	{name: "an empty value", args: []string{"-k", "echo", ":::", "", "x"}},
}

// tree lists the files under root, relative, with their contents.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.Walk(root, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if info.IsDir() {
			files[rel+"/"] = ""
			return nil
		}
		b, err := os.ReadFile(path)
		files[rel] = string(b)
		return err
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Error(err)
	}
	return files
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}

// runBoth runs args through both implementations, each in a directory of
// its own (with the fixtures, if asked), reports a difference in status or
// stdout, and returns the two directories for a look at the files left.
func runBoth(t *testing.T, ref, other implementation, env []string, stdin string, args []string, fixtures bool) (refDir, otherDir string) {
	t.Helper()
	refDir, otherDir = t.TempDir(), t.TempDir()
	if fixtures {
		writeFixtures(t, refDir)
		writeFixtures(t, otherDir)
	}
	want := runCompat(t, ref, refDir, env, stdin, args)
	got := runCompat(t, other, otherDir, env, stdin, args)
	if want.code != got.code || !bytes.Equal(want.stdout, got.stdout) {
		t.Errorf("parallel %q:\n  %s: status %d, stdout %s\n  %s: status %d, stdout %s, stderr %s",
			args, ref.name, want.code, clip(want.stdout), other.name, got.code, clip(got.stdout), clip(got.stderr))
	}
	return refDir, otherDir
}

// TestGNUParallelResultsLayout compares the tree --results DIR leaves (the
// file names, and every file's content), as well as stdout and status.
func TestGNUParallelResultsLayout(t *testing.T) {
	gnu := gnuParallel(t)
	ref, other := implementations(gnu)
	env := compatEnv(t)
	for _, c := range resultsCases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"--results", "res"}, c.args...)
			refDir, otherDir := runBoth(t, ref, other, env, c.stdin, args, true)
			wantTree := tree(t, filepath.Join(refDir, "res"))
			gotTree := tree(t, filepath.Join(otherDir, "res"))
			if w, g := sortedKeys(wantTree), sortedKeys(gotTree); !slices.Equal(w, g) {
				t.Errorf("parallel %q: files under res differ\n  %s: %q\n  %s: %q", args, ref.name, w, other.name, g)
				return
			}
			for _, k := range sortedKeys(wantTree) {
				if wantTree[k] != gotTree[k] {
					t.Errorf("parallel %q: res/%s: %s %q, %s %q", args, k, ref.name, wantTree[k], other.name, gotTree[k])
				}
			}
		})
	}
}

// joblogCases run with --joblog log (added before the command); all with
// -j1 so the rows come in one order.
var joblogCases = []compatCase{
	{name: "exit statuses", args: []string{"-j1", "echo {}; exit {}", ":::", "0", "1", "2"}},
	{name: "signal", args: []string{"-j1", ":::", "echo a", "kill -9 $$", "kill -TERM $$"}},
	{name: "quoted input", args: []string{"-j1", "echo", ":::", "a b", "it's", "$HOME"}},
	{name: "timeout", args: []string{"-j1", "--timeout", "1", "sleep", ":::", "0", "5"}},
	{name: "retries", args: []string{"-j1", "--retries", "2", "exit 3; :", ":::", "r"}},
	{name: "two sources", args: []string{"-j1", "echo", ":::", "a", "b", ":::", "1"}},
	{name: "halt", args: []string{"-j1", "--halt", "now,fail=1", "exit {}", ":::", "0", "4", "0"}},
}

// readJoblog returns a job log's header line and its rows, split at tabs.
func readJoblog(t *testing.T, path string) (header string, rows [][]string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("joblog: %v", err)
		return "", nil
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	header = lines[0]
	for _, l := range lines[1:] {
		rows = append(rows, strings.Split(l, "\t"))
	}
	return header, rows
}

// TestGNUParallelJoblogFormat compares --joblog files: the header line
// exactly, nine tab-separated columns on every row, and per row the Seq,
// Exitval, Signal and Command columns (not the times or the host).
func TestGNUParallelJoblogFormat(t *testing.T) {
	gnu := gnuParallel(t)
	ref, other := implementations(gnu)
	env := compatEnv(t)
	for _, c := range joblogCases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"--joblog", "log"}, c.args...)
			refDir, otherDir := runBoth(t, ref, other, env, c.stdin, args, false)
			wantHeader, wantRows := readJoblog(t, filepath.Join(refDir, "log"))
			gotHeader, gotRows := readJoblog(t, filepath.Join(otherDir, "log"))
			if gotHeader != wantHeader {
				t.Errorf("header: %s %q, %s %q", ref.name, wantHeader, other.name, gotHeader)
			}
			if len(gotRows) != len(wantRows) {
				t.Errorf("%s wrote %d rows, %s %d:\n  %q\n  %q", ref.name, len(wantRows), other.name, len(gotRows), wantRows, gotRows)
				return
			}
			for i, g := range gotRows {
				w := wantRows[i]
				if len(w) != 9 {
					t.Fatalf("%s row %q: %d columns", ref.name, w, len(w))
				}
				if len(g) != 9 {
					t.Errorf("%s row %q: %d columns, want 9", other.name, g, len(g))
					continue
				}
				for _, col := range []int{0, 6, 7, 8} { // Seq, Exitval, Signal, Command
					if g[col] != w[col] {
						t.Errorf("row %d column %d: %s %q, %s %q", i+1, col+1, ref.name, w[col], other.name, g[col])
					}
				}
			}
		})
	}
}

// TestGNUParallelDeliberateDifferences checks arbor's own behaviour where
// it differs from GNU parallel on purpose (see deliberateDifferences).
func TestGNUParallelDeliberateDifferences(t *testing.T) {
	for _, d := range deliberateDifferences {
		t.Run(d.name, func(t *testing.T) {
			dir := t.TempDir()
			args := append([]string{"parallel", "-j", "2"}, pidJob(dir)...)
			args = append(args, ":::", "a", "b")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, arborBin, args...)
			cmd.WaitDelay = 5 * time.Second
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			proctest.Eventually(t, 10*time.Second, "two jobs running", func() bool { return len(pidsIn(t, dir)) == 2 })
			if err := cmd.Process.Signal(d.signal); err != nil {
				t.Fatal(err)
			}
			var err error
			proctest.Within(t, 40*time.Second, "arbor after "+d.signal.String(), func() { err = cmd.Wait() })
			if code := exitCode(t, err); code != d.code {
				t.Errorf("status %d after %v, want %d", code, d.signal, d.code)
			}
			proctest.Gone(t, "jobs after "+d.signal.String(), pidsIn(t, dir)...)
		})
	}
}
