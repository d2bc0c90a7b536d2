package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// exitParallelUsage is GNU parallel's status for a command line it cannot
// run (a bad flag or value).
const exitParallelUsage = 255

// maxJobSlots is what -j 0 ("as many as possible") means: GNU parallel's
// own limit comes from free file handles, about 250 on a default system.
const maxJobSlots = 250

// parallelConfig is an arbor parallel command line, parsed. Nothing in it
// changes once parsing is over.
type parallelConfig struct {
	command []string // the command's words; empty: each input is a command
	sources []sourceSpec
	link    bool // --link: all sources advance together, the shorter wrap

	jobs      int
	quote     bool   // -q: quote the command's own words for the shell
	replace   string // -I: what stands for the input ({} by default)
	colsep    *regexp.Regexp
	header    bool // --header: the first record of each source names its columns
	maxArgs   int  // -n/-N: records per job; 0 means one (or as many as fit, with multi)
	positions bool // -N: the job's records are {1}..{N}
	zeroArgs  bool // -n 0 or -N 0: one job per input, given none of it
	multi     multiMode
	maxChars  int
	delim     []byte // record separator; nil means newline
	eofStr    *string
	skipEmpty bool   // -r
	trim      string // --trim: "", "l", "r", "lr" or "rl"

	output     outputMode
	keepOrder  bool
	tag        bool
	tagString  *string
	results    string
	dryRun     bool
	verbose    bool // --verbose, -t: each command on stderr
	printCmd   bool // -v: each command on stdout
	progress   bool
	shell      string
	delay      time.Duration
	shuffle    bool
	timeout    time.Duration
	timeoutPct float64 // --timeout N%: of the median run time of jobs that succeeded
	attempts   int     // --retries: attempts in all
	pipe       bool
	block      int
	recEnd     []byte // --pipe's record end (GNU ignores -0 and -d there)
	argSep     string // ::: (--arg-sep)
	fileSep    string // :::: (--arg-file-sep)
	joblog     string
	resume     bool
	resumeFail bool
	halt       haltPolicy
}

// sourceSpec is one input source as given on the command line.
type sourceSpec struct {
	list   []string // a ::: list, or
	file   string   // a :::: or -a file; "-" is stdin
	linked bool     // :::+ or ::::+: advances with the source before it
	isList bool
}

type multiMode int

const (
	multiNone  multiMode = iota
	multiM               // -m: as many arguments as fit, spread over the job slots
	multiX               // -X: like -m, with the words around {} repeated per argument
	multiXargs           // --xargs: as many as fit, not spread
)

type outputMode int

const (
	outputGroup      outputMode = iota // each job's output whole, once it ends
	outputUngroup                      // straight through, as written
	outputLineBuffer                   // whole lines, as they come
)

