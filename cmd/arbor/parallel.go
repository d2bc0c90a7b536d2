package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/arbor-go/arbor/spawn"
	oklog "github.com/oklog/run"
)

// jobStopGrace is how long a job stopped by --timeout, --halt now or an
// interrupt has between SIGTERM to its process group and SIGKILL. GNU
// parallel's default --termseq reaches KILL after 350 ms.
const jobStopGrace = 350 * time.Millisecond

// defaultMaxChars is the longest command line -m, -X and --xargs build
// when -s does not say: Linux takes at most 128 KiB in one argument (the
// whole line is one, for sh -c), less some room for the shell's name.
const defaultMaxChars = 128<<10 - 2<<10

// medianWindow is how many run times --timeout N% takes its median of.
const medianWindow = 1000

// parallelGCPercent is the GOGC arbor parallel runs with; see runParallel.
const parallelGCPercent = 20

// job is one command line to run.
type job struct {
	seq     int        // {#}: its place among all the jobs the inputs make
	order   int        // its place among the jobs started, for -k
	records [][]string // the inputs it takes, each one tuple of values
	chunk   []byte     // --pipe: its stdin
	slot    int        // {%}
	command string     // the command line
	argv    []string   // what runs: the shell with the line, or the program itself
}

// jobResult is how one job ended.
type jobResult struct {
	job            *job
	code           int // exit status; 0 when a signal ended it
	signal         syscall.Signal
	killed         bool // stopped by arbor: --timeout, --halt now, an interrupt
	abandoned      bool // failed with attempts left after a halt: never reported
	timedOut       bool
	startErr       error
	start          time.Time
	runtime        time.Duration
	stdout, stderr *os.File // what it printed, held until printed (see outputFiles)
	received       int64    // stdout bytes
	errSize        int64    // stderr bytes
	files          *outputFiles
}

func (r *jobResult) failed() bool {
	return r.startErr != nil || r.code != 0 || r.signal != 0 || r.killed
}

// release gives the job's output files back for reuse.
func (r *jobResult) release() {
	if r.stdout != nil {
		r.files.put(r.stdout, r.received)
	}
	if r.stderr != nil {
		r.files.put(r.stderr, r.errSize)
	}
	r.stdout, r.stderr = nil, nil
}

// exitval is the joblog's Exitval: -1 for a job arbor killed.
func (r *jobResult) exitval() int {
	if r.killed {
		return -1
	}
	return r.code
}

func runParallel(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	c, err := parseParallel(args, stdout)
	if err != nil {
		return 0, err
	}
	// A run holds almost nothing live (inputs stream, output waits in
	// files), so a small heap goal costs little GC and keeps the process
	// small however many jobs it runs. This process is the CLI's own: the
	// setting is restored for tests that call run more than once.
	defer debug.SetGCPercent(debug.SetGCPercent(parallelGCPercent))
	p := &parallelRun{c: c, stdin: stdin, stdout: stdout, stderr: stderr, pending: map[int]*jobResult{}, paths: map[string]string{}}
	// A job's descendants that leave its process group end with it, and
	// with arbor even if it is killed.
	jail, err := spawn.Contain()
	if err != nil {
		fmt.Fprintln(stderr, "arbor: warning: descendants that leave their job's process group will not be contained:", err)
	}
	defer jail.Close()
	return p.run(ctx)
}

