package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// spillAt is how much of one job's output is held in memory; past it the
// rest goes to an unlinked temporary file, so a job that prints gigabytes
// costs disk, not memory (GNU parallel buffers in files too).
const spillAt = 4 << 20

// spillBuffer holds one stream of one job's output, byte for byte, until it
// is printed. It is written from one goroutine and read after that one has
// finished.
type spillBuffer struct {
	mem  bytes.Buffer
	file *os.File
	n    int64
	err  error
}

func (b *spillBuffer) Write(p []byte) (int, error) {
	b.n += int64(len(p))
	if b.file == nil && b.mem.Len()+len(p) <= spillAt {
		return b.mem.Write(p)
	}
	if b.file == nil && b.err == nil {
		f, err := os.CreateTemp("", "arbor-parallel-")
		if err != nil {
			b.err = fmt.Errorf("holding a job's output: %w", err)
			return 0, b.err
		}
		os.Remove(f.Name())
		b.file = f
		if _, err := f.Write(b.mem.Bytes()); err != nil {
			b.err = err
		}
		b.mem = bytes.Buffer{}
	}
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.file.Write(p)
	if err != nil {
		b.err = err
	}
	return n, err
}

// writeTo copies what the buffer holds to w.
func (b *spillBuffer) writeTo(w io.Writer) error {
	if b.file == nil {
		_, err := w.Write(b.mem.Bytes())
		return err
	}
	if _, err := b.file.Seek(0, io.SeekStart); err != nil {
		return err
	}
	_, err := io.Copy(w, b.file)
	return err
}

func (b *spillBuffer) release() {
	if b.file != nil {
		b.file.Close()
		b.file = nil
	}
	b.mem = bytes.Buffer{}
}

// prefixWriter puts prefix before every line written through it (--tag).
// A last line without a newline keeps its prefix and gets no newline.
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
		i := bytes.IndexByte(b, '\n')
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
// parallel's layout: DIR/1/<value of source 1>/2/<value of source 2>/...,
// with / in a value written \_ and \ written \\.
func resultsDir(root string, values []string) string {
	parts := []string{root}
	for i, v := range values {
		v = strings.ReplaceAll(v, `\`, `\\`)
		v = strings.ReplaceAll(v, "/", `\_`)
		if v == "" {
			v = `\_` // GNU's stand-in for an empty value would be an empty name
		}
		parts = append(parts, strconv.Itoa(i+1), v)
	}
	return filepath.Join(parts...)
}

// saveResults writes a job's seq, stdout and stderr files under root.
func saveResults(root string, values []string, seq int, stdout, stderr *spillBuffer) error {
	dir := resultsDir(root, values)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "seq"), []byte(strconv.Itoa(seq)), 0o644); err != nil {
		return fmt.Errorf("--results: %w", err)
	}
	for name, b := range map[string]*spillBuffer{"stdout": stdout, "stderr": stderr} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("--results: %w", err)
		}
		err = b.writeTo(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("--results: %w", err)
		}
	}
	return nil
}