// parseParallel parses arbor parallel's command line. It writes the help
// to stdout and returns errHelp for -h.
func parseParallel(args []string, stdout io.Writer) (*parallelConfig, error) {
	fs := pflag.NewFlagSet("parallel", pflag.ContinueOnError)
	fs.SetInterspersed(false)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	var (
		jobs        = fs.StringP("jobs", "j", "100%", "job slots: N, 0 (as many as possible), N% of the CPUs, +N or -N CPUs")
		argFiles    = fs.StringArrayP("arg-file", "a", nil, "read inputs from FILE (- is stdin); repeat for more sources")
		link        = fs.Bool("link", false, "link the input sources: the n-th job takes the n-th input of each; shorter sources wrap")
		replace     = fs.StringP("replace", "I", "{}", "use STR instead of {} for the input")
		colsep      = fs.StringP("colsep", "C", "", "split each input into columns at REGEX: {1}, {2}, ...")
		header      = fs.String("header", "", "with ':', the first input line names the columns: {name}")
		maxArgs     = fs.IntP("max-args", "n", 0, "use up to N inputs per job")
		maxRepl     = fs.IntP("max-replace-args", "N", 0, "use up to N inputs per job, as {1}..{N}")
		flagM       = fs.BoolP("m", "m", false, "as many inputs per job as the command line takes, spread over the slots")
		flagX       = fs.BoolP("X", "X", false, "like -m, repeating the word around {} for each input")
		xargs       = fs.Bool("xargs", false, "as many inputs per job as the command line takes")
		maxChars    = fs.IntP("max-chars", "s", 0, "longest command line, in bytes")
		null        = fs.BoolP("null", "0", false, "inputs end with NUL, not newline")
		delim       = fs.StringP("delimiter", "d", "", "inputs end with DELIM (\\n, \\t, \\0 and \\xHH understood)")
		eofStr      = fs.StringP("eof", "E", "", "stop reading inputs at a line equal to STR")
		noEmpty     = fs.BoolP("no-run-if-empty", "r", false, "skip inputs that are empty or only white space")
		trim        = fs.String("trim", "n", "trim white space from inputs: n (none), l, r, lr or rl")
		group       = fs.Bool("group", false, "print each job's output whole when it ends (the default)")
		ungroup     = fs.BoolP("ungroup", "u", false, "print output as it comes, unbuffered (lines may mix)")
		lineBuffer  = fs.Bool("line-buffer", false, "print whole lines as they come")
		lb          = fs.Bool("lb", false, "same as --line-buffer")
		keepOrder   = fs.BoolP("keep-order", "k", false, "print outputs in input order")
		tag         = fs.Bool("tag", false, "prefix each output line with the job's inputs and a tab")
		tagString   = fs.String("tagstring", "", "prefix each output line with STR (replacement strings work) and a tab")
		results     = fs.String("results", "", "also save each job's output under DIR (GNU's layout)")
		res         = fs.String("res", "", "same as --results")
		dryRun      = fs.Bool("dry-run", false, "print each command instead of running it")
		verbose     = fs.BoolP("verbose", "t", false, "print each command on stderr before its output")
		printCmd    = fs.BoolP("v", "v", false, "print each command on stdout before its output")
		bar         = fs.Bool("bar", false, "draw a progress line on stderr")
		eta         = fs.Bool("eta", false, "draw a progress line with the time left on stderr")
		progress    = fs.Bool("progress", false, "draw a progress line on stderr")
		quote       = fs.BoolP("quote", "q", false, "quote the command's own words too, so the shell runs them as given")
		delay       = fs.String("delay", "", "wait D between job starts (seconds, or 100ms, 2s, 1m)")
		shuf        = fs.Bool("shuf", false, "run the jobs in a random order")
		timeout     = fs.String("timeout", "", "kill a job after D (seconds or 30s, 2m), or after N% of the median run time")
		retries     = fs.Int("retries", 0, "run a failing job up to N times in all")
		envNames    = fs.StringArray("env", nil, "pass NAME to remote jobs (local jobs get the whole environment)")
		pipe        = fs.Bool("pipe", false, "split stdin into chunks, one per job's stdin")
		spreadstdin = fs.Bool("spreadstdin", false, "same as --pipe")
		block       = fs.String("block", "1M", "--pipe chunk size (K, M, G: powers of 1024; k, m, g: of 1000)")
		recEnd      = fs.String("recend", "\\n", "--pipe: records end with STR")
		xapply      = fs.Bool("xapply", false, "same as --link")
		maxLines    = fs.IntP("max-lines", "L", 0, "same as -N: up to N inputs per job")
		argSep      = fs.String("arg-sep", ":::", "use STR instead of ::: (and STR+ for :::+)")
		argFileSep  = fs.String("arg-file-sep", "::::", "use STR instead of :::: (and STR+ for ::::+)")
		sshLogins   = fs.StringArrayP("sshlogin", "S", nil, "where to run jobs; only ':' (this machine) for now")
		joblog      = fs.String("joblog", "", "write GNU's 9-column job log to FILE (- is stdout)")
		resume      = fs.Bool("resume", false, "with --joblog: skip the jobs the log has")
		resumeFail  = fs.Bool("resume-failed", false, "with --joblog: skip the jobs the log has as succeeded, rerun the others")
		haltFlag    = fs.String("halt", "never", "when to stop: never, now|soon,fail|success|done=N or N%, or 0, 1, 2, -1, -2")
		_           = fs.Bool("will-cite", false, "accepted for GNU parallel compatibility; does nothing")
		_           = fs.Bool("no-notice", false, "accepted for GNU parallel compatibility; does nothing")
		help        = fs.BoolP("help", "h", false, "print this help")
	)
	fs.StringVar(haltFlag, "halt-on-error", "never", "same as --halt")
	fs.IntVarP(maxLines, "l", "l", 0, "same as -L")
	fs.MarkHidden("l")
	fs.MarkHidden("xapply")
	fs.MarkHidden("lb")
	fs.MarkHidden("res")
	fs.MarkHidden("spreadstdin")
	fs.MarkHidden("halt-on-error")
	if err := fs.Parse(args); err != nil {
		return nil, usagef("parallel: %v (see 'arbor help parallel')", err)
	}
	if *help {
		fmt.Fprint(stdout, parallelHelp+fs.FlagUsages()+parallelHelpTail)
		return nil, errHelp
	}
	c := &parallelConfig{replace: *replace, link: *link || *xapply, positions: fs.Changed("max-replace-args") || *maxLines > 0,
		keepOrder: *keepOrder, tag: *tag, dryRun: *dryRun, verbose: *verbose, printCmd: *printCmd,
		progress: *bar || *eta || *progress, quote: *quote, shuffle: *shuf, pipe: *pipe || *spreadstdin,
		joblog: *joblog, resume: *resume, resumeFail: *resumeFail, skipEmpty: *noEmpty, maxChars: *maxChars}
	var err error
	if c.jobs, err = parseJobs(*jobs); err != nil {
		return nil, err
	}
	if c.halt, err = parseHaltPolicy(*haltFlag); err != nil {
		return nil, err
	}
	c.maxArgs = *maxArgs
	switch {
	case fs.Changed("max-replace-args"):
		c.maxArgs = *maxRepl
	case *maxLines > 0:
		c.maxArgs = *maxLines
	}
	if c.maxArgs < 0 {
		return nil, usagef("parallel: -n/-N must not be negative")
	}
	if c.maxArgs == 0 && (fs.Changed("max-args") || c.positions) {
		c.zeroArgs, c.maxArgs = true, 1
	}
	switch {
	case *flagX:
		c.multi = multiX
	case *flagM:
		c.multi = multiM
	case *xargs:
		c.multi = multiXargs
	}
	if *colsep != "" {
		if c.colsep, err = regexp.Compile(*colsep); err != nil {
			return nil, usagef("parallel: --colsep %q is not a regular expression: %v", *colsep, err)
		}
	}
	if fs.Changed("header") {
		// GNU parallel takes a regular expression for the header's end;
		// ':' (the usual) and any other mean the first record here.
		if _, err := regexp.Compile(*header); *header != ":" && err != nil {
			return nil, usagef("parallel: --header %q is not a regular expression: %v", *header, err)
		}
		c.header = true
	}
	switch *trim {
	case "n":
	case "l", "r", "lr", "rl":
		c.trim = *trim
	default:
		return nil, usagef("parallel: --trim %q: want n, l, r, lr or rl", *trim)
	}
	if fs.Changed("tagstring") {
		c.tagString = tagString
	}
	if fs.Changed("eof") && *eofStr != "" { // GNU: an empty -E means none
		c.eofStr = eofStr
	}
	switch {
	case *null:
		c.delim = []byte{0}
	case fs.Changed("delimiter"):
		d, err := unescapeDelimiter(*delim)
		if err != nil {
			return nil, err
		}
		c.delim = []byte(d)
	}
	c.results = *results
	if *res != "" {
		c.results = *res
	}
	for _, ext := range []string{".csv", ".tsv", ".json"} {
		if strings.HasSuffix(c.results, ext) {
			return nil, usagef("parallel: --results %s: CSV, TSV and JSON results are not supported; give a directory", c.results)
		}
	}
	switch {
	case *ungroup:
		c.output = outputUngroup
	case *lineBuffer || *lb:
		c.output = outputLineBuffer
	case *group:
		c.output = outputGroup
	}
	if *delay != "" {
		if c.delay, err = parseSeconds("--delay", *delay); err != nil {
			return nil, err
		}
	}
	if *timeout != "" {
		if p, isPct := strings.CutSuffix(*timeout, "%"); isPct {
			v, err := strconv.ParseFloat(p, 64)
			if err != nil || v <= 0 {
				return nil, usagef("parallel: --timeout %q: want a positive percentage", *timeout)
			}
			c.timeoutPct = v
		} else if c.timeout, err = parseSeconds("--timeout", *timeout); err != nil {
			return nil, err
		}
	}
	c.attempts = max(*retries, 1)
	if c.block, err = parseSize(*block); err != nil {
		return nil, err
	}
	end, err := unescapeDelimiter(*recEnd)
	if err != nil {
		return nil, err
	}
	c.recEnd = []byte(end)
	for _, s := range *sshLogins {
		for _, host := range strings.Split(s, ",") {
			if host != ":" {
				return nil, usagef("parallel: -S %s: remote hosts are not supported yet (they come with remote actors); only ':' (this machine) is", host)
			}
		}
	}
	for _, name := range *envNames {
		if name == "" || strings.ContainsAny(name, "= ") {
			return nil, usagef("parallel: --env %q: want a variable name", name)
		}
	}
	if (c.resume || c.resumeFail) && c.joblog == "" {
		return nil, usagef("parallel: --resume and --resume-failed need --joblog FILE")
	}
	if c.shell = os.Getenv("PARALLEL_SHELL"); c.shell == "" {
		if c.shell = os.Getenv("SHELL"); c.shell == "" {
			c.shell = "/bin/sh"
		}
	}
	for _, f := range *argFiles {
		c.sources = append(c.sources, sourceSpec{file: f})
	}
	c.argSep, c.fileSep = *argSep, *argFileSep
	if err := c.splitSources(fs.Args()); err != nil {
		return nil, err
	}
	for _, w := range c.command {
		if strings.Contains(w, "{=") && strings.Contains(w, "=}") {
			return nil, usagef("parallel: %q: Perl expressions in replacement strings ({= ... =}) are not supported", w)
		}
	}
	if c.pipe && len(c.sources) > 0 {
		return nil, usagef("parallel: --pipe reads stdin; it takes no ::: or :::: inputs")
	}
	return c, nil
}