// parallelRun is one run of arbor parallel. feed makes jobs from the
// inputs on a goroutine of its own; schedule runs them on c.jobs workers
// and waits for all of them; finish, under mu, is where a result is
// counted, logged and printed.
type parallelRun struct {
	c        *parallelConfig
	stdin    io.Reader
	stdout   io.Writer
	stderr   io.Writer
	tmpl     *template
	tagT     *template // --tagstring
	env      []string  // every job's environment, less its own variables
	funcs    map[string]bool
	paths    map[string]string // programs found on PATH, under pathsMu
	pathsMu  sync.Mutex
	files    outputFiles
	skip     map[int]bool // --resume: jobs the joblog has done
	colNames []string     // --header: the name of each column, by position
	devNull  *os.File     // every job's stdin, without --pipe

	killAll      context.CancelFunc // ends every running job (--halt now)
	stopStarting context.CancelFunc // starts no more jobs (--halt soon)

	mu         sync.Mutex // guards what follows, and the output streams
	outMu      sync.Mutex // --line-buffer's lines
	joblog     *bufio.Writer
	total      int // jobs in all, when known (-1 while inputs stream)
	started    int
	completed  int
	failed     int
	running    int
	stopped    int // jobs an interrupt stopped
	halting    bool
	haltedNow  bool
	haltStatus *int
	lostOutput bool               // a job's --results could not be written
	pending    map[int]*jobResult // -k: finished, waiting for an earlier job
	nextOrder  int
	turn       *sync.Cond // -k: signalled when nextOrder moves (see waitTurn)
	aheadLimit int
	runtimes   []time.Duration // of the last jobs that succeeded, for --timeout N%
	began      time.Time
}

func (p *parallelRun) run(ctx context.Context) (int, error) {
	c := p.c
	p.began = time.Now()
	p.total = -1
	defer p.files.close()
	if f, err := os.Open(os.DevNull); err == nil {
		p.devNull = f
		defer f.Close()
	}
	p.env = append(os.Environ(), "PARALLEL_PID="+strconv.Itoa(os.Getpid()), "PARALLEL_SHELL="+c.shell)
	p.funcs = exportedFunctions(p.env)
	next, closeInputs, err := p.jobSource()
	if err != nil {
		return 0, err
	}
	defer closeInputs()
	if c.joblog != "" {
		closeLog, err := p.openJoblog()
		if err != nil {
			return 0, err
		}
		defer closeLog()
	}
	// Percentages, a progress line and --shuf need every job known first.
	if c.shuffle || c.progress || c.halt.pct > 0 {
		if next, err = p.listJobs(next); err != nil {
			return 0, err
		}
	}
	inputErr := p.runJobs(ctx, next)
	return p.conclude(ctx, inputErr)
}

// jobSource sets the command's template and returns what makes the jobs:
// stdin cut into chunks with --pipe, else the inputs, which closeInputs
// closes.
func (p *parallelRun) jobSource() (next func() (*job, error), closeInputs func(), err error) {
	c := p.c
	if c.pipe {
		p.tmpl = newTemplate(c.command, c.replace, nil, c.quote, multiNone)
		if len(c.command) == 0 {
			return nil, nil, usagef("parallel: --pipe needs a command")
		}
		return p.pipeJobs(), func() {}, nil
	}
	in, err := openInputs(c, p.stdin)
	if err != nil {
		return nil, nil, err
	}
	p.tmpl = newTemplate(c.command, c.replace, in.names, c.quote, c.multi)
	for name, pos := range in.names {
		for len(p.colNames) <= pos {
			p.colNames = append(p.colNames, "")
		}
		p.colNames[pos] = name
	}
	if c.tagString != nil {
		p.tagT = &template{words: [][]token{parseWord(*c.tagString, c.replace, in.names, false)}}
	}
	return p.argJobs(in), in.close, nil
}

// listJobs makes every job before any starts, in a random order with
// --shuf, and counts them; it returns what hands them out.
func (p *parallelRun) listJobs(next func() (*job, error)) (func() (*job, error), error) {
	var all []*job
	for {
		j, err := next()
		if err != nil {
			return nil, err
		}
		if j == nil {
			break
		}
		all = append(all, j)
	}
	if p.c.shuffle {
		rand.Shuffle(len(all), func(a, b int) { all[a], all[b] = all[b], all[a] })
	}
	p.total = len(all)
	return func() (*job, error) {
		if len(all) == 0 {
			return nil, nil
		}
		j := all[0]
		all = all[1:]
		return j, nil
	}, nil
}

