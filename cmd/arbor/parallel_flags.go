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

	// Where jobs run (parallel_remote.go): empty, this machine only.
	logins      []sshLogin
	envNames    []string // --env: variables set for remote jobs
	transfer    bool     // --transfer: send the job's input files to its host
	returns     []string // --return: templates of files to bring back
	cleanup     bool     // --cleanup: remove what was sent and brought back
	workdir     string   // --workdir: where a remote job runs
	remoteArbor string   // --remote-arbor: the arbor program on the hosts
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

// parallelFlags is arbor parallel's command line as pflag reads it: the
// flags' values, before parseParallel checks them and makes a
// parallelConfig of them.
type parallelFlags struct {
	fs *pflag.FlagSet

	// Scheduling.
	jobs, halt, delay, timeout string
	retries                    int
	shuf                       bool
	// The inputs, and how they make records and jobs.
	argFiles                             []string
	argSep, argFileSep                   string
	link, xapply                         bool
	colsep, header, delim, eofStr, trim  string
	null, noEmpty                        bool
	maxArgs, maxRepl, maxLines, maxChars int
	flagM, flagX, xargs                  bool
	// The command.
	replace string
	quote   bool
	// The output.
	group, ungroup, lineBuffer, lb, keepOrder, tag bool
	tagString, results, res                        string
	dryRun, verbose, printCmd, bar, eta, progress  bool
	// --pipe.
	pipe, spreadstdin bool
	block, recEnd     string
	// The job log.
	joblog             string
	resume, resumeFail bool
	// Remote jobs.
	sshLogins, sshLoginFiles, envNames, returns, trc []string
	transfer, cleanup                                bool
	workdir, sshCmd, remoteArbor                     string

	help bool
}

