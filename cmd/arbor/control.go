package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/arbor-go/arbor/internal/peercred"
	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/protocol"
	"github.com/arbor-go/arbor/supervisor"
	"github.com/spf13/pflag"
)

// The control socket speaks arbor's own protocol: arbor ps, stop and
// restart are calls of these functions.

// psEntry is one child in arbor ps.
type psEntry struct {
	App      string  `json:"app" msgpack:"-"`  // filled in by arbor ps
	Spec     string  `json:"spec" msgpack:"-"` // the app's spec file: apps of the same name are told apart by it
	Name     string  `json:"name" msgpack:"name"`
	PID      int     `json:"pid" msgpack:"pid"`
	State    string  `json:"state" msgpack:"state"`
	Restarts int     `json:"restarts" msgpack:"restarts"`
	Uptime   float64 `json:"uptime_seconds" msgpack:"uptime_seconds"`
	LastExit string  `json:"last_exit,omitempty" msgpack:"last_exit"`
}

// appInfo says which app a control socket belongs to.
type appInfo struct {
	Name string `msgpack:"name"`
	Spec string `msgpack:"spec"` // the spec file's absolute path
}

var (
	ctlInfo    = ipc.NewFunc[struct{}, appInfo]("arborctl.info", nil)
	ctlPs      = ipc.NewFunc[struct{}, []psEntry]("arborctl.ps", nil)
	ctlStop    = ipc.NewFunc[string, struct{}]("arborctl.stop", nil)
	ctlRestart = ipc.NewFunc[string, struct{}]("arborctl.restart", nil)
	ctlReload  = ipc.NewFunc[struct{}, string]("arborctl.reload", nil)
)

// entries lists every child of the tree, depth first, by full name.
func (g *group) entries() []psEntry {
	var out []psEntry
	for _, c := range g.sup.Snapshot() {
		e := psEntry{Name: g.prefix + c.Name, PID: c.PID, State: string(c.State), Restarts: c.Restarts, Uptime: c.Uptime.Seconds()}
		if c.LastExit != nil {
			e.LastExit = c.LastExit.Error()
		}
		out = append(out, e)
		if sub := g.subgroup(c.Name); sub != nil {
			out = append(out, sub.entries()...)
		}
	}
	return out
}

// find returns the supervisor holding the child with a full name.
func (g *group) find(full string) (*supervisor.Supervisor, string, bool) {
	name, rest, nested := strings.Cut(full, ".")
	if nested {
		if sub := g.subgroup(name); sub != nil {
			return sub.find(rest)
		}
		return nil, "", false
	}
	return g.sup, name, true
}

// controlServer serves the control functions on a unix socket.
type controlServer struct {
	log   func(string) // warnings
	ln    net.Listener
	path  string
	table *ipc.Table
	wg    sync.WaitGroup
	mu    sync.Mutex
	chans map[*ipc.Channel]bool
}

// privateDir makes sure dir exists, is a directory of this user's (not a
// link) and is closed to everyone else: the default control directory,
// whose name others can guess and create first.
func privateDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	case ok && int(st.Uid) != os.Getuid():
		return fmt.Errorf("%s belongs to user %d, not to this user (%d): refusing to use it", dir, st.Uid, os.Getuid())
	case fi.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("%s is open to other users (mode %v): refusing to use it", dir, fi.Mode().Perm())
	}
	return nil
}