// runJobs runs the jobs next makes until they run out, a halt or ctx stops
// starting them, and returns once every job started has finished, with the
// error that ended the inputs early, if one did.
func (p *parallelRun) runJobs(ctx context.Context, next func() (*job, error)) error {
	startCtx, stopStarting := context.WithCancel(ctx)
	jobsCtx, killAll := context.WithCancel(ctx)
	defer stopStarting()
	defer killAll()
	p.stopStarting, p.killAll = stopStarting, killAll
	p.turn = sync.NewCond(&p.mu)
	p.aheadLimit = keepOrderAhead(p.c.jobs)
	defer context.AfterFunc(startCtx, func() {
		p.mu.Lock()
		p.turn.Broadcast() // a halt or an interrupt: no one waits for a turn
		p.mu.Unlock()
	})()
	feed, stopFeed := p.feed(next)
	defer stopFeed()

	// The scheduler is the actor that returns first (at the end of the
	// inputs, or once starting stops), so Run returns its error; the
	// progress line is drawn until the group interrupts it then.
	var g oklog.Group
	g.Add(func() error { return p.schedule(startCtx, jobsCtx, feed) }, func(error) { stopStarting() })
	if p.c.progress {
		stopDrawing := make(chan struct{})
		g.Add(func() error { p.drawProgress(stopDrawing); return nil }, func(error) { close(stopDrawing) })
	}
	return g.Run()
}

// feed makes the jobs on a goroutine of its own, so that a job can end,
// and a halt stop the run, while a read of stdin waits for more; its
// channel holds a few jobs made ahead, so a worker that frees up takes the
// next at once. The goroutine ends at the end of the inputs, or when stop
// says the workers take no more jobs; a read blocked on a stdin that never
// ends is the one thing left behind when a run halts, and ends with the
// process.
func (p *parallelRun) feed(next func() (*job, error)) (jobs <-chan fedJob, stop func()) {
	feed := make(chan fedJob, p.c.jobs)
	stopFeed := make(chan struct{})
	go func() {
		defer close(feed)
		for order := 0; ; order++ {
			j, err := next()
			if j == nil && err == nil {
				return
			}
			if j != nil {
				j.order = order // the order jobs start in, for -k
			}
			select {
			case feed <- fedJob{j, err}:
			case <-stopFeed:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return feed, func() { close(stopFeed) }
}

// conclude prints what is left to print once every job has finished, and
// says how the run ends.
func (p *parallelRun) conclude(ctx context.Context, inputErr error) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.haltedNow {
		// GNU parallel exits at once: what -k still holds is not printed.
		for _, r := range p.pending {
			r.release()
		}
		p.pending = nil
	}
	p.flushPending()
	if ctx.Err() != nil {
		fmt.Fprintf(p.stderr, "arbor parallel: interrupted: %d jobs done, %d failed, %d stopped\n", p.completed-p.stopped, p.failed-p.stopped, p.stopped)
	}
	if inputErr != nil {
		return 0, inputErr
	}
	return p.exitStatus(), nil
}

// schedule runs the jobs on c.jobs worker goroutines, each taking the
// next job as it frees up, until the inputs end or starting stops; it
// returns when every job started has finished.
func (p *parallelRun) schedule(startCtx, jobsCtx context.Context, feed <-chan fedJob) error {
	c := p.c
	slots := make([]bool, c.jobs+1) // slots[n]: slot n is taken
	var (
		mu        sync.Mutex // guards slots, nextStart and inputErr
		nextStart time.Time  // --delay: no job starts before this
		inputErr  error
		wg        sync.WaitGroup
	)
	take := func() (*job, bool) {
		select {
		case f, ok := <-feed:
			switch {
			case !ok:
				return nil, false
			case f.err != nil:
				mu.Lock()
				inputErr = f.err
				mu.Unlock()
				p.stopStarting()
				return nil, false
			}
			// A job that just ended may have halted the run meanwhile
			// (finish cancels startCtx before its worker takes more).
			return f.j, startCtx.Err() == nil
		case <-startCtx.Done():
			return nil, false
		}
	}
	for range c.jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for startCtx.Err() == nil {
				j, ok := take()
				if !ok {
					return
				}
				if c.keepOrder && !p.waitTurn(startCtx, j) {
					return
				}
				if c.delay > 0 {
					mu.Lock()
					wait := time.Until(nextStart)
					nextStart = time.Now().Add(max(wait, 0) + c.delay)
					mu.Unlock()
					if wait > 0 && !sleepCtx(startCtx, wait) {
						return
					}
				}
				mu.Lock()
				for j.slot = 1; slots[j.slot]; j.slot++ {
				}
				slots[j.slot] = true
				mu.Unlock()
				p.prepare(j)
				p.mu.Lock()
				halted := p.halting || startCtx.Err() != nil
				if !halted {
					p.started++
					p.running++
				}
				p.mu.Unlock()
				if !halted { // a job that ended meanwhile may have halted the run
					p.finish(p.runJob(jobsCtx, j))
				}
				mu.Lock()
				slots[j.slot] = false
				mu.Unlock()
				if halted {
					return
				}
			}
		}()
	}
	wg.Wait()
	return inputErr
}

