package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/arbor-go/arbor/spawn"
	"github.com/mattn/go-isatty"
	oklog "github.com/oklog/run"
	"github.com/spf13/pflag"
)

const parallelHelp = `Usage: arbor parallel [flags] COMMAND [ARGS...] [::: INPUTS...]

Runs COMMAND once per input: the words after ::: or, without them, the
lines of stdin. {} in COMMAND or ARGS stands for the input; without {}, the
input is appended. Each job runs in a process group of its own and is
stopped with it.

Examples:
  arbor parallel gzip ::: *.log
  find . -name '*.png' | arbor parallel -j 4 convert {} {}.jpg
  arbor parallel --halt now,fail=1 --timeout 30s ./check.sh ::: a b c

Flags:
`

// halt is the --halt policy.
type halt struct {
	mode    string // "never", "now" or "soon"
	fail    int    // failures that trigger it, or
	percent float64
}

func parseHalt(s string) (halt, error) {
	if s == "never" {
		return halt{mode: "never"}, nil
	}
	mode, cond, ok := strings.Cut(s, ",")
	if !ok || (mode != "now" && mode != "soon") || !strings.HasPrefix(cond, "fail=") {
		return halt{}, usagef("--halt %q: want never, now,fail=N, soon,fail=N or fail=P%%", s)
	}
	n := strings.TrimPrefix(cond, "fail=")
	if p, isPercent := strings.CutSuffix(n, "%"); isPercent {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || v <= 0 || v > 100 {
			return halt{}, usagef("--halt %q: the percentage must be in (0, 100]", s)
		}
		return halt{mode: mode, percent: v}, nil
	}
	v, err := strconv.Atoi(n)
	if err != nil || v < 1 {
		return halt{}, usagef("--halt %q: the failure count must be a whole number of at least 1", s)
	}
	return halt{mode: mode, fail: v}, nil
}

// triggered reports whether failed of total jobs trip the policy.
func (h halt) triggered(failed, total int) bool {
	switch {
	case h.mode == "never" || failed == 0:
		return false
	case h.percent > 0:
		return float64(failed)*100/float64(total) >= h.percent
	}
	return failed >= h.fail
}

// jobResult is how one job ended.
type jobResult struct {
	index    int
	input    string
	code     int // exit status; -1 when killed by a signal or not run
	signal   syscall.Signal
	err      error // why it could not run, if it could not
	duration time.Duration
	attempts int
	lines    []outLine
	killed   bool // stopped by --halt now, --timeout or a signal
}

type outLine struct {
	stderr bool
	text   string
}

func (r *jobResult) failed() bool { return r.err != nil || r.code != 0 || r.signal != 0 }

func runParallel(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	fs := pflag.NewFlagSet("parallel", pflag.ContinueOnError)
	fs.SetInterspersed(false)
	fs.SetOutput(io.Discard)
	jobs := fs.IntP("jobs", "j", runtime.NumCPU(), "jobs to run at once")
	haltFlag := fs.String("halt", "never", "never | now,fail=N | soon,fail=N (N may be P%)")
	timeout := fs.Duration("timeout", 0, "stop a job that runs longer than this (0: no limit)")
	retries := fs.Int("retries", 0, "run a failing job up to this many more times")
	lineBuffer := fs.Bool("line-buffer", false, "print lines as they come instead of each job's output whole")
	tag := fs.Bool("tag", false, "prefix each line with the job's input and a tab")
	keepOrder := fs.BoolP("keep-order", "k", false, "print outputs in input order")
	joblog := fs.String("joblog", "", "write one line per job to this file")
	help := fs.BoolP("help", "h", false, "print this help")
	if err := fs.Parse(args); err != nil {
		return 0, usagef("parallel: %v", err)
	}
	if *help {
		fmt.Fprint(stdout, parallelHelp+fs.FlagUsages())
		return 0, errHelp
	}
	h, err := parseHalt(*haltFlag)
	if err != nil {
		return 0, err
	}
	if *jobs < 1 {
		return 0, usagef("parallel: -j must be at least 1")
	}
	command, inputs, hasList := splitInputs(fs.Args())
	if len(command) == 0 {
		return 0, usagef("parallel: no command given")
	}
	if !hasList {
		if inputs, err = readLines(stdin); err != nil {
			return 0, fmt.Errorf("reading inputs from stdin: %w", err)
		}
	}

	p := &parallel{
		command: command, inputs: inputs, jobs: *jobs, halt: h, timeout: *timeout, retries: *retries,
		lineBuffer: *lineBuffer, tag: *tag, keepOrder: *keepOrder, stdout: stdout, stderr: stderr,
		progress: isTerminal(stderr),
	}
	if *joblog != "" {
		f, err := os.Create(*joblog)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		p.joblog = f
		fmt.Fprintln(f, "input\texit\tsignal\tseconds\tattempts")
	}
	failed := p.run(ctx)
	if ctx.Err() != nil {
		fmt.Fprintf(stderr, "arbor parallel: interrupted: %d of %d jobs done, %d failed, %d stopped\n",
			p.done, len(inputs), failed, p.killed)
	}
	return min(failed, maxFailures), nil
}

