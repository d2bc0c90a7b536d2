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
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/arbor-go/arbor/internal/control"
	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/protocol"
	"github.com/arbor-go/arbor/supervisor"
	"github.com/spf13/pflag"
)

// The control socket speaks arbor's own protocol: arbor ps, stop and
// restart are calls of the functions of internal/control.

// entries lists every child of the tree, depth first, by full name.
func (g *group) entries() []control.PsEntry {
	var out []control.PsEntry
	for _, c := range g.sup.Snapshot() {
		e := control.PsEntry{Name: g.prefix + c.Name, PID: c.PID, State: string(c.State), Restarts: c.Restarts, Uptime: c.Uptime.Seconds()}
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

func serveControl(path string, root *group, info control.AppInfo, reload func(context.Context) (string, error), book *logBook, warn func(string)) (*control.Server, error) {
	act := func(op func(*supervisor.Supervisor, context.Context, string) error) func(context.Context, string) (struct{}, error) {
		return func(ctx context.Context, name string) (struct{}, error) {
			sup, child, ok := root.find(name)
			if !ok {
				return struct{}{}, fmt.Errorf("no child named %q", name)
			}
			return struct{}{}, op(sup, ctx, child)
		}
	}
	return control.Serve(path, actorID("supervise"), ipc.MustNewTable(
		control.Info.Implement(func(context.Context, struct{}) (control.AppInfo, error) { return info, nil }),
		control.Ps.Implement(func(context.Context, struct{}) ([]control.PsEntry, error) { return root.entries(), nil }),
		control.Stop.Implement(act((*supervisor.Supervisor).StopChild)),
		control.Restart.Implement(act((*supervisor.Supervisor).RestartChild)),
		control.Reload.Implement(func(ctx context.Context, _ struct{}) (string, error) { return reload(ctx) }),
		ctlLogs.Implement(book.serveLogs),
	), warn)
}

var controlExamples = map[string]string{
	"ps":      "Shows the children of a running arbor supervise: the one of the Procfile in the\ncurrent directory, else every one running, and the actors of every program whose\nnursery serves the control socket (nursery.WithControl).\n\nExamples:\n  arbor ps\n  arbor ps --tree\n  arbor ps --file deploy/app.json\n  arbor ps --json --control /run/app.sock\n",
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
	tree   bool     // ps --tree
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
	fs.BoolVar(&cc.tree, "tree", false, "print the tree: each actor under its parent, with its host (ps)")
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
		summary, err := control.Reload.Call(ctx, ch, struct{}{})
		if err != nil {
			return plainRemote(err)
		}
		fmt.Fprintln(stdout, summary)
		return nil
	}
	f := control.Stop
	if cc.name == "restart" {
		f = control.Restart
	}
	_, err = f.Call(ctx, ch, cc.child)
	return plainRemote(err)
}

// ps asks every arbor supervise it finds for its children, and prints
// them as a table, or as JSON.
func (cc *controlCommand) ps(ctx context.Context, stdout io.Writer) error {
	var all []control.PsEntry
	running := 0
	for _, path := range cc.paths {
		ch, info, err := dialControl(ctx, path, cc.name)
		if err != nil {
			if len(cc.paths) > 1 && errors.Is(err, errNotRunning) {
				continue // a socket left by a run that was killed
			}
			return err
		}
		entries, err := control.Ps.Call(ctx, ch, struct{}{})
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
	return printPs(stdout, all, running > 1, cc.tree)
}

// printPs prints arbor ps's table; with several apps, each row starts with
// its app's spec file.
func printPs(stdout io.Writer, all []control.PsEntry, severalApps, tree bool) error {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	header := "NAME\tPID\tSTATE\tRESTARTS\tUPTIME"
	if tree {
		header = "NAME\tPID\tHOST\tSTATE"
	}
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
		if tree { // each actor under its parent: two spaces a level
			host := e.Host
			if host == "" {
				host = "-"
			}
			fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\n", strings.Repeat("  ", strings.Count(e.Name, ".")), e.Name, pid, host, strings.ToUpper(e.State))
			continue
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
func controlPaths(socket, file string) ([]string, error) {
	if socket != "" {
		return []string{socket}, nil
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
	found, _ := filepath.Glob(filepath.Join(control.Dir(), "*.sock"))
	if len(found) == 0 {
		return nil, errors.New("no arbor supervise is running (no Procfile here and no control socket); give --file or --control")
	}
	sort.Strings(found)
	return found, nil
}

// dialControl connects to a control socket and asks which app it serves.
func dialControl(ctx context.Context, path, command string) (*ipc.Channel, control.AppInfo, error) {
	conn, err := net.Dial("unix", path)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, fs.ErrNotExist) {
			return nil, control.AppInfo{}, fmt.Errorf("arbor supervise is %w for %s (no process listens on it)", errNotRunning, path)
		}
		return nil, control.AppInfo{}, fmt.Errorf("connecting to %s: %w", path, err)
	}
	ch, err := ipc.Open(ctx, conn, ipc.Options{Actor: actorID(command), Initiator: true})
	if err != nil {
		return nil, control.AppInfo{}, err
	}
	info, err := control.Info.Call(ctx, ch, struct{}{})
	if err != nil {
		ch.Close()
		return nil, control.AppInfo{}, plainRemote(err)
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