// waitTurn holds a job back, with -k, while too many jobs after the
// oldest unprinted one have finished and wait for it: each holds two open
// files, and a slow job early on must not make a run exhaust its file
// descriptors. It reports false if starting stopped meanwhile.
func (p *parallelRun) waitTurn(ctx context.Context, j *job) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for j.order-p.nextOrder >= p.aheadLimit && ctx.Err() == nil && !p.halting {
		p.turn.Wait()
	}
	return ctx.Err() == nil && !p.halting
}

// keepOrderAhead is how many jobs -k lets start past the oldest unprinted
// one: what the file descriptor limit allows for their output files.
func keepOrderAhead(jobs int) int {
	limit := 4096
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < uint64(2*limit+64) {
		limit = (int(rl.Cur) - 64) / 2
	}
	return max(limit-jobs, jobs, 1)
}

// sleepCtx waits d, or less if ctx ends first; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// fedJob is a job made from the inputs, or why the next one could not be.
type fedJob struct {
	j   *job
	err error
}

// prepare renders a job's command line and decides how to run it.
func (p *parallelRun) prepare(j *job) {
	var b strings.Builder
	p.tmpl.render(&b, j.records, j.seq, j.slot)
	j.command = b.String()
	if words, ok := simpleWords(j.command); ok && !p.funcs[words[0]] {
		p.pathsMu.Lock()
		path, found := p.paths[words[0]]
		if !found {
			path, _ = exec.LookPath(words[0])
			p.paths[words[0]] = path
		}
		p.pathsMu.Unlock()
		if path != "" {
			j.argv = append([]string{path}, words[1:]...)
			return
		}
	}
	// Not found, or more than words: the shell runs it (and says what is
	// wrong, with status 127, as it would under GNU parallel).
	j.argv = []string{p.c.shell, "-c", j.command}
}

// exportedFunctions lists the shell functions bash exports in env: a job
// named like one of them must go through the shell.
func exportedFunctions(env []string) map[string]bool {
	funcs := map[string]bool{}
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if f, ok := strings.CutPrefix(name, "BASH_FUNC_"); ok {
			f = strings.TrimSuffix(strings.TrimSuffix(f, "%%"), "()")
			funcs[f] = true
		}
	}
	return funcs
}

// argJobs makes jobs from the inputs: -n records each (one by default), or
// as many as the command line takes with -m, -X and --xargs.
func (p *parallelRun) argJobs(in *inputs) func() (*job, error) {
	c := p.c
	seq := 0
	perJob := max(c.maxArgs, 1)
	spread := false
	maxChars := c.maxChars
	if maxChars <= 0 {
		maxChars = defaultMaxChars
	}
	var base int
	if c.multi != multiNone {
		var b strings.Builder
		p.tmpl.render(&b, nil, 1, 1)
		// The first value of each {} goes where the space before it is.
		base = b.Len() - p.tmpl.hasAll
	}
	return func() (*job, error) {
		for {
			var records [][]string
			length := base
			ended := false
			for {
				if c.multi == multiNone && len(records) == perJob {
					break
				}
				if c.multi != multiNone && c.maxArgs > 0 && len(records) == c.maxArgs {
					break
				}
				rec, ok, err := in.next()
				if err != nil {
					return nil, err
				}
				if !ok {
					ended = true
					break
				}
				if c.multi != multiNone {
					n := 0
					for _, v := range rec {
						n += p.tmpl.valueLen(v)
					}
					if length+n >= maxChars && len(records) > 0 {
						in.unget(rec)
						break
					}
					length += n
				}
				records = append(records, rec)
			}
			if ended && !spread && (c.multi == multiM || c.multi == multiX) && len(records) > 1 && c.maxArgs == 0 {
				// GNU parallel spreads the last arguments over the job
				// slots, so that all of them have work.
				spread = true
				each := (len(records) + c.jobs - 1) / c.jobs
				for i := len(records) - 1; i >= each; i-- {
					in.unget(records[i])
				}
				records = records[:each]
				c = p.withMaxArgs(each)
			}
			if len(records) == 0 {
				return nil, nil
			}
			seq++
			if p.skip[seq] {
				continue
			}
			if c.zeroArgs {
				records = nil // -n 0: the input only counts a job
			}
			return &job{seq: seq, records: records}, nil
		}
	}
}