// splitInputs splits "COMMAND ARGS... ::: INPUTS..." at the first :::.
func splitInputs(args []string) (command, inputs []string, hasList bool) {
	for i, a := range args {
		if a == ":::" {
			return args[:i], args[i+1:], true
		}
	}
	return args, nil, false
}

func readLines(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out, sc.Err()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}

// parallel is one run of arbor parallel.
type parallel struct {
	command    []string
	inputs     []string
	jobs       int
	halt       halt
	timeout    time.Duration
	retries    int
	lineBuffer bool
	tag        bool
	keepOrder  bool
	stdout     io.Writer
	stderr     io.Writer
	joblog     io.Writer
	progress   bool

	mu      sync.Mutex // guards what follows and the output streams
	done    int
	failed  int
	running int
	killed  int
	halting bool
	pending map[int]*jobResult // finished out of order, with --keep-order
	next    int                // the next index to print, with --keep-order
	began   time.Time
}

// run runs every job and returns how many failed.
func (p *parallel) run(ctx context.Context) int {
	p.pending = map[int]*jobResult{}
	p.began = time.Now()
	jobsCtx, killAll := context.WithCancel(ctx) // --halt now stops the running jobs
	defer killAll()

	// The scheduler and the progress display run as one oklog/run group:
	// the display ends when the scheduler does.
	var g oklog.Group
	schedulerDone := make(chan struct{})
	g.Add(func() error {
		defer close(schedulerDone)
		sem := make(chan struct{}, p.jobs)
		var wg sync.WaitGroup
		for i, input := range p.inputs {
			select {
			case sem <- struct{}{}:
			case <-jobsCtx.Done():
			}
			p.mu.Lock()
			stop := p.halting || jobsCtx.Err() != nil
			if !stop {
				p.running++
			}
			p.mu.Unlock()
			if stop {
				break
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := p.job(jobsCtx, i, input)
				// Record the result before freeing the slot, so that the
				// scheduler sees a halt this result trips before it starts
				// the next job.
				if p.finish(r) {
					killAll()
				}
				<-sem
			}()
		}
		wg.Wait()
		return nil
	}, func(error) {})
	if p.progress {
		g.Add(func() error {
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					p.drawProgress()
				case <-schedulerDone:
					p.drawProgress()
					fmt.Fprintln(p.stderr)
					return nil
				}
			}
		}, func(error) {})
	}
	g.Run()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed
}

// job runs one input, retrying as --retries says.
func (p *parallel) job(ctx context.Context, index int, input string) *jobResult {
	argv := substitute(p.command, input)
	r := &jobResult{index: index, input: input}
	began := time.Now()
	for r.attempts = 1; ; r.attempts++ {
		p.attempt(ctx, argv, r)
		if !r.failed() || r.attempts > p.retries || ctx.Err() != nil {
			break
		}
	}
	r.duration = time.Since(began)
	return r
}

