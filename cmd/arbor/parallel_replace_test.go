package main

import (
	"os/exec"
	"strings"
	"testing"
)

// tricky are inputs a job's command line must carry through the shell
// unchanged.
var tricky = []string{"", "a b", "it's", `"q"`, "x;y", "$HOME", `a\b`, "tab\there", "*", "~", "-n",
	"a\nb", "`id`", "$(id)", "{}", "!x", "é", "\xff", "''", `'"'"'`, " lead", "trail "}

// The fast path (no shell) must split a command line exactly as the shell
// would, or give it to the shell: checked against sh itself.
func TestSimpleWordsAgreesWithTheShell(t *testing.T) {
	taken := 0
	defer func() {
		if taken < len(tricky)/2 {
			t.Errorf("the fast path took only %d of %d lines", taken, len(tricky))
		}
	}()
	for _, in := range tricky {
		// printf prints each argument it gets on a line: the shell's words.
		line := "printf '%s|' " + shellQuote(in) + " end"
		out, err := exec.Command("sh", "-c", line).Output()
		if err != nil {
			t.Fatalf("sh -c %q: %v", line, err)
		}
		if want := in + "|end|"; string(out) != want {
			t.Fatalf("sh split %q into %q, want %q: the quoting is wrong", line, out, want)
		}
		// The same arguments after a program that is no builtin.
		line = "prog " + shellQuote(in) + " end"
		words, ok := simpleWords(line)
		if !ok {
			continue // the shell runs it: nothing to agree on
		}
		if len(words) != 3 || words[1] != in || words[2] != "end" {
			t.Errorf("simpleWords(%q) = %q; the shell makes prog, %q, end", line, words, in)
		}
		taken++
	}
}

// FuzzSimpleWords checks that an input quoted for the shell comes back
// whole from the fast path's own splitter, whenever that takes the line.
func FuzzSimpleWords(f *testing.F) {
	for _, s := range tricky {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if strings.IndexByte(in, 0) >= 0 {
			return // no command line can hold a NUL
		}
		line := "prog " + shellQuote(in) + " " + shellQuote(in)
		words, ok := simpleWords(line)
		if ok && (len(words) != 3 || words[1] != in || words[2] != in) {
			t.Fatalf("simpleWords(%q) = %q, want [prog %q %q]", line, words, in, in)
		}
	})
}