// splitSources splits "COMMAND... [::: A B] [:::+ C] [:::: FILE] ..." into
// the command and its input sources.
func (c *parallelConfig) splitSources(args []string) error {
	kind := func(s string) (file, linked, ok bool) {
		switch s {
		case c.argSep:
			return false, false, true
		case c.argSep + "+":
			return false, true, true
		case c.fileSep:
			return true, false, true
		case c.fileSep + "+":
			return true, true, true
		}
		return false, false, false
	}
	isMark := func(s string) bool { _, _, ok := kind(s); return ok }
	i := 0
	for i < len(args) && !isMark(args[i]) {
		i++
	}
	c.command = args[:i]
	for i < len(args) {
		mark := args[i]
		file, linked, _ := kind(mark)
		i++
		start := i
		for i < len(args) && !isMark(args[i]) {
			i++
		}
		values := args[start:i]
		if file {
			if len(values) == 0 {
				return usagef("parallel: %s must be followed by a file name", mark)
			}
			for j, f := range values {
				c.sources = append(c.sources, sourceSpec{file: f, linked: linked && j == 0})
			}
			continue
		}
		c.sources = append(c.sources, sourceSpec{list: values, isList: true, linked: linked})
	}
	// GNU parallel reads stdin after a lone empty :::, and gives an empty
	// ::: beside other sources one empty value.
	if len(c.sources) == 1 && c.sources[0].isList && len(c.sources[0].list) == 0 {
		c.sources = nil
	}
	for i := range c.sources {
		if c.sources[i].isList && len(c.sources[i].list) == 0 {
			c.sources[i].list = []string{""}
		}
	}
	if len(c.sources) > 0 && c.sources[0].linked {
		c.sources[0].linked = false // nothing before it to link to
	}
	return nil
}