// withMaxArgs returns a copy of the configuration with -n set, for the jobs
// after GNU's spreading.
func (p *parallelRun) withMaxArgs(n int) *parallelConfig {
	c := *p.c
	c.maxArgs = n
	return &c
}

// pipeJobs cuts stdin into chunks at record ends: -N records each, or
// about --block bytes.
func (p *parallelRun) pipeJobs() func() (*job, error) {
	c := p.c
	r := bufio.NewReaderSize(p.stdin, 64<<10)
	recEnd := c.recEnd
	var held []byte   // a record read that did not fit the last chunk
	var header []byte // --header: the first record, repeated in every chunk
	firstLen := 0
	if c.header {
		firstLen = -1 // the length of the first record, once read
	}
	seq := 0
	readRecord := func() ([]byte, error) {
		var rec []byte
		for {
			part, err := r.ReadSlice(recEnd[len(recEnd)-1])
			rec = append(rec, part...)
			if err == bufio.ErrBufferFull {
				continue
			}
			if err != nil || bytes.HasSuffix(rec, recEnd) {
				return rec, err
			}
		}
	}
	return func() (*job, error) {
		for {
			var chunk []byte
			records := 0
			if held != nil {
				chunk, held, records = held, nil, 1
			}
			var readErr error
			for {
				if c.maxArgs > 0 && records == c.maxArgs {
					break
				}
				rec, err := readRecord()
				if firstLen < 0 {
					firstLen = len(rec)
					records-- // the header is no record of a chunk
				}
				if len(rec) > 0 {
					if c.maxArgs == 0 && len(chunk) > 0 && len(chunk)+len(rec) > c.block {
						held = rec
						break
					}
					chunk = append(chunk, rec...)
					records++
				}
				if err != nil {
					readErr = err
					break
				}
			}
			if readErr != nil && readErr != io.EOF {
				return nil, fmt.Errorf("reading stdin: %w", readErr)
			}
			if len(chunk) == 0 {
				return nil, nil
			}
			if c.header && header == nil {
				// --header: the first record heads every chunk.
				header, chunk = chunk[:firstLen], chunk[firstLen:]
				if len(chunk) == 0 && readErr != nil {
					return nil, nil
				}
			}
			if header != nil {
				chunk = append(append([]byte(nil), header...), chunk...)
			}
			seq++
			if p.skip[seq] {
				continue
			}
			return &job{seq: seq, chunk: chunk}, nil
		}
	}
}

// runJob runs a job, again while it fails and --retries allows.
func (p *parallelRun) runJob(ctx context.Context, j *job) *jobResult {
	for attempt := 1; ; attempt++ {
		r := p.attempt(ctx, j)
		if !r.failed() || attempt >= p.c.attempts || ctx.Err() != nil {
			return r
		}
		if p.isHalting() {
			// GNU parallel puts the job back to be tried again, and after
			// a halt starts nothing: the attempt is as if it never was.
			r.abandoned = true
			return r
		}
		r.release() // GNU parallel prints the last attempt's output only
	}
}

func (p *parallelRun) isHalting() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.halting
}