func serveControl(path string, root *group, info appInfo, reload func(context.Context) (string, error), book *logBook, warn func(string)) (*controlServer, error) {
	dir := filepath.Dir(path)
	if dir == controlDir() {
		if err := privateDir(dir); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		// A directory given with --control is the user's to set up: it is
		// created if missing, never chmodded.
		return nil, err
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s is in use by another arbor supervise", path)
	}
	os.Remove(path) // a socket left by a run that was killed
	// The socket is created closed to others (umask), not chmodded after:
	// nobody else can connect in between.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, err
	}
	act := func(op func(*supervisor.Supervisor, context.Context, string) error) func(context.Context, string) (struct{}, error) {
		return func(ctx context.Context, name string) (struct{}, error) {
			sup, child, ok := root.find(name)
			if !ok {
				return struct{}{}, fmt.Errorf("no child named %q", name)
			}
			return struct{}{}, op(sup, ctx, child)
		}
	}
	s := &controlServer{log: warn, ln: ln, path: path, chans: map[*ipc.Channel]bool{}, table: ipc.MustNewTable(
		ctlInfo.Implement(func(context.Context, struct{}) (appInfo, error) { return info, nil }),
		ctlPs.Implement(func(context.Context, struct{}) ([]psEntry, error) { return root.entries(), nil }),
		ctlStop.Implement(act((*supervisor.Supervisor).StopChild)),
		ctlRestart.Implement(act((*supervisor.Supervisor).RestartChild)),
		ctlReload.Implement(func(ctx context.Context, _ struct{}) (string, error) { return reload(ctx) }),
		ctlLogs.Implement(book.serveLogs),
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
		// Only this user (or root) may drive this supervise, whatever the
		// socket's mode has become.
		if _, uid, ok := peercred.Of(conn); ok && uid != os.Getuid() && uid != 0 {
			s.log("refused a control connection from user " + strconv.Itoa(uid))
			conn.Close()
			continue
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
	"ps":      "Shows the children of a running arbor supervise: the one of the Procfile in the\ncurrent directory, else every one running.\n\nExamples:\n  arbor ps\n  arbor ps --file deploy/app.json\n  arbor ps --json --control /run/app.sock\n",
	"stop":    "Stops a child of a running arbor supervise; it stays stopped until restarted.\n\nExamples:\n  arbor stop worker\n  arbor stop jobs.flaky\n",
	"logs":    "Prints the last lines (up to 1000 each) of a running arbor supervise's\nchildren, or of one (a group's name takes its children too), and with -f\nthe new ones as they come.\n\nExamples:\n  arbor logs\n  arbor logs -f web\n  arbor logs -n 20 worker.2\n",
	"reload":  "Makes a running arbor supervise re-read its spec: children whose definition\nchanged restart with the new one, new ones start, removed ones stop. A\ndaemon's SIGHUP does the same.\n\nExamples:\n  arbor reload\n  arbor reload --file deploy/app.json\n",
	"restart": "Restarts a child of a running arbor supervise (not counted as a failure); a\nFATAL child starts afresh.\n\nExamples:\n  arbor restart web\n",
}

// controlCommand is arbor ps, stop, restart, reload or logs, with its
// command line parsed.
type controlCommand struct {
	name   string   // "ps", "stop", ...
	paths  []string // the control sockets it talks to
	child  string   // NAME, for stop, restart and logs
	asJSON bool     // ps --json
	follow bool     // logs -f
	lines  int      // logs -n
}

// runControl runs arbor ps, stop, restart, reload or logs.
func runControl(ctx context.Context, command string, args []string, stdout io.Writer) error {
	cc, err := parseControl(command, args, stdout)
	if err != nil {
		return err
	}
	if command != "logs" || !cc.follow {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	if command == "ps" {
		return cc.ps(ctx, stdout)
	}
	return cc.callOne(ctx, stdout)
}

// parseControl parses a control command's command line and finds the
// sockets it talks to. It writes the help to stdout and returns errHelp
// for -h.
func parseControl(command string, args []string, stdout io.Writer) (*controlCommand, error) {
	fs := pflag.NewFlagSet(command, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cc := &controlCommand{name: command}
	control := fs.String("control", "", "the control socket of arbor supervise (default: that of --file)")
	file := fs.String("file", "", "the spec file arbor supervise runs (default: ./Procfile if there is one, else every running app)")
	fs.BoolVar(&cc.asJSON, "json", false, "print JSON (ps)")
	fs.BoolVarP(&cc.follow, "follow", "f", false, "keep printing new lines (logs)")
	fs.IntVarP(&cc.lines, "lines", "n", 0, "print only the last N lines (logs; default: all kept)")
	help := fs.BoolP("help", "h", false, "print this help")
	if err := fs.Parse(args); err != nil {
		return nil, usagef("%s: %v", command, err)
	}
	if *help {
		fmt.Fprintf(stdout, "Usage: arbor %s [flags]%s\n\n%s\nFlags:\n%s", command,
			map[string]string{"stop": " NAME", "restart": " NAME", "logs": " [NAME]"}[command], controlExamples[command], fs.FlagUsages())
		return nil, errHelp
	}
	named := command == "stop" || command == "restart"
	if named && fs.NArg() != 1 {
		return nil, usagef("%s: want exactly one child NAME (as arbor ps shows it)", command)
	}
	if command == "logs" && fs.NArg() > 1 {
		return nil, usagef("logs: want at most one child NAME")
	}
	if !named && command != "logs" && fs.NArg() != 0 {
		return nil, usagef("%s: takes no arguments (give the spec with --file)", command)
	}
	cc.child = fs.Arg(0)
	var err error
	if cc.paths, err = controlPaths(*control, *file); err != nil {
		return nil, err
	}
	return cc, nil
}

// callOne runs stop, restart, reload or logs, which talk to one arbor
// supervise.
func (cc *controlCommand) callOne(ctx context.Context, stdout io.Writer) error {
	if len(cc.paths) > 1 {
		return usagef("%s: several arbor supervise are running; give --file or --control, one of %s", cc.name, strings.Join(cc.paths, ", "))
	}
	ch, _, err := dialControl(ctx, cc.paths[0], cc.name)
	if err != nil {
		return err
	}
	defer ch.Close()
	switch cc.name {
	case "logs":
		s, err := ctlLogs.Open(ctx, ch, logsArgs{Name: cc.child, Lines: cc.lines, Follow: cc.follow})
		if err != nil {
			return err
		}
		defer s.Close()
		for l, err := range s.All() {
			if err != nil {
				if ctx.Err() != nil {
					return nil // interrupted while following
				}
				return plainRemote(err)
			}
			printLog(stdout, l)
		}
		return nil
	case "reload":
		summary, err := ctlReload.Call(ctx, ch, struct{}{})
		if err != nil {
			return plainRemote(err)
		}
		fmt.Fprintln(stdout, summary)
		return nil
	}
	f := ctlStop
	if cc.name == "restart" {
		f = ctlRestart
	}
	_, err = f.Call(ctx, ch, cc.child)
	return plainRemote(err)
}

// ps asks every arbor supervise it finds for its children, and prints
// them as a table, or as JSON.
func (cc *controlCommand) ps(ctx context.Context, stdout io.Writer) error {
	var all []psEntry
	running := 0
	for _, path := range cc.paths {
		ch, info, err := dialControl(ctx, path, cc.name)
		if err != nil {
			if len(cc.paths) > 1 && errors.Is(err, errNotRunning) {
				continue // a socket left by a run that was killed
			}
			return err
		}
		entries, err := ctlPs.Call(ctx, ch, struct{}{})
		ch.Close()
		if err != nil {
			return plainRemote(err)
		}
		running++
		for i := range entries {
			entries[i].App, entries[i].Spec = info.Name, info.Spec
		}
		all = append(all, entries...)
	}
	if running == 0 {
		return errors.New("no arbor supervise is running")
	}
	if cc.asJSON {
		return printJSON(stdout, all)
	}
	return printPs(stdout, all, running > 1)
}

// printPs prints arbor ps's table; with several apps, each row starts with
// its app's spec file.
func printPs(stdout io.Writer, all []psEntry, severalApps bool) error {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	header := "NAME\tPID\tSTATE\tRESTARTS\tUPTIME"
	if severalApps {
		header = "APP\t" + header
	}
	fmt.Fprintln(tw, header)
	for _, e := range all {
		pid := "-"
		if e.PID != 0 {
			pid = fmt.Sprint(e.PID)
		}
		if severalApps {
			fmt.Fprintf(tw, "%s\t", e.Spec) // two Procfiles are both "procfile": the path tells them apart
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", e.Name, pid, strings.ToUpper(e.State), e.Restarts, (time.Duration(e.Uptime) * time.Second).Round(time.Second))
	}
	return tw.Flush()
}

// errNotRunning is a control socket nobody listens on.
var errNotRunning = errors.New("not running")

// controlPaths says which control sockets a command talks to: the one
// given, that of the spec file given or of ./Procfile, else every one in
// the per-user directory.
func controlPaths(control, file string) ([]string, error) {
	if control != "" {
		return []string{control}, nil
	}
	if file == "" {
		if _, err := os.Stat("Procfile"); err == nil {
			file = "Procfile"
		}
	}
	if file != "" {
		path, err := defaultControl(file)
		if err != nil {
			return nil, err
		}
		return []string{path}, nil
	}
	found, _ := filepath.Glob(filepath.Join(controlDir(), "*.sock"))
	if len(found) == 0 {
		return nil, errors.New("no arbor supervise is running (no Procfile here and no control socket); give --file or --control")
	}
	sort.Strings(found)
	return found, nil
}

// dialControl connects to a control socket and asks which app it serves.
func dialControl(ctx context.Context, path, command string) (*ipc.Channel, appInfo, error) {
	conn, err := net.Dial("unix", path)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, fs.ErrNotExist) {
			return nil, appInfo{}, fmt.Errorf("arbor supervise is %w for %s (no process listens on it)", errNotRunning, path)
		}
		return nil, appInfo{}, fmt.Errorf("connecting to %s: %w", path, err)
	}
	ch, err := ipc.Open(ctx, conn, ipc.Options{Actor: actorID(command), Initiator: true})
	if err != nil {
		return nil, appInfo{}, err
	}
	info, err := ctlInfo.Call(ctx, ch, struct{}{})
	if err != nil {
		ch.Close()
		return nil, appInfo{}, plainRemote(err)
	}
	return ch, info, nil
}

// plainRemote gives an error from the supervise process as its message
// alone: it is for the user.
func plainRemote(err error) error {
	var re *protocol.RemoteError
	if errors.As(err, &re) {
		return errors.New(re.Message)
	}
	return err
}

func actorID(name string) protocol.ActorID {
	return protocol.ActorID{Name: "arbor-" + name, UUID: protocol.NewUUID()}
}
