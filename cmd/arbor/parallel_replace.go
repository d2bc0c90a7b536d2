package main

import (
	"path"
	"regexp"
	"strconv"
	"strings"
)

// A template is the command with its replacement strings found, parsed
// once. Its words are joined by spaces to make each job's command line,
// which the shell runs; every value put in is quoted for that shell, so no
// input can run as a command.
type template struct {
	words    [][]token
	quote    bool // values are shell-quoted (not when each input is the command)
	hasAll   int  // how many tokens take all the job's values
	contextX bool // -X: a word holding {} is repeated for each value
}

type tokenKind int

const (
	tokLiteral  tokenKind = iota
	tokAll                // {} and its modified forms: every value of the job
	tokPosition           // {N}, {N.}, ... and --header names: one value
	tokSeq                // {#}
	tokSlot               // {%}
)

type token struct {
	kind tokenKind
	text string // a literal's text
	pos  int    // tokPosition: 0-based
	mod  string // "", ".", "/", "//", "/."
}

// braceForm matches the replacement strings that start with a brace:
// {.} {/} {//} {/.} {#} {%} and {N} with the same modifiers.
var braceForm = regexp.MustCompile(`^\{(\d*)(\.|/|//|/\.|#|%)?\}`)

// newTemplate parses command. replace is what stands for the input ({}
// unless -I says otherwise); names are the --header column names.
func newTemplate(command []string, replace string, names map[string]int, quoteWords bool, multi multiMode) *template {
	t := &template{quote: true, contextX: multi == multiX}
	if len(command) == 0 {
		// Each input is a command: put in as it is.
		t.quote = false
		t.words = [][]token{{{kind: tokAll}}}
		t.hasAll = 1
		return t
	}
	found := false
	for _, arg := range command {
		// Without -q the shell splits the command's own words; a word
		// here is what -X repeats, so split at spaces as the shell will.
		parts := strings.Split(arg, " ")
		if quoteWords {
			parts = []string{arg}
		}
		for _, p := range parts {
			w := parseWord(p, replace, names, quoteWords)
			for _, tok := range w {
				if tok.kind != tokLiteral {
					found = true
				}
				if tok.kind == tokAll {
					t.hasAll++
				}
			}
			t.words = append(t.words, w)
		}
	}
	if !found {
		t.words = append(t.words, []token{{kind: tokAll}})
		t.hasAll++
	}
	return t
}

// parseWord splits one word into literals and replacement strings. Forms
// it does not know ({foo}, {}} ...) stay literal text, as GNU parallel
// leaves them. With quote (-q), literal text is quoted for the shell.
func parseWord(s, replace string, names map[string]int, quote bool) []token {
	var toks []token
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			text := lit.String()
			if quote {
				text = shellQuote(text)
			}
			toks = append(toks, token{kind: tokLiteral, text: text})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], replace) {
			flush()
			toks = append(toks, token{kind: tokAll})
			i += len(replace)
			continue
		}
		if s[i] == '{' {
			if m := braceForm.FindStringSubmatch(s[i:]); m != nil && !(m[1] == "" && m[2] == "" && replace != "{}") {
				flush()
				i += len(m[0])
				switch {
				case m[2] == "#":
					if m[1] == "" {
						toks = append(toks, token{kind: tokSeq})
					} else {
						toks = append(toks, token{kind: tokLiteral, text: m[0]})
					}
				case m[2] == "%":
					if m[1] == "" {
						toks = append(toks, token{kind: tokSlot})
					} else {
						toks = append(toks, token{kind: tokLiteral, text: m[0]})
					}
				case m[1] == "":
					toks = append(toks, token{kind: tokAll, mod: m[2]})
				default:
					n, err := strconv.Atoi(m[1])
					if err != nil || n < 1 {
						toks = append(toks, token{kind: tokLiteral, text: m[0]})
						continue
					}
					toks = append(toks, token{kind: tokPosition, pos: n - 1, mod: m[2]})
				}
				continue
			}
			if j := strings.IndexByte(s[i:], '}'); j > 1 {
				if pos, ok := names[s[i+1:i+j]]; ok {
					flush()
					toks = append(toks, token{kind: tokPosition, pos: pos})
					i += j + 1
					continue
				}
			}
		}
		lit.WriteByte(s[i])
		i++
	}
	flush()
	return toks
}

// render makes one job's command line from its records (each a tuple of
// values), its sequence number and its slot.
func (t *template) render(b *strings.Builder, records [][]string, seq, slot int) {
	var flat []string
	if len(records) == 1 {
		flat = records[0]
	} else {
		for _, r := range records {
			flat = append(flat, r...)
		}
	}
	for wi, w := range t.words {
		if wi > 0 {
			b.WriteByte(' ')
		}
		if t.contextX && len(flat) > 1 && wordHasAll(w) {
			for vi, v := range flat {
				if vi > 0 {
					b.WriteByte(' ')
				}
				t.renderWord(b, w, []string{v}, flat, seq, slot)
			}
			continue
		}
		t.renderWord(b, w, flat, flat, seq, slot)
	}
}

