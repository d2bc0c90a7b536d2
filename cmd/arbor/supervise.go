package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/arbor-go/arbor/internal/control"
	"github.com/arbor-go/arbor/spawn"
	"github.com/arbor-go/arbor/supervisor"
	"github.com/hashicorp/go-hclog"
	"github.com/spf13/pflag"
)

const superviseHelp = `Usage: arbor supervise [flags] FILE

Runs the programs FILE describes and keeps them running. FILE is a
Procfile or a JSON spec.

A Procfile has lines of NAME: COMMAND, each run with /bin/sh -c. Its
processes live apart, as under foreman and supervisord: one that exits 0
is done; one that crashes restarts with a growing backoff and, past 3
restarts in 5s, is marked FATAL alone while the others keep running
(arbor restart NAME revives it). Each gets PORT (5000, 5100, ...; web.2
of --formation web=2 gets 5001) and the variables of .env beside FILE.

A JSON spec:

  {"name": "app", "strategy": "one-for-one", "max_restarts": 3, "period": "5s",
   "children": [
     {"name": "db", "command": ["postgres", "-D", "data"],
      "ready": {"tcp": "127.0.0.1:5432"}, "shutdown": "30s", "stop_signal": "INT"},
     {"name": "web", "command": ["./web"], "depends_on": ["db"], "scale": 2,
      "ready": {"http": "http://127.0.0.1:8080/health"},
      "env": {"MODE": "prod"}, "dir": "/srv", "isolate": true,
      "limits": {"open_files": 4096, "core": "none", "memory": "512M", "cpus": 1.5, "pids": 200}},
     {"name": "jobs", "group": {"strategy": "rest-for-one", "children": [...]}}
   ]}

strategy: one-for-one (default), one-for-all, rest-for-one. restart:
permanent (default), transient, temporary. shutdown: a duration,
"brutal_kill" or "infinity". stop_signal: TERM (default), INT, QUIT, HUP,
USR1, USR2 (with or without SIG). isolate: past the intensity, mark this
child FATAL alone instead of giving up the group. scale: run N of it, as a
group web.1..web.N. ready: one of tcp, http, command (exits 0), with an
"interval"; the child is STARTING until it passes, then READY. depends_on:
siblings that must be READY before it starts; children start in that
order and stop in reverse. limits: rlimits set in the process itself;
memory, cpus and pids need cgroup v2 controllers delegated to arbor, and
are refused at start where they cannot be enforced.

Each line a child prints is shown as "15:04:05 name | line". SIGINT or
SIGTERM stops every child in reverse start order (status 130, 143);
SIGHUP does too when arbor has a terminal (status 129), and reloads FILE
when it has none (a daemon), as arbor reload does. Descendants that leave
a child's process group (setsid, background jobs) are stopped with it;
with a writable cgroup v2, even after arbor is killed with SIGKILL.

While it runs: arbor ps, arbor logs [-f] [NAME], arbor stop NAME,
arbor restart NAME, arbor reload, found from ./Procfile or --file.

Flags:
`

// spec is a JSON supervision spec (a group of children).
type spec struct {
	Name        string      `json:"name"`
	Strategy    string      `json:"strategy"`
	MaxRestarts int         `json:"max_restarts"`
	Period      string      `json:"period"`
	Children    []childSpec `json:"children"`
}

type childSpec struct {
	Name       string            `json:"name"`
	Command    []string          `json:"command"`
	Restart    string            `json:"restart"`
	Shutdown   string            `json:"shutdown"`
	StopSignal string            `json:"stop_signal"`
	NormalExit []int             `json:"normal_exit"`
	Env        map[string]string `json:"env"`
	Dir        string            `json:"dir"`
	Group      *spec             `json:"group"`
	// Isolate: past the intensity this child alone is marked fatal and
	// the others keep running, rather than the group giving up.
	Isolate bool `json:"isolate"`
	// Scale runs the process this many times, as a group named after it
	// whose children are 1, 2, ...; --formation overrides it.
	Scale int `json:"scale"`
	// Ready says when the child is ready; DependsOn names siblings that
	// must be ready before it starts.
	Ready     *readySpec `json:"ready"`
	DependsOn []string   `json:"depends_on"`
	Limits    *limitSpec `json:"limits"`
}

// limitSpec is a child's resource limits: sizes are bytes or a number
// with K, M or G (powers of 1024).
type limitSpec struct {
	OpenFiles    int     `json:"open_files"`
	Core         string  `json:"core"` // a size, or "none"
	AddressSpace string  `json:"address_space"`
	Memory       string  `json:"memory"`
	CPUs         float64 `json:"cpus"`
	Pids         int     `json:"pids"`
}

