package spawn

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// The rlimit shim: a child with rlimits is this program run again with
// these variables, which sets the limits on itself and then runs the
// child's program in its place (one process: same pid, group, cgroup).
const (
	rlimitsEnv = "ARBOR_RLIMITS"     // "nofile=N,core=N,as=N"
	rlimitExec = "ARBOR_RLIMIT_EXEC" // the program to run after
)

func init() {
	if target, ok := os.LookupEnv(rlimitExec); ok {
		err := applyRlimits(os.Getenv(rlimitsEnv))
		if err == nil {
			env := make([]string, 0, len(os.Environ()))
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, rlimitsEnv+"=") && !strings.HasPrefix(kv, rlimitExec+"=") {
					env = append(env, kv)
				}
			}
			err = syscall.Exec(target, os.Args, env)
		}
		fmt.Fprintf(os.Stderr, "arbor: running %s with its limits: %v\n", target, err)
		os.Exit(127)
	}
}

var rlimitResources = map[string]int{"nofile": syscall.RLIMIT_NOFILE, "core": syscall.RLIMIT_CORE, "as": syscall.RLIMIT_AS}

// applyRlimits sets the limits a shim was given, soft and hard alike.
// (syscall.Setrlimit, not x/sys's: Go then stops restoring its own
// RLIMIT_NOFILE before exec.)
func applyRlimits(spec string) error {
	for _, part := range strings.Split(spec, ",") {
		name, value, ok := strings.Cut(part, "=")
		res, known := rlimitResources[name]
		n, err := strconv.ParseUint(value, 10, 64)
		if !ok || !known || err != nil {
			return fmt.Errorf("bad limit %q", part)
		}
		if name == "core" && n == NoCore {
			n = 0
		}
		if err := syscall.Setrlimit(res, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
			return fmt.Errorf("setting %s to %d: %w", name, n, err)
		}
	}
	return nil
}

// applyLimits prepares cmd to run under l's rlimits, through the shim.
func applyLimits(cmd *exec.Cmd, l *Limits) error {
	if !l.rlimits() {
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this program to set the limits: %w", err)
	}
	var parts []string
	for _, r := range []struct {
		name string
		v    uint64
	}{{"nofile", l.OpenFiles}, {"core", l.CoreBytes}, {"as", l.AddressSpace}} {
		if r.v != 0 {
			parts = append(parts, r.name+"="+strconv.FormatUint(r.v, 10))
		}
	}
	if cmd.Err != nil {
		return cmd.Err // the program was not found: say so, not the shim
	}
	target := cmd.Path
	check := target
	if !filepath.IsAbs(check) && cmd.Dir != "" {
		check = filepath.Join(cmd.Dir, check) // Start runs it from there
	}
	if _, err := exec.LookPath(check); err != nil {
		return err // as Start would have said, not the shim after it
	}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, rlimitsEnv+"="+strings.Join(parts, ","), rlimitExec+"="+target)
	cmd.Path = self
	return nil
}

// setCgroupLimits writes l's cgroup limits into a child's cgroup dir.
func setCgroupLimits(dir string, l *Limits) error {
	write := func(file, value string) error {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0); err != nil {
			return fmt.Errorf("setting %s to %s: %w", file, value, err)
		}
		return nil
	}
	if l.MemoryMax != 0 {
		if err := write("memory.max", strconv.FormatUint(l.MemoryMax, 10)); err != nil {
			return err
		}
		if err := write("memory.oom.group", "1"); err != nil {
			return err
		}
	}
	if l.CPUs != 0 {
		const period = 100000
		if err := write("cpu.max", fmt.Sprintf("%d %d", max(int(l.CPUs*period), 1000), period)); err != nil {
			return err
		}
	}
	if l.PidsMax != 0 {
		if err := write("pids.max", strconv.Itoa(l.PidsMax)); err != nil {
			return err
		}
	}
	return nil
}

// neededControllers lists the cgroup controllers l's limits need.
func neededControllers(l *Limits) []string {
	var out []string
	if l.MemoryMax != 0 {
		out = append(out, "memory")
	}
	if l.CPUs != 0 {
		out = append(out, "cpu")
	}
	if l.PidsMax != 0 {
		out = append(out, "pids")
	}
	return out
}

// CheckLimits reports whether l can be enforced for the children of this
// process, as Start would find at each start: a program that takes limits
// from its user can refuse them at once rather than at a child's start.
func CheckLimits(l *Limits) error {
	if !l.cgroupLimits() {
		return nil
	}
	c := &contained
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.limitable(l)
}