func wordHasAll(w []token) bool {
	for _, tok := range w {
		if tok.kind == tokAll {
			return true
		}
	}
	return false
}

func (t *template) renderWord(b *strings.Builder, w []token, all, flat []string, seq, slot int) {
	for _, tok := range w {
		switch tok.kind {
		case tokLiteral:
			b.WriteString(tok.text)
		case tokSeq:
			b.WriteString(strconv.Itoa(seq))
		case tokSlot:
			b.WriteString(strconv.Itoa(slot))
		case tokAll:
			for i, v := range all {
				if i > 0 {
					b.WriteByte(' ')
				}
				t.value(b, v, tok.mod)
			}
		case tokPosition:
			if tok.pos < len(flat) {
				t.value(b, flat[tok.pos], tok.mod)
			}
		}
	}
}

func (t *template) value(b *strings.Builder, v, mod string) {
	v = modify(v, mod)
	if t.quote {
		v = shellQuote(v)
	}
	b.WriteString(v)
}

// modify applies a replacement string's modifier, as GNU parallel defines
// them: {.} drops the extension, {/} is the base name, {//} the directory,
// {/.} the base name without extension.
func modify(v, mod string) string {
	switch mod {
	case ".":
		return dropExt(v)
	case "/":
		return v[strings.LastIndexByte(v, '/')+1:]
	case "//":
		return dirname(v)
	case "/.":
		return dropExt(v[strings.LastIndexByte(v, '/')+1:])
	}
	return v
}

// dirname is Perl's File::Basename dirname, which GNU parallel uses for
// {//}: trailing slashes do not count ("a/b/" is in "a").
func dirname(v string) string {
	if t := strings.TrimRight(v, "/"); t != "" {
		v = t
	}
	return path.Dir(v)
}

// dropExt removes a final ".ext" that holds no dot or slash.
func dropExt(v string) string {
	i := strings.LastIndexByte(v, '.')
	if i < 0 || strings.IndexByte(v[i+1:], '/') >= 0 {
		return v
	}
	return v[:i]
}

// valueLen is an upper bound of what one value adds to a command line, for
// fitting as many as the line takes (-m, -X, --xargs).
func (t *template) valueLen(v string) int {
	n := len(v) + 1
	if t.quote {
		n = len(shellQuote(v)) + 1
	}
	return n * max(t.hasAll, 1)
}

// shellQuote quotes s for a Bourne shell the way GNU parallel does, so
// that --dry-run prints the same lines: left alone when it is made of
// letters, digits and -_.+/ only, else in single quotes.
func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	plain := true
	for i := 0; i < len(s); i++ {
		if !isPlainByte(s[i]) {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	q := "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
	q = strings.TrimPrefix(q, "''")
	return strings.TrimSuffix(q, "''")
}

func isPlainByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '+' || c == '/'
}

// simpleWords splits a command line into words when running it through a
// shell would do nothing but split and unquote it: only plain words,
// single-quoted strings and double-quoted strings without $, ` or \, and a
// first word that is no shell builtin, keyword or assignment. Then the job
// is run without the shell, which halves its start-up cost. Anything else
// (pipes, redirects, variables, globs, builtins ...) goes to the shell.
func simpleWords(line string) ([]string, bool) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return nil, false
			}
			cur.WriteString(line[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			j := strings.IndexByte(line[i+1:], '"')
			if j < 0 {
				return nil, false
			}
			body := line[i+1 : i+1+j]
			if strings.ContainsAny(body, "$`\\!") {
				return nil, false
			}
			cur.WriteString(body)
			i += j + 1
			inWord = true
		case isPlainByte(c) || c == ',' || c == ':' || c == '@' || c == '%' || c == '^' || (c == '=' && len(words) > 0):
			cur.WriteByte(c)
			inWord = true
		default:
			return nil, false
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) == 0 || shellBuiltins[words[0]] {
		return nil, false
	}
	if words[0] == "true" || words[0] == "false" {
		// The builtins ignore their arguments; the programs answer these.
		for _, w := range words[1:] {
			if w == "--help" || w == "--version" {
				return nil, false
			}
		}
	}
	return words, true
}

// shellBuiltins are the words a POSIX shell, bash or dash treats itself
// when they come first: running the program of that name instead would
// behave differently (echo's escapes, exit, cd ...).
var shellBuiltins = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`! [ [[ ]] { } alias bg bind break builtin caller case cd command compgen complete
		compopt continue declare dirs disown do done echo elif else enable esac eval exec exit export fc fg fi
		for function getopts hash help history if in jobs kill let local logout mapfile popd printf pushd pwd read
		readarray readonly return select set shift shopt source suspend test then time times trap type typeset
		ulimit umask unalias unset until wait while`) {
		m[w] = true
	}
	return m
}()
