package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// outputFiles hands out the unlinked temporary files that hold jobs'
// output until it is printed. A job writes straight into its file (no pipe,
// no copying goroutine, no memory held), and a printed file is emptied and
// reused by a later job, so a run makes about as many files as it has jobs
// running or waiting for -k, however many jobs it runs. GNU parallel holds
// output in temporary files too.
type outputFiles struct {
	mu   sync.Mutex
	free []*os.File
	all  []*os.File
}

func (o *outputFiles) get() (*os.File, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if n := len(o.free); n > 0 {
		f := o.free[n-1]
		o.free = o.free[:n-1]
		return f, nil
	}
	f, err := os.CreateTemp("", "arbor-parallel-")
	if err != nil {
		return nil, fmt.Errorf("making a file for a job's output: %w", err)
	}
	os.Remove(f.Name())
	o.all = append(o.all, f)
	return f, nil
}

// put empties f, which holds n bytes, and keeps it for another job. A
// file that cannot be emptied is dropped (and closed at the end).
func (o *outputFiles) put(f *os.File, n int64) {
	if n != 0 { // most jobs print nothing on stderr, many nothing at all
		if f.Truncate(0) != nil {
			return
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return
		}
	}
	o.mu.Lock()
	o.free = append(o.free, f)
	o.mu.Unlock()
}

func (o *outputFiles) close() {
	for _, f := range o.all {
		f.Close()
	}
}

// copyOut writes what f holds, from its start, to w.
func copyOut(w io.Writer, f *os.File) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	_, err := io.Copy(w, f)
	return err
}

// size is how much f holds.
func size(f *os.File) int64 {
	st, err := f.Stat()
	if err != nil {
		return 0
	}
	return st.Size()
}

// prefixWriter puts prefix before every line written through it (--tag),
// a line ending at \n or, as GNU parallel has it, \r. A last line without
// a newline keeps its prefix and gets no newline.
type prefixWriter struct {
	w           io.Writer
	prefix      []byte
	midLine     bool
	scratchLine []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	n := len(b)
	out := p.scratchLine[:0]
	for len(b) > 0 {
		if !p.midLine {
			out = append(out, p.prefix...)
			p.midLine = true
		}
		i := bytes.IndexAny(b, "\r\n") // GNU parallel tags after a \r too
		if i < 0 {
			out = append(out, b...)
			break
		}
		out = append(out, b[:i+1]...)
		b = b[i+1:]
		p.midLine = false
	}
	p.scratchLine = out
	if _, err := p.w.Write(out); err != nil {
		return 0, err
	}
	return n, nil
}

// lineWriter passes whole lines to w as they complete, under mu, so lines
// of jobs running at once never mix (--line-buffer). flush writes what is
// left of an unfinished last line.
type lineWriter struct {
	mu      *sync.Mutex
	w       io.Writer
	partial []byte
}

func (l *lineWriter) Write(b []byte) (int, error) {
	i := bytes.LastIndexByte(b, '\n')
	if i < 0 {
		l.partial = append(l.partial, b...)
		return len(b), nil
	}
	l.mu.Lock()
	var err error
	if len(l.partial) > 0 {
		_, err = l.w.Write(l.partial)
		l.partial = l.partial[:0]
	}
	if err == nil {
		_, err = l.w.Write(b[:i+1])
	}
	l.mu.Unlock()
	l.partial = append(l.partial, b[i+1:]...)
	return len(b), err
}

func (l *lineWriter) flush() {
	if len(l.partial) == 0 {
		return
	}
	l.mu.Lock()
	l.w.Write(l.partial)
	l.mu.Unlock()
	l.partial = nil
}