// limits turns the spec into spawn's, or says which field is wrong.
func (l *limitSpec) limits() (*spawn.Limits, string, error) {
	if l == nil {
		return nil, "", nil
	}
	out := &spawn.Limits{CPUs: l.CPUs, PidsMax: l.Pids}
	if l.OpenFiles < 0 || l.Pids < 0 || l.CPUs < 0 {
		return nil, "", errors.New("limits are not negative")
	}
	out.OpenFiles = uint64(l.OpenFiles)
	for _, f := range []struct {
		name, value string
		to          *uint64
	}{{"core", l.Core, &out.CoreBytes}, {"address_space", l.AddressSpace, &out.AddressSpace}, {"memory", l.Memory, &out.MemoryMax}} {
		if f.value == "" {
			continue
		}
		if f.name == "core" && f.value == "none" {
			*f.to = spawn.NoCore
			continue
		}
		n, err := parseByteSize(f.value)
		if err != nil {
			return nil, f.name, err
		}
		*f.to = n
	}
	return out, "", nil
}

// parseByteSize reads 512, 64K, 512M or 2G (powers of 1024).
func parseByteSize(s string) (uint64, error) {
	mult := uint64(1)
	num := s
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'K', 'k':
			mult, num = 1<<10, s[:n-1]
		case 'M', 'm':
			mult, num = 1<<20, s[:n-1]
		case 'G', 'g':
			mult, num = 1<<30, s[:n-1]
		}
	}
	v, err := strconv.ParseUint(num, 10, 64)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("%q is not a size such as 512M", s)
	}
	return v * mult, nil
}

// checkLimits refuses at once the limits this machine cannot enforce.
func checkLimits(file, path string, sp *spec) error {
	for i, c := range sp.Children {
		cp := joinPath(path, fmt.Sprintf("children[%d]", i))
		if c.Group != nil {
			if err := checkLimits(file, cp+".group", c.Group); err != nil {
				return err
			}
			continue
		}
		if l, _, _ := c.Limits.limits(); l != nil {
			if err := spawn.CheckLimits(l); err != nil {
				return &specError{file, cp + ".limits", err.Error()}
			}
		}
	}
	return nil
}

// readySpec is a readiness check: exactly one of TCP, HTTP and Command.
type readySpec struct {
	TCP      string   `json:"tcp"`      // host:port that accepts a connection
	HTTP     string   `json:"http"`     // a URL that answers 2xx
	Command  []string `json:"command"`  // a program that exits 0
	Interval string   `json:"interval"` // between tries; default 100ms
}

// specError is a spec that cannot be run: it names where, and what is
// wrong.
type specError struct {
	file  string
	where string // "line 3" or a JSON path such as children[1].restart
	what  string
}

func (e *specError) Error() string { return fmt.Sprintf("%s: %s: %s", e.file, e.where, e.what) }

// superviseOptions is arbor supervise's command line, parsed.
type superviseOptions struct {
	file     string // the spec file
	load     loadOptions
	control  string // the control socket; "": the spec file's default
	noStamps bool
	logDir   string
}