// newParallelFlags defines arbor parallel's flags, in the order its help
// lists them.
func newParallelFlags() *parallelFlags {
	fs := pflag.NewFlagSet("parallel", pflag.ContinueOnError)
	fs.SetInterspersed(false)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	f := &parallelFlags{fs: fs}
	fs.StringVarP(&f.jobs, "jobs", "j", "100%", "job slots: N, 0 (as many as possible), N% of the CPUs, +N or -N CPUs")
	fs.StringArrayVarP(&f.argFiles, "arg-file", "a", nil, "read inputs from FILE (- is stdin); repeat for more sources")
	fs.BoolVar(&f.link, "link", false, "link the input sources: the n-th job takes the n-th input of each; shorter sources wrap")
	fs.StringVarP(&f.replace, "replace", "I", "{}", "use STR instead of {} for the input")
	fs.StringVarP(&f.colsep, "colsep", "C", "", "split each input into columns at REGEX: {1}, {2}, ...")
	fs.StringVar(&f.header, "header", "", "with ':', the first input line names the columns: {name}")
	fs.IntVarP(&f.maxArgs, "max-args", "n", 0, "use up to N inputs per job")
	fs.IntVarP(&f.maxRepl, "max-replace-args", "N", 0, "use up to N inputs per job, as {1}..{N}")
	fs.BoolVarP(&f.flagM, "m", "m", false, "as many inputs per job as the command line takes, spread over the slots")
	fs.BoolVarP(&f.flagX, "X", "X", false, "like -m, repeating the word around {} for each input")
	fs.BoolVar(&f.xargs, "xargs", false, "as many inputs per job as the command line takes")
	fs.IntVarP(&f.maxChars, "max-chars", "s", 0, "longest command line, in bytes")
	fs.BoolVarP(&f.null, "null", "0", false, "inputs end with NUL, not newline")
	fs.StringVarP(&f.delim, "delimiter", "d", "", "inputs end with DELIM (\\n, \\t, \\0 and \\xHH understood)")
	fs.StringVarP(&f.eofStr, "eof", "E", "", "stop reading inputs at a line equal to STR")
	fs.BoolVarP(&f.noEmpty, "no-run-if-empty", "r", false, "skip inputs that are empty or only white space")
	fs.StringVar(&f.trim, "trim", "n", "trim white space from inputs: n (none), l, r, lr or rl")
	fs.BoolVar(&f.group, "group", false, "print each job's output whole when it ends (the default)")
	fs.BoolVarP(&f.ungroup, "ungroup", "u", false, "print output as it comes, unbuffered (lines may mix)")
	fs.BoolVar(&f.lineBuffer, "line-buffer", false, "print whole lines as they come")
	fs.BoolVar(&f.lb, "lb", false, "same as --line-buffer")
	fs.BoolVarP(&f.keepOrder, "keep-order", "k", false, "print outputs in input order")
	fs.BoolVar(&f.tag, "tag", false, "prefix each output line with the job's inputs and a tab")
	fs.StringVar(&f.tagString, "tagstring", "", "prefix each output line with STR (replacement strings work) and a tab")
	fs.StringVar(&f.results, "results", "", "also save each job's output under DIR (GNU's layout)")
	fs.StringVar(&f.res, "res", "", "same as --results")
	fs.BoolVar(&f.dryRun, "dry-run", false, "print each command instead of running it")
	fs.BoolVarP(&f.verbose, "verbose", "t", false, "print each command on stderr before its output")
	fs.BoolVarP(&f.printCmd, "v", "v", false, "print each command on stdout before its output")
	fs.BoolVar(&f.bar, "bar", false, "draw a progress line on stderr")
	fs.BoolVar(&f.eta, "eta", false, "draw a progress line with the time left on stderr")
	fs.BoolVar(&f.progress, "progress", false, "draw a progress line on stderr")
	fs.BoolVarP(&f.quote, "quote", "q", false, "quote the command's own words too, so the shell runs them as given")
	fs.StringVar(&f.delay, "delay", "", "wait D between job starts (seconds, or 100ms, 2s, 1m)")
	fs.BoolVar(&f.shuf, "shuf", false, "run the jobs in a random order")
	fs.StringVar(&f.timeout, "timeout", "", "kill a job after D (seconds or 30s, 2m), or after N% of the median run time")
	fs.IntVar(&f.retries, "retries", 0, "run a failing job up to N times in all")
	fs.StringArrayVar(&f.envNames, "env", nil, "pass NAME to remote jobs (local jobs get the whole environment)")
	fs.BoolVar(&f.pipe, "pipe", false, "split stdin into chunks, one per job's stdin")
	fs.BoolVar(&f.spreadstdin, "spreadstdin", false, "same as --pipe")
	fs.StringVar(&f.block, "block", "1M", "--pipe chunk size (K, M, G: powers of 1024; k, m, g: of 1000)")
	fs.StringVar(&f.recEnd, "recend", "\\n", "--pipe: records end with STR")
	fs.BoolVar(&f.xapply, "xapply", false, "same as --link")
	fs.IntVarP(&f.maxLines, "max-lines", "L", 0, "same as -N: up to N inputs per job")
	fs.StringVar(&f.argSep, "arg-sep", ":::", "use STR instead of ::: (and STR+ for :::+)")
	fs.StringVar(&f.argFileSep, "arg-file-sep", "::::", "use STR instead of :::: (and STR+ for ::::+)")
	fs.StringArrayVarP(&f.sshLogins, "sshlogin", "S", nil, "run jobs on [user@]host, N/host (N at once there), ':' (this machine) or a whole ssh command (split at spaces, no quoting); comma-separated, repeatable")
	fs.StringArrayVar(&f.sshLoginFiles, "sshloginfile", nil, "read sshlogins from FILE, one per line (# comments)")
	fs.StringVar(&f.sshCmd, "ssh", "ssh -o ServerAliveInterval=5 -o ServerAliveCountMax=3", "the ssh command for sshlogins that are a host, split at spaces (the default gives up on a dead link after 15 s)")
	fs.StringVar(&f.remoteArbor, "remote-arbor", "arbor", "the arbor program on the hosts, which runs each job there under its own process group")
	fs.BoolVar(&f.transfer, "transfer", false, "send the job's input files to its host before it runs")
	fs.StringArrayVar(&f.returns, "return", nil, "bring FILE (replacement strings work) back from the host after the job")
	fs.BoolVar(&f.cleanup, "cleanup", false, "remove the files sent and brought back from the host after the job")
	fs.StringArrayVar(&f.trc, "trc", nil, "same as --transfer --return FILE --cleanup")
	fs.StringVar(&f.workdir, "workdir", "", "run remote jobs in DIR: '.' is this directory's path, '...' a directory of the job's own")
	fs.StringVar(&f.workdir, "wd", "", "same as --workdir")
	fs.StringArrayVar(&f.sshLoginFiles, "slf", nil, "same as --sshloginfile")
	fs.StringVar(&f.joblog, "joblog", "", "write GNU's 9-column job log to FILE (- is stdout)")
	fs.BoolVar(&f.resume, "resume", false, "with --joblog: skip the jobs the log has")
	fs.BoolVar(&f.resumeFail, "resume-failed", false, "with --joblog: skip the jobs the log has as succeeded, rerun the others")
	fs.StringVar(&f.halt, "halt", "never", "when to stop: never, now|soon,fail|success|done=N or N%, or 0, 1, 2, -1, -2")
	fs.Bool("will-cite", false, "accepted for GNU parallel compatibility; does nothing")
	fs.Bool("no-notice", false, "accepted for GNU parallel compatibility; does nothing")
	fs.BoolVarP(&f.help, "help", "h", false, "print this help")
	fs.StringVar(&f.halt, "halt-on-error", "never", "same as --halt")
	fs.IntVarP(&f.maxLines, "l", "l", 0, "same as -L")
	for _, alias := range []string{"l", "xapply", "lb", "res", "spreadstdin", "halt-on-error", "wd", "slf"} {
		fs.MarkHidden(alias)
	}
	return f
}