// attempt runs a job once.
func (p *parallelRun) attempt(ctx context.Context, j *job) *jobResult {
	r := &jobResult{job: j, start: time.Now(), files: &p.files}
	grouped := p.grouped()
	if grouped {
		var err error
		if r.stdout, err = p.files.get(); err == nil {
			r.stderr, err = p.files.get()
		}
		if err != nil {
			r.startErr, r.code = err, 1
			return r
		}
	}
	if p.c.dryRun {
		r.stdout.WriteString(j.command + "\n")
		r.received = int64(len(j.command) + 1)
		return r
	}
	opts := p.spawnOptions(j)
	lines, counted := p.connectOutput(&opts, r, grouped)
	if !grouped {
		p.announce(j)
	}
	login := p.loginFor(j.slot)
	remote := login != nil && login.remote()
	workdir := ""
	if remote {
		workdir = p.remoteWorkdir(j)
		p.remoteOptions(&opts, login, j, workdir)
		if p.c.transfer {
			if err := p.sendInputs(ctx, login, j, workdir); err != nil {
				r.startErr, r.code = err, 255
				return r
			}
		}
	}
	a, err := p.startJob(ctx, j, opts)
	if err != nil {
		r.couldNotStart(err)
		return r
	}
	p.await(ctx, a, r)
	if remote {
		// Even after an interrupt: what the job made is brought back,
		// within a bound, as the host may be gone.
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), remoteCopyTimeout)
		p.bringBack(bctx, login, j, workdir)
		cancel()
	}
	for _, l := range lines {
		l.flush()
	}
	r.runtime = time.Since(r.start)
	switch {
	case counted != nil:
		r.received = counted.n
	case grouped:
		r.received, r.errSize = size(r.stdout), size(r.stderr)
	}
	return r
}

// spawnOptions says how to run a job: its program, its environment, its
// stdin, and how long it has to stop once asked.
func (p *parallelRun) spawnOptions(j *job) spawn.Options {
	opts := spawn.Options{
		Name:        "job-" + strconv.Itoa(j.seq),
		Binary:      j.argv[0],
		Args:        j.argv[1:],
		Env:         append(p.env[:len(p.env):len(p.env)], "PARALLEL_SEQ="+strconv.Itoa(j.seq), "PARALLEL_JOBSLOT="+strconv.Itoa(j.slot)),
		GracePeriod: jobStopGrace,
	}
	if j.chunk != nil {
		opts.Stdin = bytes.NewReader(j.chunk)
	} else if p.devNull != nil {
		opts.Stdin = p.devNull // one open file for every job, not one each
	}
	return opts
}

// connectOutput says where a job's stdout and stderr go: to its own files
// when grouped, straight to arbor's with --ungroup, else (--line-buffer)
// through line writers, which it returns to be flushed once the job ends,
// with the one that counts its stdout.
func (p *parallelRun) connectOutput(opts *spawn.Options, r *jobResult, grouped bool) (lines []*lineWriter, counted *countingWriter) {
	switch {
	case grouped:
		opts.Stdout, opts.Stderr = r.stdout, r.stderr // the files themselves: no pipe
	case p.c.output == outputUngroup:
		opts.Stdout, opts.Stderr = p.stdout, p.stderr
	default:
		out := &lineWriter{mu: &p.outMu, w: p.tagged(p.stdout, r.job)}
		errw := &lineWriter{mu: &p.outMu, w: p.tagged(p.stderr, r.job)}
		counted = &countingWriter{w: out}
		opts.Stdout, opts.Stderr = counted, errw
		return []*lineWriter{out, errw}, counted
	}
	return nil, nil
}

// announce prints a job's command before it runs, with --verbose on
// stderr and with -v on stdout, when its output is not grouped (print
// does it then).
func (p *parallelRun) announce(j *job) {
	if !p.c.verbose && !p.c.printCmd {
		return
	}
	p.outMu.Lock()
	defer p.outMu.Unlock()
	if p.c.verbose {
		fmt.Fprintln(p.stderr, j.command)
	}
	if p.c.printCmd {
		fmt.Fprintln(p.stdout, j.command)
	}
}

// startJob starts a job's process.
func (p *parallelRun) startJob(ctx context.Context, j *job, opts spawn.Options) (*spawn.Actor, error) {
	a, err := spawn.StartCommand(ctx, opts)
	if errors.Is(err, syscall.ENOEXEC) && opts.Binary != p.c.shell {
		// A script without a #! line: the shell runs those itself.
		opts.Binary, opts.Args = p.c.shell, []string{"-c", j.command}
		a, err = spawn.StartCommand(ctx, opts)
	}
	return a, err
}