// parseSupervise parses arbor supervise's command line. It writes the help
// to stdout and returns errHelp for -h.
func parseSupervise(args []string, stdout io.Writer) (*superviseOptions, error) {
	fs := pflag.NewFlagSet("supervise", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o := &superviseOptions{}
	help := fs.BoolP("help", "h", false, "print this help")
	fs.StringVar(&o.control, "control", "", "the control socket for arbor ps, logs, stop, restart and reload (default: one per spec file, in $TMPDIR/arborctl-UID)")
	fs.StringArrayVarP(&o.load.envFiles, "env", "e", nil, "read environment variables from FILE (repeatable; default: .env beside the spec, if there is one)")
	formation := fs.StringP("formation", "m", "", "how many of each process to run: web=2,worker=3 (all=N for every one; 0 runs none)")
	fs.IntVarP(&o.load.port, "port", "p", 5000, "the PORT of the first process; each next process gets 100 more, each next instance 1 more (web.2: 5001)")
	fs.BoolVar(&o.noStamps, "no-timestamps", false, "do not start output lines with the time")
	fs.StringVar(&o.logDir, "log-dir", "", "also append each process's lines to DIR/NAME.log")
	if err := fs.Parse(args); err != nil {
		return nil, usagef("supervise: %v", err)
	}
	if *help {
		fmt.Fprint(stdout, superviseHelp+fs.FlagUsages())
		return nil, errHelp
	}
	if fs.NArg() != 1 {
		return nil, usagef("supervise: want exactly one FILE")
	}
	o.file = fs.Arg(0)
	var err error
	if o.load.formation, err = parseFormation(*formation); err != nil {
		return nil, usagef("supervise: --formation: %v", err)
	}
	return o, nil
}

// runSupervise runs arbor supervise. A SIGHUP arriving on reloads (nil:
// none comes) reloads the spec.
func runSupervise(ctx context.Context, args []string, reloads <-chan os.Signal, stdout, stderr io.Writer) error {
	o, err := parseSupervise(args, stdout)
	if err != nil {
		return err
	}
	file := o.file
	sp, err := o.load.spec(file)
	if err != nil {
		return err
	}
	name := sp.Name
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	}
	book, err := newLogBook(o.logDir)
	if err != nil {
		return err
	}
	defer book.close()
	out := &prefixer{w: stdout, color: isTerminal(stdout), stamp: !o.noStamps, width: labelWidth("", sp), book: book}
	log := hclog.New(&hclog.LoggerOptions{Name: "arbor", Output: stderr, Level: hclog.Info,
		Color: hclog.AutoColor, ColorHeaderOnly: true})
	events := logEvents(log)
	root, err := build(file, "", sp, out, events)
	if err != nil {
		return err
	}
	// Descendants that leave their process's group (background jobs,
	// setsid) are stopped with it, and cleaned up even if arbor is killed.
	jail, err := spawn.Contain()
	if err != nil {
		log.Warn("descendants that leave their process group will not be contained: " + err.Error())
	}
	defer jail.Close()
	if err := checkLimits(file, "", sp); err != nil {
		return err
	}
	socket := o.control
	if socket == "" {
		if socket, err = defaultControl(file); err != nil {
			return fmt.Errorf("control socket: %w", err)
		}
	}
	app := &running{file: file, load: o.load, spec: sp, root: root, out: out, events: events}
	ctl, err := serveControl(socket, root, control.AppInfo{Name: name, Spec: absPath(file)}, app.reload, book, func(msg string) { log.Warn(msg) })
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	defer ctl.Close()
	log.Info("control socket " + socket)
	defer app.reloadOnSignal(ctx, reloads, log)()
	if reloads != nil {
		log.Info("SIGHUP reloads " + file)
	}
	return root.sup.Serve(ctx)
}

// logEvents returns the supervisor's event hook: lifecycle events go to
// log, at a level that says how much they matter.
func logEvents(log hclog.Logger) func(supervisor.Event) {
	return func(e supervisor.Event) {
		msg := fmt.Sprintf("%s: %s %s", e.Supervisor, e.Kind, e.Child)
		if e.Err != nil {
			msg += ": " + e.Err.Error()
		}
		if e.Backoff > 0 {
			msg += fmt.Sprintf(" (in %v)", e.Backoff.Round(time.Millisecond))
		}
		switch {
		case e.Kind == supervisor.GaveUp || e.Kind == supervisor.StopTimedOut || e.Kind == supervisor.Fatal:
			log.Error(msg)
		case e.Err != nil:
			log.Warn(msg)
		default:
			log.Info(msg)
		}
	}
}

// reloadOnSignal re-reads the spec at each signal on reloads (a daemon's
// SIGHUP), on a goroutine of its own, until stop is called; stop returns
// once that goroutine has finished.
func (r *running) reloadOnSignal(ctx context.Context, reloads <-chan os.Signal, log hclog.Logger) (stop func()) {
	stopped := make(chan struct{})
	var reloading sync.WaitGroup
	reloading.Go(func() {
		for {
			select {
			case <-reloads:
				if summary, err := r.reload(ctx); err != nil {
					log.Error("reload failed; the running spec is kept: " + err.Error())
				} else {
					log.Info(summary)
				}
			case <-stopped:
				return
			}
		}
	})
	return func() {
		close(stopped)
		reloading.Wait()
	}
}

// loadOptions are the command line's additions to a spec: the foreman
// conventions.
type loadOptions struct {
	envFiles  []string       // nil: .env beside the spec, if there is one
	formation map[string]int // how many of each top-level process
	port      int            // PORT of a Procfile's first process
}