// countingWriter counts the bytes written through it (the joblog's
// Receive column).
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// resultsDir is the directory --results puts a job's files in, in GNU
// parallel's layout: DIR/1/<value of source 1>/2/<value of source 2>/...
// for each of the job's inputs in turn, with / in a value written \_ and \
// written \\, and with --header the column names instead of the numbers.
func resultsDir(root string, names []string, records [][]string) string {
	parts := []string{root}
	for _, rec := range records {
		for i, v := range rec {
			label := strconv.Itoa(i + 1)
			if i < len(names) && names[i] != "" {
				label = names[i]
			}
			v = strings.ReplaceAll(v, `\`, `\\`)
			v = strings.ReplaceAll(v, "/", `\_`)
			parts = append(parts, label, v) // an empty value adds no level, as in GNU's
		}
	}
	return filepath.Join(parts...)
}

// saveResults writes a job's seq, stdout and stderr files under root.
func saveResults(root string, names []string, records [][]string, seq int, stdout, stderr *os.File) error {
	dir := resultsDir(root, names, records)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "seq"), []byte(strconv.Itoa(seq)), 0o644); err != nil {
		return fmt.Errorf("--results: %w", err)
	}
	for name, src := range map[string]*os.File{"stdout": stdout, "stderr": stderr} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("--results: %w", err)
		}
		err = copyOut(f, src)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("--results: %w", err)
		}
	}
	return nil
}

// openJoblog opens --joblog: new, with GNU's header, or with --resume and
// --resume-failed read for the jobs it has and then appended to.
func (p *parallelRun) openJoblog() (func(), error) {
	c := p.c
	if c.joblog == "-" {
		p.joblog = bufio.NewWriter(p.stdout)
		fmt.Fprintln(p.joblog, joblogHeader)
		return func() { p.joblog.Flush() }, nil
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if c.resume || c.resumeFail {
		p.skip = map[int]bool{}
		if b, err := os.ReadFile(c.joblog); err == nil {
			for i, line := range strings.Split(string(b), "\n") {
				f := strings.Split(line, "\t")
				if i == 0 || len(f) < 9 {
					continue
				}
				seq, err := strconv.Atoi(f[0])
				if err != nil {
					return nil, fmt.Errorf("--joblog %s line %d: the Seq column %q is not a number", c.joblog, i+1, f[0])
				}
				ok := f[6] == "0" && f[7] == "0"
				if c.resume || ok {
					p.skip[seq] = true
				} else if !p.skip[seq] {
					delete(p.skip, seq)
				}
			}
			flags = os.O_WRONLY | os.O_APPEND
		}
	}
	f, err := os.OpenFile(c.joblog, flags, 0o644)
	if err != nil {
		return nil, fmt.Errorf("--joblog: %w", err)
	}
	p.joblog = bufio.NewWriter(f)
	if flags&os.O_TRUNC != 0 {
		fmt.Fprintln(p.joblog, joblogHeader)
	}
	return func() { p.joblog.Flush(); f.Close() }, nil
}

const joblogHeader = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand"

func (p *parallelRun) logJob(r *jobResult) {
	start := float64(r.start.UnixMilli()) / 1000
	fmt.Fprintf(p.joblog, "%d\t:\t%.3f\t%10.3f\t0\t%d\t%d\t%d\t%s\n", r.job.seq, start, r.runtime.Seconds(),
		r.received, r.exitval(), int(r.signal), strings.ReplaceAll(r.job.command, "\n", "\x00"))
	p.joblog.Flush()
}

// drawProgress redraws the progress line on stderr until done closes,
// then draws the final one and ends the line.
func (p *parallelRun) drawProgress(done <-chan struct{}) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			p.progressLine()
		case <-done:
			p.progressLine()
			fmt.Fprintln(p.stderr)
			return
		}
	}
}

func (p *parallelRun) progressLine() {
	p.mu.Lock()
	defer p.mu.Unlock()
	eta := "?"
	if p.completed > 0 {
		left := time.Duration(float64(time.Since(p.began)) / float64(p.completed) * float64(p.total-p.completed))
		eta = left.Round(time.Second).String()
	}
	pct := 0
	if p.total > 0 {
		pct = p.completed * 100 / p.total
	}
	fmt.Fprintf(p.stderr, "\r%d%% %d/%d done, %d failed, %d running, ETA %s   ", pct, p.completed, p.total, p.failed, p.running, eta)
}