// couldNotStart notes why the job could not start, and the status a shell
// gives for that: 126 when it may not be run, else 127.
func (r *jobResult) couldNotStart(err error) {
	// Speak of the job, not of spawn's actor that would have run it.
	var se *spawn.StartError
	if errors.As(err, &se) && se.Err != nil {
		err = se.Err
	}
	r.startErr, r.code = err, 127
	switch {
	case errors.Is(err, os.ErrPermission):
		r.code = 126
	case errors.Is(err, syscall.E2BIG):
		r.startErr = fmt.Errorf("its command line is %d bytes, more than the system takes: %w", len(r.job.command), err)
	}
}

// await waits for a job's process to end, stopping it at its --timeout or
// once ctx ends, and notes how it ended.
func (p *parallelRun) await(ctx context.Context, a *spawn.Actor, r *jobResult) {
	var expired <-chan time.Time
	if d := p.timeoutFor(); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-a.Done():
	case <-expired:
		r.killed, r.timedOut = true, true
		a.Stop(context.Background())
	case <-ctx.Done():
		r.killed = true
		a.Stop(context.Background())
	}
	var exit *spawn.ExitError
	if err := a.Wait(); errors.As(err, &exit) {
		r.code, r.signal = max(exit.Code, 0), exit.Signal
	}
}

// timeoutFor is the --timeout for a job starting now.
func (p *parallelRun) timeoutFor() time.Duration {
	if p.c.timeoutPct == 0 {
		return p.c.timeout
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.runtimes) < 3 {
		return 0 // no median to speak of yet
	}
	sorted := append([]time.Duration(nil), p.runtimes...)
	sort.Slice(sorted, func(a, b int) bool { return sorted[a] < sorted[b] })
	return time.Duration(float64(sorted[len(sorted)/2]) * p.c.timeoutPct / 100)
}

// tagged wraps w to put the job's --tag or --tagstring before each line.
func (p *parallelRun) tagged(w io.Writer, j *job) io.Writer {
	if prefix, ok := p.tag(j); ok {
		return &prefixWriter{w: w, prefix: []byte(prefix)}
	}
	return w
}

func (p *parallelRun) tag(j *job) (string, bool) {
	switch {
	case p.tagT != nil:
		var b strings.Builder
		p.tagT.render(&b, j.records, j.seq, j.slot)
		return b.String() + "\t", true
	case p.c.tag:
		var vals []string
		for _, r := range j.records {
			vals = append(vals, r...)
		}
		return strings.Join(vals, " ") + "\t", true
	}
	return "", false
}

// finish records a finished job: counts, halts, joblog, output.
func (p *parallelRun) finish(r *jobResult) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running--
	if p.haltedNow || r.abandoned {
		// Killed by --halt now, or done after it: GNU parallel has exited
		// by now, printing nothing more.
		r.release()
		return
	}
	p.completed++
	if r.killed && !r.timedOut {
		p.stopped++ // by an interrupt: counted apart in the summary
	}
	if !r.failed() && p.c.timeoutPct > 0 {
		// The median of the last medianWindow jobs that succeeded, so
		// that memory stays flat however many jobs run.
		if len(p.runtimes) < medianWindow {
			p.runtimes = append(p.runtimes, r.runtime)
		} else {
			p.runtimes[p.completed%medianWindow] = r.runtime
		}
	}
	if p.shouldHalt(r) {
		p.stopStarting()
		if p.c.halt.when == "now" {
			p.killAll()
		}
	}
	if r.startErr != nil {
		fmt.Fprintf(p.stderr, "arbor parallel: job %d could not start: %v\n", r.job.seq, r.startErr)
	}
	if r.timedOut {
		fmt.Fprintf(p.stderr, "arbor parallel: job %d was killed because it timed out: %s\n", r.job.seq, r.job.command)
	}
	if p.joblog != nil {
		p.logJob(r)
	}
	if p.c.results != "" {
		if err := saveResults(p.c.results, p.colNames, r.job.records, r.job.seq, r.stdout, r.stderr); err != nil {
			fmt.Fprintf(p.stderr, "arbor parallel: job %d: %v\n", r.job.seq, err)
			p.lostOutput = true
		}
	}
	switch {
	case !p.grouped() || p.c.results != "":
		// --results: the files are the output (GNU parallel prints none).
		r.release()
	case !p.c.keepOrder:
		p.print(r)
		r.release()
	default:
		p.pending[r.job.order] = r
		for q, ok := p.pending[p.nextOrder]; ok; q, ok = p.pending[p.nextOrder] {
			p.print(q)
			q.release()
			delete(p.pending, p.nextOrder)
			p.nextOrder++
		}
		p.turn.Broadcast()
	}
}