// spec reads the spec file and applies the options: the environment files
// to every process, the formation and each child's scale (a process run N
// times becomes a group of N, named 1 to N), and, for a Procfile, a PORT
// per process as foreman gives it.
func (o loadOptions) spec(file string) (*spec, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var sp *spec
	procfile := true
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '{' {
		procfile = false
		if sp, err = parseJSONSpec(file, data); err != nil {
			return nil, err
		}
	} else if sp, err = parseProcfile(file, data); err != nil {
		return nil, err
	}
	env, err := o.environment(file)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, c := range sp.Children {
		names[c.Name] = true
	}
	for name := range o.formation {
		if name != "all" && !names[name] {
			return nil, &specError{file, "--formation", fmt.Sprintf("%q is not a process of the spec", name)}
		}
	}
	var children []childSpec
	for i, c := range sp.Children {
		withEnv(&c, env)
		scale := max(c.Scale, 1)
		if n, ok := o.formation["all"]; ok {
			scale = n
		}
		if n, ok := o.formation[c.Name]; ok {
			scale = n
		}
		if scale == 0 {
			continue
		}
		port := o.port + 100*i
		if scale == 1 {
			if procfile {
				setPort(&c, port)
			}
			children = append(children, c)
			continue
		}
		// N instances: a group of N, each its own process, the way a
		// Procfile user expects web.1, web.2.
		g := &spec{Name: c.Name, MaxRestarts: sp.MaxRestarts, Period: sp.Period}
		for k := 1; k <= scale; k++ {
			inst := c
			inst.Name, inst.Scale, inst.DependsOn = strconv.Itoa(k), 0, nil // the group waits for them
			inst.Env = maps.Clone(c.Env)
			if procfile {
				setPort(&inst, port+k-1)
			}
			g.Children = append(g.Children, inst)
		}
		children = append(children, childSpec{Name: c.Name, Group: g, Restart: c.Restart, Shutdown: "infinity", DependsOn: c.DependsOn})
	}
	if len(children) == 0 {
		return nil, &specError{file, "--formation", "runs no process at all"}
	}
	sp.Children = children
	return sp, nil
}

// withEnv gives c and every process below it the variables of env that it
// does not set itself.
func withEnv(c *childSpec, env map[string]string) {
	if c.Group != nil {
		for i := range c.Group.Children {
			withEnv(&c.Group.Children[i], env)
		}
		return
	}
	if len(env) == 0 {
		return
	}
	merged := maps.Clone(env)
	maps.Copy(merged, c.Env)
	c.Env = merged
}

// setPort sets PORT for a process, unless its own env does.
func setPort(c *childSpec, port int) {
	if _, own := c.Env["PORT"]; own {
		return
	}
	if c.Env == nil {
		c.Env = map[string]string{}
	} else {
		c.Env = maps.Clone(c.Env)
	}
	c.Env["PORT"] = strconv.Itoa(port)
}

// environment reads the environment files: those given, or .env beside
// the spec file if there is one.
func (o loadOptions) environment(file string) (map[string]string, error) {
	files := o.envFiles
	if files == nil {
		dotenv := filepath.Join(filepath.Dir(file), ".env")
		if _, err := os.Stat(dotenv); err != nil {
			return nil, nil
		}
		files = []string{dotenv}
	}
	env := map[string]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if err := parseDotenv(f, data, env); err != nil {
			return nil, err
		}
	}
	return env, nil
}

// parseDotenv reads KEY=VALUE lines into env, as foreman and dotenv do:
// "#" comments, an optional "export ", values in double quotes (with \n,
// \" and \\ escapes) or single quotes (literal), or bare (trimmed, up to a
// " #" comment).
func parseDotenv(file string, data []byte, env map[string]string) error {
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		key, value, ok := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		where := fmt.Sprintf("line %d", n+1)
		if !ok || key == "" || strings.ContainsAny(key, " \t\"'") {
			return &specError{file, where, fmt.Sprintf("want KEY=VALUE, got %q", line)}
		}
		value = strings.TrimSpace(value)
		switch {
		case len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"':
			value = strings.NewReplacer(`\n`, "\n", `\"`, `"`, `\\`, `\`).Replace(value[1 : len(value)-1])
		case len(value) >= 2 && value[0] == '\'' && value[len(value)-1] == '\'':
			value = value[1 : len(value)-1]
		case strings.HasPrefix(value, `"`) || strings.HasPrefix(value, "'"):
			return &specError{file, where, fmt.Sprintf("the value of %s has no closing quote", key)}
		default:
			if i := strings.Index(value, " #"); i >= 0 {
				value = strings.TrimSpace(value[:i])
			}
		}
		env[key] = value
	}
	return nil
}

// parseFormation reads web=2,worker=3.
func parseFormation(s string) (map[string]int, error) {
	if s == "" {
		return nil, nil
	}
	out := map[string]int{}
	for _, part := range strings.Split(s, ",") {
		name, count, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(count)
		if !ok || name == "" || err != nil || n < 0 {
			return nil, fmt.Errorf("want NAME=COUNT[,NAME=COUNT...], got %q", part)
		}
		out[name] = n
	}
	return out, nil
}