// attempt runs the job once, into r.
func (p *parallel) attempt(ctx context.Context, argv []string, r *jobResult) {
	r.lines, r.err, r.code, r.signal, r.killed = nil, nil, 0, 0, false
	var lmu sync.Mutex
	output := func(stream, line string) {
		ol := outLine{stderr: stream == "stderr", text: line}
		if p.lineBuffer {
			p.mu.Lock()
			p.printLine(r.input, ol)
			p.mu.Unlock()
			return
		}
		lmu.Lock()
		r.lines = append(r.lines, ol)
		lmu.Unlock()
	}
	a, err := spawn.StartCommand(ctx, spawn.Options{Name: "job-" + strconv.Itoa(r.index), Binary: argv[0],
		Args: argv[1:], Output: output, GracePeriod: time.Second})
	if err != nil {
		r.err, r.code = err, -1
		return
	}
	var expired <-chan time.Time
	if p.timeout > 0 {
		t := time.NewTimer(p.timeout)
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-a.Done():
	case <-expired:
		r.killed = true
		a.Stop(context.Background())
	case <-ctx.Done():
		r.killed = true
		a.Stop(context.Background())
	}
	var exit *spawn.ExitError
	switch err := a.Wait(); {
	case err == nil:
	case errors.As(err, &exit):
		r.code, r.signal = exit.Code, exit.Signal
	default:
		r.err, r.code = err, -1
	}
}

// substitute puts input where {} stands in argv, or appends it.
func substitute(command []string, input string) []string {
	out := make([]string, len(command))
	found := false
	for i, a := range command {
		if strings.Contains(a, "{}") {
			found = true
			a = strings.ReplaceAll(a, "{}", input)
		}
		out[i] = a
	}
	if !found {
		out = append(out, input)
	}
	return out
}

// finish records a finished job, prints its output and reports whether
// --halt now has tripped.
func (p *parallel) finish(r *jobResult) (killAll bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running--
	p.done++
	if r.killed {
		p.killed++
	}
	if r.failed() && !(r.killed && p.halting) {
		p.failed++
		if r.err != nil {
			fmt.Fprintf(p.stderr, "arbor parallel: %s: %v\n", r.input, r.err)
		}
	}
	if p.joblog != nil {
		sig := ""
		if r.signal != 0 {
			sig = r.signal.String()
		}
		fmt.Fprintf(p.joblog, "%s\t%d\t%s\t%.3f\t%d\n", r.input, r.code, sig, r.duration.Seconds(), r.attempts)
	}
	if !p.lineBuffer {
		if p.keepOrder {
			p.pending[r.index] = r
			for q, ok := p.pending[p.next]; ok; q, ok = p.pending[p.next] {
				p.printJob(q)
				delete(p.pending, p.next)
				p.next++
			}
		} else {
			p.printJob(r)
		}
	}
	if !p.halting && p.halt.triggered(p.failed, len(p.inputs)) {
		p.halting = true
		return p.halt.mode == "now"
	}
	return false
}

func (p *parallel) printJob(r *jobResult) {
	for _, l := range r.lines {
		p.printLine(r.input, l)
	}
}

func (p *parallel) printLine(input string, l outLine) {
	w := p.stdout
	if l.stderr {
		w = p.stderr
	}
	if p.tag {
		fmt.Fprintf(w, "%s\t%s\n", input, l.text)
	} else {
		fmt.Fprintln(w, l.text)
	}
}

func (p *parallel) drawProgress() {
	p.mu.Lock()
	defer p.mu.Unlock()
	eta := "?"
	if p.done > 0 {
		left := time.Duration(float64(time.Since(p.began)) / float64(p.done) * float64(len(p.inputs)-p.done))
		eta = left.Round(time.Second).String()
	}
	fmt.Fprintf(p.stderr, "\r%d/%d done, %d failed, %d running, ETA %s   ", p.done, len(p.inputs), p.failed, p.running, eta)
}