// grouped reports whether each job's output goes to files of its own, to be
// printed whole (or, with --results, saved).
func (p *parallelRun) grouped() bool {
	c := p.c
	return c.output == outputGroup || c.dryRun || c.results != "" || (c.keepOrder && c.output == outputLineBuffer)
}

// flushPending prints what -k still holds, in order, skipping gaps (jobs
// killed by a halt or an interrupt).
func (p *parallelRun) flushPending() {
	orders := make([]int, 0, len(p.pending))
	for o := range p.pending {
		orders = append(orders, o)
	}
	sort.Ints(orders)
	for _, o := range orders {
		p.print(p.pending[o])
		p.pending[o].release()
		delete(p.pending, o)
	}
}

// print writes a finished job's output whole: the command (--verbose),
// stdout, then stderr, as GNU parallel groups them.
func (p *parallelRun) print(r *jobResult) {
	if p.c.verbose {
		fmt.Fprintln(p.stderr, r.job.command)
	}
	if p.c.printCmd {
		fmt.Fprintln(p.stdout, r.job.command)
	}
	if r.stdout != nil && r.received > 0 {
		copyOut(p.tagged(p.stdout, r.job), r.stdout)
	}
	if r.stderr != nil && r.errSize > 0 {
		copyOut(p.tagged(p.stderr, r.job), r.stderr)
	}
}

// shouldHalt counts a finished job and applies --halt as GNU parallel does,
// exit status included: with fail=1 or done=1 the job's own status (128 +
// the signal for a signal), with a percentage the percentage that failed,
// else the number that failed, at most 101.
func (p *parallelRun) shouldHalt(r *jobResult) bool {
	h := p.c.halt
	limit, counted := 0, false
	if r.failed() {
		p.failed++
		if h.why == "fail" {
			limit, counted = p.failed, true
		}
	} else if h.why == "success" {
		limit, counted = p.completed-p.failed, true
	}
	if h.why == "done" {
		limit, counted = p.completed, true
	}
	if h.when == "never" || !counted {
		return false
	}
	need := float64(h.count)
	if h.pct > 0 {
		need = float64(p.total) * h.pct / 100
	}
	if float64(limit) < need {
		return false
	}
	if p.haltStatus == nil {
		status := 0
		if h.why != "success" {
			if h.pct > 0 {
				status = int(math.Ceil(float64(p.failed) / float64(p.total) * 100))
			} else {
				status = min(p.failed, maxFailures)
			}
			if need == 1 { // fail=1, or a percentage that comes to one job
				switch {
				case r.killed:
					status = 255 // GNU's -1
				case r.code != 0:
					status = r.code
				case r.signal != 0:
					status = 128 + int(r.signal)
				case r.startErr != nil:
					status = r.code
				default:
					status = 0
				}
			}
		}
		p.haltStatus = &status
	}
	first := !p.halting
	p.halting = true
	if h.when == "now" {
		p.haltedNow = true
	}
	return first
}

// exitStatus is the run's exit status, as GNU parallel computes it.
func (p *parallelRun) exitStatus() int {
	if p.lostOutput {
		return exitParallelUsage // GNU's "other error"
	}
	h := p.c.halt
	if h.when != "never" {
		if p.haltStatus != nil {
			return *p.haltStatus
		}
		if h.pct > 0 {
			return int(math.Ceil(float64(p.failed) / float64(max(p.started, 1)) * 100))
		}
	}
	return min(p.failed, maxFailures)
}