// labelWidth is the width of the longest output label of the tree.
func labelWidth(prefix string, sp *spec) int {
	w := 0
	for _, c := range sp.Children {
		if c.Group != nil {
			w = max(w, labelWidth(prefix+c.Name+".", c.Group))
		} else {
			w = max(w, len(prefix+c.Name))
		}
	}
	return w
}

// running is a supervise run's spec and tree, which a reload changes.
type running struct {
	file   string
	load   loadOptions
	out    *prefixer
	events func(supervisor.Event)

	mu   sync.Mutex // one reload at a time
	spec *spec
	root *group
}

// reload re-reads the spec file and brings the top level of the tree in
// line with it: children whose definition changed are restarted with the
// new one, new children start, removed ones stop. The group's own settings
// (strategy, intensity) stay as they were started. It returns what it did.
func (r *running) reload(ctx context.Context) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sp, err := r.load.spec(r.file)
	if err != nil {
		return "", err
	}
	old := map[string]childSpec{}
	for _, c := range r.spec.Children {
		old[c.Name] = c
	}
	wanted := map[string]bool{}
	for _, c := range sp.Children {
		wanted[c.Name] = true
	}
	var did []string
	for _, c := range r.spec.Children {
		if !wanted[c.Name] {
			if err := r.root.sup.RemoveChild(ctx, c.Name); err != nil {
				return "", fmt.Errorf("removing %s: %w", c.Name, err)
			}
			r.root.setGroup(c.Name, nil)
			did = append(did, "removed "+c.Name)
		}
	}
	for _, c := range sp.Children {
		o, existed := old[c.Name]
		if existed && reflect.DeepEqual(o, c) {
			continue
		}
		child, sub, err := buildChild(r.file, "", c, r.out, r.events)
		if err != nil {
			return "", err
		}
		if existed {
			if err := r.root.sup.RemoveChild(ctx, c.Name); err != nil {
				return "", fmt.Errorf("stopping %s: %w", c.Name, err)
			}
		}
		r.root.setGroup(c.Name, sub)
		if err := r.root.sup.AddChild(ctx, child); err != nil {
			return "", fmt.Errorf("starting %s: %w", c.Name, err)
		}
		if existed {
			did = append(did, "restarted "+c.Name)
		} else {
			did = append(did, "added "+c.Name)
		}
	}
	kept := *r.spec
	kept.Children = sp.Children
	if sp.Strategy != r.spec.Strategy || sp.MaxRestarts != r.spec.MaxRestarts || sp.Period != r.spec.Period {
		did = append(did, "kept the old strategy and intensity (restart arbor supervise to change them)")
	}
	r.spec = &kept
	if len(did) == 0 {
		return "reloaded " + r.file + ": nothing changed", nil
	}
	return "reloaded " + r.file + ": " + strings.Join(did, "; "), nil
}

// defaultControl is where a supervise run of the spec file listens, and
// where ps, stop and restart look for it: one socket per spec file, named
// after the file and a hash of its absolute path, so that two apps in two
// directories never meet.
func defaultControl(file string) (string, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(abs))
	base := strings.TrimSuffix(filepath.Base(abs), filepath.Ext(abs))
	return filepath.Join(control.Dir(), fmt.Sprintf("%s-%x.sock", base, sum[:4])), nil
}

// absPath is file's absolute path, or file when it has none.
func absPath(file string) string {
	if abs, err := filepath.Abs(file); err == nil {
		return abs
	}
	return file
}

// parseProcfile reads NAME: COMMAND lines.
func parseProcfile(file string, data []byte) (*spec, error) {
	sp := &spec{Name: "procfile"}
	seen := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, command, ok := strings.Cut(line, ":")
		name, command = strings.TrimSpace(name), strings.TrimSpace(command)
		where := fmt.Sprintf("line %d", n)
		switch {
		case !ok || name == "" || command == "":
			return nil, &specError{file, where, fmt.Sprintf("want NAME: COMMAND, got %q", line)}
		case strings.ContainsAny(name, " \t"):
			return nil, &specError{file, where, fmt.Sprintf("the name %q has a space in it", name)}
		case seen[name] > 0:
			return nil, &specError{file, where, fmt.Sprintf("%q is already the name on line %d", name, seen[name])}
		}
		seen[name] = n
		// A Procfile's processes live apart, as under supervisord: one
		// that exits 0 is done, and one that crash-loops is marked fatal
		// alone while the others keep running.
		sp.Children = append(sp.Children, childSpec{Name: name, Command: []string{"/bin/sh", "-c", command},
			Restart: "transient", Isolate: true})
	}
	if len(sp.Children) == 0 {
		return nil, &specError{file, "line 1", "no NAME: COMMAND lines"}
	}
	return sp, sc.Err()
}

