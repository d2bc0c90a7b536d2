package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/protocol"
	"github.com/arbor-go/arbor/supervisor"
	"github.com/spf13/pflag"
)

// The control socket speaks arbor's own protocol: arbor ps, stop and
// restart are calls of these functions.

// psEntry is one child in arbor ps.
type psEntry struct {
	Name     string  `json:"name" msgpack:"name"`
	PID      int     `json:"pid" msgpack:"pid"`
	State    string  `json:"state" msgpack:"state"`
	Restarts int     `json:"restarts" msgpack:"restarts"`
	Uptime   float64 `json:"uptime_seconds" msgpack:"uptime_seconds"`
	LastExit string  `json:"last_exit,omitempty" msgpack:"last_exit"`
}

var (
	ctlPs      = ipc.NewFunc[struct{}, []psEntry]("arborctl.ps", nil)
	ctlStop    = ipc.NewFunc[string, struct{}]("arborctl.stop", nil)
	ctlRestart = ipc.NewFunc[string, struct{}]("arborctl.restart", nil)
)

// entries lists every child of the tree, depth first, by full name.
func (g *group) entries() []psEntry {
	var out []psEntry
	for _, c := range g.sup.Snapshot() {
		e := psEntry{Name: g.prefix + c.Name, PID: c.PID, State: c.State, Restarts: c.Restarts, Uptime: c.Uptime.Seconds()}
		if c.LastExit != nil {
			e.LastExit = c.LastExit.Error()
		}
		out = append(out, e)
		if sub := g.groups[c.Name]; sub != nil {
			out = append(out, sub.entries()...)
		}
	}
	return out
}

// find returns the supervisor holding the child with a full name.
func (g *group) find(full string) (*supervisor.Supervisor, string, bool) {
	name, rest, nested := strings.Cut(full, ".")
	if nested {
		if sub := g.groups[name]; sub != nil {
			return sub.find(rest)
		}
		return nil, "", false
	}
	return g.sup, name, true
}

// controlServer serves the control functions on a unix socket.
type controlServer struct {
	ln    net.Listener
	path  string
	table *ipc.Table
	wg    sync.WaitGroup
	mu    sync.Mutex
	chans map[*ipc.Channel]bool
}

func serveControl(path string, root *group) (*controlServer, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s is in use by another arbor supervise", path)
	}
	os.Remove(path) // a socket left by a run that was killed
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	os.Chmod(path, 0o600)
	act := func(op func(*supervisor.Supervisor, context.Context, string) error) func(context.Context, string) (struct{}, error) {
		return func(ctx context.Context, name string) (struct{}, error) {
			sup, child, ok := root.find(name)
			if !ok {
				return struct{}{}, fmt.Errorf("no child named %q", name)
			}
			return struct{}{}, op(sup, ctx, child)
		}
	}
	s := &controlServer{ln: ln, path: path, chans: map[*ipc.Channel]bool{}, table: ipc.MustNewTable(
		ipc.NewFunc(ctlPs.Name(), func(context.Context, struct{}) ([]psEntry, error) { return root.entries(), nil }),
		ipc.NewFunc(ctlStop.Name(), act((*supervisor.Supervisor).StopChild)),
		ipc.NewFunc(ctlRestart.Name(), act((*supervisor.Supervisor).RestartChild)),
	)}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

func (s *controlServer) accept() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			ch, err := ipc.Open(ctx, conn, ipc.Options{Actor: actorID("supervise"), Functions: s.table})
			cancel()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.chans[ch] = true
			s.mu.Unlock()
			<-ch.Done()
			ch.Close()
			s.mu.Lock()
			delete(s.chans, ch)
			s.mu.Unlock()
		}()
	}
}

// close stops serving, ends every control connection and removes the
// socket.
func (s *controlServer) close() {
	s.ln.Close()
	s.mu.Lock()
	var open []*ipc.Channel
	for ch := range s.chans {
		open = append(open, ch)
	}
	s.mu.Unlock()
	for _, ch := range open {
		ch.Close() // its goroutine sees Done and finishes
	}
	s.wg.Wait()
	os.Remove(s.path)
}

var controlExamples = map[string]string{
	"ps":      "Shows the children of a running arbor supervise.\n\nExamples:\n  arbor ps\n  arbor ps --json --control /run/app.sock\n",
	"stop":    "Stops a child of a running arbor supervise; it stays stopped until restarted.\n\nExamples:\n  arbor stop worker\n  arbor stop jobs.flaky\n",
	"restart": "Restarts a child of a running arbor supervise (not counted as a failure).\n\nExamples:\n  arbor restart web\n",
}

// runControl runs arbor ps, stop or restart.
func runControl(ctx context.Context, command string, args []string, stdout io.Writer) error {
	fs := pflag.NewFlagSet(command, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	control := fs.String("control", "", "the control socket of arbor supervise (default: the only one in the per-user directory)")
	asJSON := fs.Bool("json", false, "print JSON (ps)")
	help := fs.BoolP("help", "h", false, "print this help")
	if err := fs.Parse(args); err != nil {
		return usagef("%s: %v", command, err)
	}
	if *help {
		fmt.Fprintf(stdout, "Usage: arbor %s [flags]%s\n\n%s\nFlags:\n%s", command,
			map[bool]string{true: "", false: " NAME"}[command == "ps"], controlExamples[command], fs.FlagUsages())
		return errHelp
	}
	if command != "ps" && fs.NArg() != 1 {
		return usagef("%s: want exactly one child NAME (as arbor ps shows it)", command)
	}
	path := *control
	if path == "" {
		found, _ := filepath.Glob(filepath.Join(filepath.Dir(defaultControl("x")), "*.sock"))
		switch len(found) {
		case 0:
			return errors.New("no arbor supervise is running (no control socket); give --control")
		case 1:
			path = found[0]
		default:
			sort.Strings(found)
			return usagef("%s: several arbor supervise are running; give --control, one of %s", command, strings.Join(found, ", "))
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := net.Dial("unix", path)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", path, err)
	}
	ch, err := ipc.Open(ctx, conn, ipc.Options{Actor: actorID(command), Initiator: true})
	if err != nil {
		return err
	}
	defer ch.Close()
	// The supervise process's errors are for the user: its message alone.
	plain := func(err error) error {
		var re *protocol.RemoteError
		if errors.As(err, &re) {
			return errors.New(re.Message)
		}
		return err
	}
	switch command {
	case "stop":
		_, err = ctlStop.Call(ctx, ch, fs.Arg(0))
		return plain(err)
	case "restart":
		_, err = ctlRestart.Call(ctx, ch, fs.Arg(0))
		return plain(err)
	}
	entries, err := ctlPs.Call(ctx, ch, struct{}{})
	if err != nil {
		return plain(err)
	}
	if *asJSON {
		return printJSON(stdout, entries)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPID\tSTATE\tRESTARTS\tUPTIME")
	for _, e := range entries {
		pid := "-"
		if e.PID != 0 {
			pid = fmt.Sprint(e.PID)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", e.Name, pid, e.State, e.Restarts, (time.Duration(e.Uptime) * time.Second).Round(time.Second))
	}
	return tw.Flush()
}

func actorID(name string) protocol.ActorID {
	return protocol.ActorID{Name: "arbor-" + name, UUID: protocol.NewUUID()}
}