// parseJobs reads -j: N, 0, N%, +N or -N.
func parseJobs(s string) (int, error) {
	cpus := runtime.NumCPU()
	bad := usagef("parallel: -j %q: want N, 0, N%%, +N or -N", s)
	switch {
	case strings.HasSuffix(s, "%"):
		v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		if err != nil || v < 0 {
			return 0, bad
		}
		return max(int(math.Floor(float64(cpus)*v/100)), 1), nil
	case strings.HasPrefix(s, "+") || strings.HasPrefix(s, "-"):
		v, err := strconv.Atoi(s)
		if err != nil {
			return 0, bad
		}
		return max(cpus+v, 1), nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		return 0, bad
	}
	if v == 0 {
		return maxJobSlots, nil
	}
	return v, nil
}

// parseSeconds reads a duration as GNU parallel writes them (plain
// seconds, maybe fractional, or with s, m, h, d suffixes) or as Go does.
func parseSeconds(flag, s string) (time.Duration, error) {
	if v, err := strconv.ParseFloat(s, 64); err == nil && v >= 0 {
		return time.Duration(v * float64(time.Second)), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return d, nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		if v, err := strconv.ParseFloat(n, 64); err == nil && v >= 0 {
			return time.Duration(v * 24 * float64(time.Hour)), nil
		}
	}
	return 0, usagef("parallel: %s %q: want seconds (1.5) or a duration (300ms, 2m)", flag, s)
}