// parseParallel parses arbor parallel's command line. It writes the help
// to stdout and returns errHelp for -h.
func parseParallel(args []string, stdout io.Writer) (*parallelConfig, error) {
	f := newParallelFlags()
	if err := f.fs.Parse(args); err != nil {
		return nil, usagef("parallel: %v (see 'arbor help parallel')", err)
	}
	if f.help {
		fmt.Fprint(stdout, parallelHelp+f.fs.FlagUsages()+parallelHelpTail)
		return nil, errHelp
	}
	c := &parallelConfig{replace: f.replace, link: f.link || f.xapply, positions: f.fs.Changed("max-replace-args") || f.maxLines > 0,
		keepOrder: f.keepOrder, tag: f.tag, dryRun: f.dryRun, verbose: f.verbose, printCmd: f.printCmd,
		progress: f.bar || f.eta || f.progress, quote: f.quote, shuffle: f.shuf, pipe: f.pipe || f.spreadstdin,
		joblog: f.joblog, resume: f.resume, resumeFail: f.resumeFail, skipEmpty: f.noEmpty, maxChars: f.maxChars,
		shell: parallelShell()}
	// Each step checks its flags and sets what they mean in c; the first
	// wrong value stops parsing.
	for _, step := range []func(*parallelConfig) error{
		f.slotsAndHalt, f.records, f.output, f.timing, f.pipeChunks, f.remotes, f.refuseUnsupported, f.commandAndSources,
	} {
		if err := step(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// slotsAndHalt reads -j and --halt.
func (f *parallelFlags) slotsAndHalt(c *parallelConfig) (err error) {
	if c.jobs, err = parseJobs(f.jobs); err != nil {
		return err
	}
	c.halt, err = parseHaltPolicy(f.halt)
	return err
}

// records reads how inputs become records and records jobs: -n, -N, -L,
// -m, -X, --xargs, --colsep, --header, --trim, -E, -0 and -d.
func (f *parallelFlags) records(c *parallelConfig) error {
	c.maxArgs = f.maxArgs
	switch {
	case f.fs.Changed("max-replace-args"):
		c.maxArgs = f.maxRepl
	case f.maxLines > 0:
		c.maxArgs = f.maxLines
	}
	if c.maxArgs < 0 {
		return usagef("parallel: -n/-N must not be negative")
	}
	if c.maxArgs == 0 && (f.fs.Changed("max-args") || c.positions) {
		c.zeroArgs, c.maxArgs = true, 1
	}
	switch {
	case f.flagX:
		c.multi = multiX
	case f.flagM:
		c.multi = multiM
	case f.xargs:
		c.multi = multiXargs
	}
	if f.colsep != "" {
		var err error
		if c.colsep, err = regexp.Compile(f.colsep); err != nil {
			return usagef("parallel: --colsep %q is not a regular expression: %v", f.colsep, err)
		}
	}
	if f.fs.Changed("header") {
		// GNU parallel takes a regular expression for the header's end;
		// ':' (the usual) and any other mean the first record here.
		if _, err := regexp.Compile(f.header); f.header != ":" && err != nil {
			return usagef("parallel: --header %q is not a regular expression: %v", f.header, err)
		}
		c.header = true
	}
	switch f.trim {
	case "n":
	case "l", "r", "lr", "rl":
		c.trim = f.trim
	default:
		return usagef("parallel: --trim %q: want n, l, r, lr or rl", f.trim)
	}
	if f.fs.Changed("eof") && f.eofStr != "" { // GNU: an empty -E means none
		c.eofStr = &f.eofStr
	}
	switch {
	case f.null:
		c.delim = []byte{0}
	case f.fs.Changed("delimiter"):
		d, err := unescapeDelimiter(f.delim)
		if err != nil {
			return err
		}
		c.delim = []byte(d)
	}
	return nil
}

// output reads how jobs' output is shown and kept: --tagstring,
// --results, --ungroup, --line-buffer and --group.
func (f *parallelFlags) output(c *parallelConfig) error {
	if f.fs.Changed("tagstring") {
		c.tagString = &f.tagString
	}
	c.results = f.results
	if f.res != "" {
		c.results = f.res
	}
	for _, ext := range []string{".csv", ".tsv", ".json"} {
		if strings.HasSuffix(c.results, ext) {
			return usagef("parallel: --results %s: CSV, TSV and JSON results are not supported; give a directory", c.results)
		}
	}
	switch {
	case f.ungroup:
		c.output = outputUngroup
	case f.lineBuffer || f.lb:
		c.output = outputLineBuffer
	case f.group:
		c.output = outputGroup
	}
	return nil
}

// timing reads --delay, --timeout and --retries.
func (f *parallelFlags) timing(c *parallelConfig) (err error) {
	if f.delay != "" {
		if c.delay, err = parseSeconds("--delay", f.delay); err != nil {
			return err
		}
	}
	if f.timeout != "" {
		if p, isPct := strings.CutSuffix(f.timeout, "%"); isPct {
			v, err := strconv.ParseFloat(p, 64)
			if err != nil || v <= 0 {
				return usagef("parallel: --timeout %q: want a positive percentage", f.timeout)
			}
			c.timeoutPct = v
		} else if c.timeout, err = parseSeconds("--timeout", f.timeout); err != nil {
			return err
		}
	}
	c.attempts = max(f.retries, 1)
	return nil
}

// pipeChunks reads how --pipe cuts stdin: --block and --recend.
func (f *parallelFlags) pipeChunks(c *parallelConfig) (err error) {
	if c.block, err = parseSize(f.block); err != nil {
		return err
	}
	end, err := unescapeDelimiter(f.recEnd)
	if err != nil {
		return err
	}
	c.recEnd = []byte(end)
	return nil
}

// refuseUnsupported refuses what GNU parallel refuses too.
func (f *parallelFlags) refuseUnsupported(c *parallelConfig) error {
	if (c.resume || c.resumeFail) && c.joblog == "" {
		return usagef("parallel: --resume and --resume-failed need --joblog FILE")
	}
	return nil
}

// commandAndSources splits the arguments into the command and its input
// sources, after those -a gives.
func (f *parallelFlags) commandAndSources(c *parallelConfig) error {
	for _, file := range f.argFiles {
		c.sources = append(c.sources, sourceSpec{file: file})
	}
	c.argSep, c.fileSep = f.argSep, f.argFileSep
	if err := c.splitSources(f.fs.Args()); err != nil {
		return err
	}
	for _, w := range c.command {
		if strings.Contains(w, "{=") && strings.Contains(w, "=}") {
			return usagef("parallel: %q: Perl expressions in replacement strings ({= ... =}) are not supported", w)
		}
	}
	if c.pipe && len(c.sources) > 0 {
		return usagef("parallel: --pipe reads stdin; it takes no ::: or :::: inputs")
	}
	return nil
}

// parallelShell is the shell jobs run in: $PARALLEL_SHELL, else $SHELL,
// else /bin/sh.
func parallelShell() string {
	for _, name := range []string{"PARALLEL_SHELL", "SHELL"} {
		if sh := os.Getenv(name); sh != "" {
			return sh
		}
	}
	return "/bin/sh"
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