// parseJSONSpec decodes a JSON spec strictly, with errors that say where:
// the JSON is checked against the spec's types first, so that an unknown
// field or a value of the wrong type is named by its full path
// (children[1].command).
func parseJSONSpec(file string, data []byte) (*spec, error) {
	var tree any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&tree); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			line, col := position(data, syntax.Offset)
			return nil, &specError{file, fmt.Sprintf("line %d, column %d", line, col), syntax.Error()}
		}
		return nil, &specError{file, "top level", err.Error()}
	}
	if where, what := checkJSON(tree, reflect.TypeFor[spec](), ""); what != "" {
		if where == "" {
			where = "top level"
		}
		return nil, &specError{file, where, what}
	}
	var sp spec
	if err := json.Unmarshal(data, &sp); err != nil {
		return nil, &specError{file, "top level", err.Error()}
	}
	if err := validate(file, "", &sp); err != nil {
		return nil, err
	}
	return &sp, nil
}

// checkJSON checks a decoded JSON value against the Go type it will be
// decoded into, and returns the path and a description of the first
// mismatch, or "" and "".
func checkJSON(v any, t reflect.Type, path string) (string, string) {
	if t.Kind() == reflect.Pointer {
		if v == nil {
			return "", ""
		}
		t = t.Elem()
	}
	kind := func(v any) string {
		switch v.(type) {
		case nil:
			return "null"
		case bool:
			return "a boolean"
		case json.Number:
			return "a number"
		case string:
			return "a string"
		case []any:
			return "an array"
		}
		return "an object"
	}
	want := map[reflect.Kind]string{reflect.String: "a string", reflect.Int: "a whole number", reflect.Bool: "true or false",
		reflect.Slice: "an array", reflect.Map: "an object", reflect.Struct: "an object"}[t.Kind()]
	mismatch := func() (string, string) { return path, fmt.Sprintf("want %s, got %s", want, kind(v)) }
	switch t.Kind() {
	case reflect.String:
		if _, ok := v.(string); !ok {
			return mismatch()
		}
	case reflect.Int:
		n, ok := v.(json.Number)
		if _, err := n.Int64(); !ok || err != nil {
			return mismatch()
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			return mismatch()
		}
	case reflect.Slice:
		items, ok := v.([]any)
		if !ok {
			return mismatch()
		}
		for i, item := range items {
			if w, what := checkJSON(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); what != "" {
				return w, what
			}
		}
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			return mismatch()
		}
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			if w, what := checkJSON(obj[k], t.Elem(), joinPath(path, k)); what != "" {
				return w, what
			}
		}
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return mismatch()
		}
		fields := map[string]reflect.Type{}
		var names []string
		for i := range t.NumField() {
			if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); tag != "" && tag != "-" {
				fields[tag] = t.Field(i).Type
				names = append(names, tag)
			}
		}
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			ft, known := fields[k]
			if !known {
				return joinPath(path, k), fmt.Sprintf("unknown field %q (known: %s)", k, strings.Join(names, ", "))
			}
			if w, what := checkJSON(obj[k], ft, joinPath(path, k)); what != "" {
				return w, what
			}
		}
	}
	return "", ""
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func position(data []byte, offset int64) (line, col int) {
	line, col = 1, 1
	for _, b := range data[:min(int(offset), len(data))] {
		if b == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

// validate checks a group and its children, naming the JSON path of the
// first problem.
func validate(file, path string, sp *spec) error {
	at := func(p string) string {
		if path == "" {
			return p
		}
		return path + "." + p
	}
	if _, ok := strategies[sp.Strategy]; !ok {
		return &specError{file, at("strategy"), fmt.Sprintf("%q is not one-for-one, one-for-all or rest-for-one", sp.Strategy)}
	}
	if sp.Period != "" {
		if _, err := time.ParseDuration(sp.Period); err != nil {
			return &specError{file, at("period"), fmt.Sprintf("%q is not a duration such as 5s", sp.Period)}
		}
	}
	if len(sp.Children) == 0 {
		return &specError{file, at("children"), "a group needs at least one child"}
	}
	names := map[string]bool{}
	for i := range sp.Children {
		c := &sp.Children[i]
		cp := at(fmt.Sprintf("children[%d]", i))
		switch {
		case c.Name == "":
			return &specError{file, cp + ".name", "missing"}
		case names[c.Name]:
			return &specError{file, cp + ".name", fmt.Sprintf("%q is used twice", c.Name)}
		case (len(c.Command) == 0) == (c.Group == nil):
			return &specError{file, cp, "give either a command or a group"}
		}
		names[c.Name] = true
		if c.Scale < 0 {
			return &specError{file, cp + ".scale", fmt.Sprintf("%d is not a count of processes", c.Scale)}
		}
		if _, ok := restarts[c.Restart]; !ok {
			return &specError{file, cp + ".restart", fmt.Sprintf("%q is not permanent, transient or temporary", c.Restart)}
		}
		if _, err := parseShutdown(c.Shutdown); err != nil {
			return &specError{file, cp + ".shutdown", err.Error()}
		}
		c.StopSignal = canonicalSignal(c.StopSignal)
		if _, ok := signals[c.StopSignal]; !ok {
			return &specError{file, cp + ".stop_signal", fmt.Sprintf("%q is not one of %s", c.StopSignal, strings.Join(signalNames(), ", "))}
		}
		if _, field, err := c.Limits.limits(); err != nil {
			where := cp + ".limits"
			if field != "" {
				where += "." + field
			}
			return &specError{file, where, err.Error()}
		}
		if r := c.Ready; r != nil {
			set := 0
			for _, given := range []bool{r.TCP != "", r.HTTP != "", len(r.Command) > 0} {
				if given {
					set++
				}
			}
			if set != 1 {
				return &specError{file, cp + ".ready", "give exactly one of tcp, http and command"}
			}
			if r.Interval != "" {
				if d, err := time.ParseDuration(r.Interval); err != nil || d <= 0 {
					return &specError{file, cp + ".ready.interval", fmt.Sprintf("%q is not a positive duration such as 200ms", r.Interval)}
				}
			}
		}
		if c.Group != nil {
			if err := validate(file, cp+".group", c.Group); err != nil {
				return err
			}
		}
	}
	ordered, err := dependencyOrder(file, path, sp.Children)
	if err != nil {
		return err
	}
	sp.Children = ordered
	return nil
}

// dependencyOrder orders children so that each comes after what it depends
// on, keeping the given order otherwise; an unknown name or a cycle is an
// error.
func dependencyOrder(file, path string, children []childSpec) ([]childSpec, error) {
	at := func(i int) string {
		p := fmt.Sprintf("children[%d].depends_on", i)
		if path != "" {
			p = path + "." + p
		}
		return p
	}
	index := map[string]int{}
	for i, c := range children {
		index[c.Name] = i
	}
	for i, c := range children {
		for _, d := range c.DependsOn {
			if _, ok := index[d]; !ok || d == c.Name {
				return nil, &specError{file, at(i), fmt.Sprintf("%q is not another child of this group", d)}
			}
		}
	}
	var out []childSpec
	placed := make([]bool, len(children))
	for len(out) < len(children) {
		progress := false
		for i, c := range children {
			if placed[i] {
				continue
			}
			ok := true
			for _, d := range c.DependsOn {
				ok = ok && placed[index[d]]
			}
			if ok {
				out, placed[i], progress = append(out, c), true, true
			}
		}
		if !progress {
			for i, done := range placed {
				if !done {
					return nil, &specError{file, at(i), "depends on itself through the others (a cycle)"}
				}
			}
		}
	}
	return out, nil
}

var strategies = map[string]supervisor.Strategy{"": supervisor.OneForOne, "one-for-one": supervisor.OneForOne,
	"one-for-all": supervisor.OneForAll, "rest-for-one": supervisor.RestForOne}

var restarts = map[string]supervisor.Restart{"": supervisor.Permanent, "permanent": supervisor.Permanent,
	"transient": supervisor.Transient, "temporary": supervisor.Temporary}

var signals = map[string]syscall.Signal{"": 0, "SIGTERM": syscall.SIGTERM, "SIGINT": syscall.SIGINT,
	"SIGQUIT": syscall.SIGQUIT, "SIGHUP": syscall.SIGHUP, "SIGUSR1": syscall.SIGUSR1, "SIGUSR2": syscall.SIGUSR2}

// canonicalSignal spells a signal name as the table does: "TERM", "term"
// and "SIGTERM" are all SIGTERM.
func canonicalSignal(name string) string {
	if name == "" {
		return ""
	}
	name = strings.ToUpper(name)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	return name
}

func signalNames() []string {
	var out []string
	for n := range signals {
		if n != "" {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func parseShutdown(s string) (time.Duration, error) {
	switch s {
	case "":
		return 0, nil
	case "brutal_kill":
		return supervisor.BrutalKill, nil
	case "infinity":
		return supervisor.Infinity, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration, brutal_kill or infinity", s)
	}
	return d, nil
}

// group is a supervisor of the tree and its nested groups, by child name.
type group struct {
	sup    *supervisor.Supervisor
	prefix string
	mu     sync.Mutex // guards groups, which a reload changes
	groups map[string]*group
}

// subgroup returns the nested group named name, or nil.
func (g *group) subgroup(name string) *group {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.groups[name]
}

// setGroup records (or, with nil, forgets) the nested group named name.
func (g *group) setGroup(name string, sub *group) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if sub == nil {
		delete(g.groups, name)
	} else {
		g.groups[name] = sub
	}
}

// build turns a validated spec into supervisors.
func build(file, prefix string, sp *spec, out *prefixer, events func(supervisor.Event)) (*group, error) {
	name := sp.Name
	if name == "" {
		name = strings.TrimSuffix(prefix, ".")
		if name == "" {
			name = "root"
		}
	}
	period, _ := time.ParseDuration(sp.Period)
	g := &group{prefix: prefix, groups: map[string]*group{}}
	var children []supervisor.Child
	for _, c := range sp.Children {
		child, sub, err := buildChild(file, prefix, c, out, events)
		if err != nil {
			return nil, err
		}
		if sub != nil {
			g.groups[c.Name] = sub
		}
		children = append(children, child)
	}
	g.sup = supervisor.New(supervisor.Spec{Name: name, Strategy: strategies[sp.Strategy], MaxRestarts: sp.MaxRestarts,
		Period: period, Events: events}, children...)
	return g, nil
}

// buildChild turns one validated child into a supervisor child, and its
// group, if it is one.
func buildChild(file, prefix string, c childSpec, out *prefixer, events func(supervisor.Event)) (supervisor.Child, *group, error) {
	shutdown, _ := parseShutdown(c.Shutdown)
	child := supervisor.Child{Name: c.Name, Restart: restarts[c.Restart], Shutdown: shutdown, Isolate: c.Isolate,
		DependsOn: c.DependsOn}
	if r := c.Ready; r != nil {
		child.ReadyInterval, _ = time.ParseDuration(r.Interval)
		switch {
		case r.TCP != "":
			child.Ready = supervisor.TCPReady(r.TCP)
		case r.HTTP != "":
			child.Ready = supervisor.HTTPReady(r.HTTP)
		default:
			child.Ready = supervisor.CommandReady(spawn.Options{Name: prefix + c.Name + "-ready", Binary: r.Command[0], Args: r.Command[1:], Dir: c.Dir})
		}
	}
	if c.Group != nil {
		sub, err := build(file, prefix+c.Name+".", c.Group, out, events)
		if err != nil {
			return child, nil, err
		}
		child.Service = sub.sup
		return child, sub, nil
	}
	label := prefix + c.Name
	env := os.Environ()
	for k, v := range c.Env {
		env = append(env, k+"="+v)
	}
	limits, _, _ := c.Limits.limits()
	child.Service = supervisor.Command(spawn.Options{
		Name: label, Binary: c.Command[0], Args: c.Command[1:], Env: env, Dir: c.Dir,
		StopSignal: signals[c.StopSignal], Limits: limits,
		Output: func(stream, line string) { out.line(out.w, label, line) },
	}, c.NormalExit...)
	return child, nil, nil
}

// prefixer writes lines prefixed with the time and a name padded to the
// longest, coloured on a terminal, one whole line at a time, as foreman
// does: "15:04:05 web.1  | listening".
type prefixer struct {
	w     io.Writer
	color bool
	stamp bool
	width int
	book  *logBook // keeps the lines for arbor logs; may be nil
	mu    sync.Mutex
	seen  map[string]int
}

var colors = []string{"36", "33", "32", "35", "34", "31"}

func (p *prefixer) line(w io.Writer, name, text string) {
	if p.book != nil {
		p.book.add(name, text)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.width = max(p.width, len(name)) // a child added by a reload
	var b strings.Builder
	if p.stamp {
		b.WriteString(time.Now().Format("15:04:05 "))
	}
	label := name + strings.Repeat(" ", p.width-len(name)) + " |"
	if p.color {
		if p.seen == nil {
			p.seen = map[string]int{}
		}
		i, ok := p.seen[name]
		if !ok {
			i = len(p.seen)
			p.seen[name] = i
		}
		label = "\x1b[" + colors[i%len(colors)] + "m" + label + "\x1b[0m"
	}
	b.WriteString(label)
	b.WriteString(" ")
	b.WriteString(text)
	b.WriteString("\n")
	io.WriteString(w, b.String())
}
