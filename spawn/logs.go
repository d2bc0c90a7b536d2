package spawn

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
)

const (
	// maxLine is the longest line forwarded as one record; longer lines are
	// split.
	maxLine = 16 << 10
	// tailLines is how many of the last stderr lines an ExitError keeps.
	tailLines = 20
	// headLines is how many of the first output lines a StartError keeps.
	headLines = 5
	// maxPanicLines bounds the panic trace kept for an ExitError.
	maxPanicLines = 200
	// logQueue is how many lines may wait for a slow logger before lines
	// are dropped: a child must never block on its parent's logging.
	logQueue = 1024
)

type logLine struct {
	stream string // "stdout" or "stderr"
	text   string
}

// logForwarder drains a child's output streams and re-emits each line
// through the parent's logger. The drains never wait on the logger: lines
// go through a bounded queue, and when it is full they are counted and
// dropped, so a child can never be blocked by a busy parent.
type logForwarder struct {
	log     hclog.Logger
	output  func(stream, line string) // Options.Output, instead of log
	readers []io.Closer               // the streams being drained, for abort
	lines   chan logLine              // made with the emitter
	wg      sync.WaitGroup            // the drains
	done    chan struct{}             // closed when the emitter has finished

	mu       sync.Mutex
	emitting bool // the emitter has been started
	dropped  int
	tail     []string // last stderr lines
	head     []string // first output lines
	inPanic  bool
	panicBuf []string
}

func newLogForwarder(log hclog.Logger, output func(stream, line string)) *logForwarder {
	return &logForwarder{log: log, output: output, done: make(chan struct{})}
}

// drain reads r until it ends and queues its lines. It is one of the
// goroutines the forwarder owns; wait returns after all of them.
func (f *logForwarder) drain(r io.ReadCloser, stream string) {
	f.mu.Lock()
	f.readers = append(f.readers, r)
	if !f.emitting {
		// The emitter starts with the first stream read as lines; a
		// program whose output is all copied raw needs none.
		f.emitting = true
		f.lines = make(chan logLine, logQueue)
		go f.emit()
	}
	f.mu.Unlock()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer r.Close()
		br := bufio.NewReaderSize(r, maxLine)
		for {
			line, err := br.ReadSlice('\n')
			if len(line) > 0 {
				f.take(stream, strings.TrimRight(string(line), "\r\n"))
			}
			if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
				return
			}
		}
	}()
}

// copyRaw copies r to w byte for byte until r ends, as one of the
// goroutines the forwarder owns. A failing w ends the copy and closes r,
// so the program gets EPIPE rather than blocking.
func (f *logForwarder) copyRaw(r io.ReadCloser, w io.Writer) {
	f.mu.Lock()
	f.readers = append(f.readers, r)
	f.mu.Unlock()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer r.Close()
		io.Copy(w, r)
	}()
}

// take records a line for the exit report and queues it for the logger.
func (f *logForwarder) take(stream, text string) {
	f.mu.Lock()
	if len(f.head) < headLines && text != "" {
		f.head = append(f.head, text)
	}
	if stream == "stderr" {
		if len(f.tail) == tailLines {
			copy(f.tail, f.tail[1:])
			f.tail = f.tail[:tailLines-1]
		}
		f.tail = append(f.tail, text)
		if strings.HasPrefix(text, "panic: ") || strings.HasPrefix(text, "fatal error: ") {
			f.inPanic = true
		}
		if f.inPanic && len(f.panicBuf) < maxPanicLines {
			f.panicBuf = append(f.panicBuf, text)
		}
	}
	panicking := f.inPanic && stream == "stderr"
	f.mu.Unlock()
	if panicking {
		stream = "panic"
	}
	if f.output != nil {
		// Output is the program's result, not a log: wait rather than
		// drop (the program waits on its pipe meanwhile).
		f.lines <- logLine{stream: stream, text: text}
		return
	}
	select {
	case f.lines <- logLine{stream: stream, text: text}:
	default:
		f.mu.Lock()
		f.dropped++
		f.mu.Unlock()
	}
}

// emit writes queued lines to the logger until the drains have finished.
func (f *logForwarder) emit() {
	defer close(f.done)
	for l := range f.lines {
		f.mu.Lock()
		dropped := f.dropped
		f.dropped = 0
		f.mu.Unlock()
		if dropped > 0 {
			f.log.Warn("dropped output lines: the logger could not keep up", "lines", dropped)
		}
		f.emitLine(l)
	}
}

func (f *logForwarder) emitLine(l logLine) {
	if f.output != nil {
		stream := l.stream
		if stream == "panic" {
			stream = "stderr"
		}
		f.output(stream, l.text)
		return
	}
	if l.stream == "panic" {
		// No field: a panic's lines end in ':' often ("goroutine 1
		// [running]:"), and hclog would print them as "...:: stream=stderr".
		f.log.Error(l.text)
		return
	}
	if strings.HasPrefix(l.text, "{") {
		var rec map[string]any
		if json.Unmarshal([]byte(l.text), &rec) == nil {
			if lvl, ok := rec["@level"].(string); ok {
				f.emitJSON(hclog.LevelFromString(lvl), rec)
				return
			}
		}
	}
	f.log.Info(l.text, "stream", l.stream)
}

// emitJSON re-emits an hclog JSON record with its level and fields.
func (f *logForwarder) emitJSON(level hclog.Level, rec map[string]any) {
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	msg, _ := rec["@message"].(string)
	keys := make([]string, 0, len(rec))
	for k := range rec {
		if !strings.HasPrefix(k, "@") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	args := make([]any, 0, 2*len(keys)+2)
	for _, k := range keys {
		args = append(args, k, rec[k])
	}
	if mod, ok := rec["@module"].(string); ok && mod != "" {
		args = append(args, "module", mod)
	}
	f.log.Log(level, msg, args...)
}

// streams reports how many streams the forwarder reads.
func (f *logForwarder) streams() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.readers)
}

// wait returns when every drain has reached the end of its stream and the
// emitter has logged what they read.
func (f *logForwarder) wait() {
	f.wg.Wait()
	f.mu.Lock()
	emitting := f.emitting
	f.mu.Unlock()
	if emitting {
		close(f.lines)
		<-f.done
	}
}

// abort stops the drains by closing their streams: what a process outside
// the child's group still holds open is not waited for.
func (f *logForwarder) abort() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.readers {
		r.Close()
	}
}

// report returns the first output lines, the last stderr lines and the
// panic trace, if any.
func (f *logForwarder) report() (head, tail []string, panicTrace string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.head...), append([]string(nil), f.tail...), strings.Join(f.panicBuf, "\n")
}