// parseSize reads a --block size as GNU parallel does: bytes, or with a
// suffix, K M G T for powers of 1024 and k m g t for powers of 1000.
func parseSize(s string) (int, error) {
	mult, num := 1.0, s
	if n := len(s); n > 0 {
		if i := strings.IndexByte("kmgt", s[n-1]); i >= 0 {
			mult, num = math.Pow(1000, float64(i+1)), s[:n-1]
		} else if i := strings.IndexByte("KMGT", s[n-1]); i >= 0 {
			mult, num = math.Pow(1024, float64(i+1)), s[:n-1]
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 1 || v*mult > 1<<31 {
		return 0, usagef("parallel: --block %q: want a size from 1 byte to 2G (K, M, G: 1024s; k, m, g: 1000s)", s)
	}
	return int(v * mult), nil
}

// unescapeDelimiter reads -d's argument: \n, \t, \0, \\ and \xHH are
// understood, as GNU parallel understands them.
func unescapeDelimiter(s string) (string, error) {
	if s == "" {
		return "", usagef("parallel: -d needs a delimiter")
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case '0':
			b.WriteByte(0)
		case '\\':
			b.WriteByte('\\')
		case 'x':
			if i+2 < len(s) {
				if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
					b.WriteByte(byte(v))
					i += 2
					continue
				}
			}
			return "", usagef("parallel: -d %q: \\x needs two hex digits", s)
		default:
			b.WriteByte('\\')
			b.WriteByte(s[i])
		}
	}
	return b.String(), nil
}

// haltPolicy is --halt, as GNU parallel defines it.
type haltPolicy struct {
	when  string // "never", "soon" or "now"
	why   string // "fail", "success" or "done"
	count int    // jobs that trip it, or
	pct   float64
}

func parseHaltPolicy(s string) (haltPolicy, error) {
	legacy := map[string]string{"0": "never", "1": "soon,fail=1", "2": "now,fail=1", "-1": "soon,success=1", "-2": "now,success=1"}
	if l, ok := legacy[s]; ok {
		s = l
	}
	if p, ok := strings.CutSuffix(s, "%"); ok && isDigits(p) {
		s = "soon,fail=" + s
	}
	if s == "never" {
		return haltPolicy{when: "never"}, nil
	}
	bad := usagef("parallel: --halt %q: want never, now|soon,fail|success|done=N or N%%, or 0, 1, 2, -1, -2", s)
	when, cond, ok := strings.Cut(s, ",")
	why, n, ok2 := strings.Cut(cond, "=")
	if !ok || !ok2 || (when != "now" && when != "soon") || (why != "fail" && why != "success" && why != "done") {
		return haltPolicy{}, bad
	}
	h := haltPolicy{when: when, why: why}
	if p, isPct := strings.CutSuffix(n, "%"); isPct {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || v <= 0 || v > 100 {
			return haltPolicy{}, bad
		}
		h.pct = v
		return h, nil
	}
	v, err := strconv.Atoi(n)
	if err != nil || v < 1 {
		return haltPolicy{}, bad
	}
	h.count = v
	return h, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
