package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/arbor-go/arbor/ipc"
)

// logLine is one line a child printed.
type logLine struct {
	Time time.Time `msgpack:"t"`
	Name string    `msgpack:"name"`
	Text string    `msgpack:"text"`
}

// logsArgs asks for the lines of one child (or group: "web" is web.1 and
// web.2 too; "" is every child), the last Lines of them (0: all kept),
// and, with Follow, the new ones as they come.
type logsArgs struct {
	Name   string `msgpack:"name"`
	Lines  int    `msgpack:"lines"`
	Follow bool   `msgpack:"follow"`
}

var ctlLogs = ipc.NewStream[logsArgs, logLine]("arborctl.logs", nil)

// keptLines is how many lines of each child the log book keeps.
const keptLines = 1000

// followBuffer is how many lines a follower may fall behind before lines
// are dropped for it (and it is told how many).
const followBuffer = 4096

// logBook keeps the last lines of every child, writes them to files in
// dir when there is one, and passes them on to followers.
type logBook struct {
	dir string

	mu        sync.Mutex
	rings     map[string]*ring
	files     map[string]*os.File
	followers map[*follower]bool
}

type ring struct {
	lines []logLine
	next  int
	full  bool
}

type follower struct {
	name    string
	lines   chan logLine
	dropped int // guarded by the book's mu
}

func newLogBook(dir string) (*logBook, error) {
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("--log-dir: %w", err)
		}
	}
	return &logBook{dir: dir, rings: map[string]*ring{}, files: map[string]*os.File{}, followers: map[*follower]bool{}}, nil
}

// matches reports whether a line of child name is one asked for by want.
func matches(want, name string) bool {
	return want == "" || name == want || strings.HasPrefix(name, want+".")
}

// add records one line.
func (b *logBook) add(name, text string) {
	l := logLine{Time: time.Now(), Name: name, Text: text}
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.rings[name]
	if r == nil {
		r = &ring{lines: make([]logLine, keptLines)}
		b.rings[name] = r
	}
	r.lines[r.next] = l
	r.next = (r.next + 1) % keptLines
	r.full = r.full || r.next == 0
	if b.dir != "" {
		f := b.files[name]
		if f == nil {
			var err error
			f, err = os.OpenFile(filepath.Join(b.dir, name+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
			if err == nil {
				b.files[name] = f
			}
		}
		if f != nil {
			fmt.Fprintf(f, "%s %s\n", l.Time.Format(time.RFC3339Nano), text)
		}
	}
	for f := range b.followers {
		if !matches(f.name, name) {
			continue
		}
		select {
		case f.lines <- l:
		default:
			f.dropped++ // a slow reader never holds up the children's output
		}
	}
}

// history returns the kept lines of what want names, oldest first, and,
// with follow, a subscription to the next ones: taken together, so that
// no line is missed or sent twice.
func (b *logBook) history(want string, follow bool) ([]logLine, *follower) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []logLine
	for name, r := range b.rings {
		if !matches(want, name) {
			continue
		}
		if r.full {
			out = append(out, r.lines[r.next:]...)
		}
		out = append(out, r.lines[:r.next]...)
	}
	slices.SortStableFunc(out, func(a, b logLine) int { return a.Time.Compare(b.Time) })
	var f *follower
	if follow {
		f = &follower{name: want, lines: make(chan logLine, followBuffer)}
		b.followers[f] = true
	}
	return out, f
}

func (b *logBook) unfollow(f *follower) {
	b.mu.Lock()
	delete(b.followers, f)
	b.mu.Unlock()
}

// takeDropped returns, and clears, how many lines f missed.
func (b *logBook) takeDropped(f *follower) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := f.dropped
	f.dropped = 0
	return n
}

// close closes the log files.
func (b *logBook) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, f := range b.files {
		f.Close()
	}
	b.files = map[string]*os.File{}
}

// serveLogs is the control socket's arborctl.logs.
func (b *logBook) serveLogs(ctx context.Context, a logsArgs, out *ipc.Yielder[logLine]) error {
	past, f := b.history(a.Name, a.Follow)
	if f != nil {
		defer b.unfollow(f)
	}
	if a.Lines > 0 && len(past) > a.Lines {
		past = past[len(past)-a.Lines:]
	}
	for _, l := range past {
		if err := out.Send(l); err != nil {
			return err
		}
	}
	if f == nil {
		return nil
	}
	for {
		select {
		case l := <-f.lines:
			if n := b.takeDropped(f); n > 0 {
				if err := out.Send(logLine{Time: time.Now(), Name: "arbor", Text: fmt.Sprintf("%d lines dropped: this reader fell behind", n)}); err != nil {
					return err
				}
			}
			if err := out.Send(l); err != nil {
				return err
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// printLog writes one line as arbor supervise shows it.
func printLog(w io.Writer, l logLine) {
	fmt.Fprintf(w, "%s %s | %s\n", l.Time.Local().Format("15:04:05"), l.Name, l.Text)
}
