package spawn

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/proctest"
)

// descendants lists every process below pid, by walking /proc.
func descendants(pid int) []int {
	parent := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 {
			parent[p], _ = strconv.Atoi(f[1])
		}
	}
	var out []int
	var walk func(int)
	walk = func(p int) {
		for c, pp := range parent {
			if pp == p {
				out = append(out, c)
				walk(c)
			}
		}
	}
	walk(pid)
	return out
}

// startContained runs the contained-parent helper and returns it, its
// stdin and the line it prints once its children are up.
func startContained(t *testing.T, env ...string) (*exec.Cmd, *os.File, []string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(withMode("contained-parent"), env...)
	stdin, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin = stdin
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	t.Cleanup(func() {
		w.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	lines := bufio.NewScanner(out)
	var fields []string
	proctest.Within(t, 20*time.Second, "the helper's pids", func() {
		for lines.Scan() {
			if f, ok := strings.CutPrefix(lines.Text(), "pids: "); ok {
				fields = strings.Fields(f)
				return
			}
			t.Log(lines.Text())
		}
	})
	if len(fields) != 4 {
		t.Fatal("the helper failed")
	}
	return cmd, w, fields
}

// Under Contain, a SIGKILL of the parent leaves nothing: the keeper kills
// what escaped, with cgroups; without, the process groups (a background
// job), not what left them (setsid).
func TestContainSurvivesSIGKILL(t *testing.T) {
	for _, cgroups := range []bool{true, false} {
		t.Run(fmt.Sprintf("cgroups=%v", cgroups), func(t *testing.T) {
			var env []string
			if !cgroups {
				env = append(env, noCgroupsEnv+"=1")
			}
			cmd, _, fields := startContained(t, env...)
			if fields[1] != strconv.FormatBool(cgroups) {
				if cgroups {
					t.Skip("no writable cgroup v2 here")
				}
				t.Fatalf("cgroups %s with %s set", fields[1], noCgroupsEnv)
			}
			keeper, _ := strconv.Atoi(fields[2])
			orphan, _ := strconv.Atoi(fields[3])
			if cgroups {
				// The second job's setsid grandchild went with its job.
				proctest.Gone(t, "the grandchild of a job that exited", orphan)
			} else if !proctest.Alive(orphan) {
				t.Fatalf("without cgroups the orphan %d should live until Close", orphan)
			}
			all := descendants(cmd.Process.Pid)
			var below []int
			for _, p := range all {
				if p != keeper {
					below = append(below, p)
				}
			}
			if len(below) < 3 {
				t.Fatalf("descendants %v: want the job, its background sleep and its setsid grandchild", below)
			}
			if !cgroups && !slices.Contains(below, orphan) {
				t.Fatalf("the orphan %d did not come back to the subreaper: descendants %v", orphan, below)
			}
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			if cgroups {
				proctest.Gone(t, "descendants of a contained parent killed with SIGKILL", below...)
				proctest.Gone(t, "the keeper", keeper)
				return
			}
			// Without cgroups the setsid grandchildren escape: say so, and
			// clean up after them.
			var left []int
			deadline := time.Now().Add(2 * time.Second)
			for time.Now().Before(deadline) {
				left = left[:0]
				for _, p := range below {
					if proctest.Alive(p) {
						left = append(left, p)
					}
				}
				if len(left) <= 2 {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			for _, p := range left {
				syscall.Kill(p, syscall.SIGKILL)
			}
			if len(left) > 2 {
				t.Fatalf("%d processes left without cgroups, want only the 2 setsid grandchildren", len(left))
			}
		})
	}
}

// Close stops what is left, even without cgroups: the orphans that came
// back to the subreaper.
func TestContainCloseStopsOrphans(t *testing.T) {
	cmd, stdin, _ := startContained(t, noCgroupsEnv+"=1")
	keeperAndAll := descendants(cmd.Process.Pid)
	stdin.Close() // the helper stops its job and closes
	var err error
	proctest.Within(t, 20*time.Second, "the helper to exit", func() { err = cmd.Wait() })
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	proctest.Gone(t, "descendants after Close", keeperAndAll...)
}

// Rlimits reach the child's program (seen from inside it), and a limit
// that needs a cgroup controller this machine does not delegate is
// refused at start with the reason, not silently dropped (issue 11).
func TestLimits(t *testing.T) {
	var out strings.Builder
	a, err := StartCommand(context.Background(), Options{Binary: "/bin/sh", Args: []string{"-c", "ulimit -n; ulimit -c; echo $$"},
		Limits: &Limits{OpenFiles: 77, CoreBytes: NoCore},
		Output: func(_, line string) { fmt.Fprintln(&out, line) }})
	if err != nil {
		t.Fatal(err)
	}
	pid := a.PID()
	if err := a.Wait(); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	lines := strings.Fields(out.String())
	if len(lines) != 3 || lines[0] != "77" || lines[1] != "0" || lines[2] != strconv.Itoa(pid) {
		t.Fatalf("inside the child: %q, want 77, 0 and its own pid %d (the shim runs the program in its place)", lines, pid)
	}
	if _, err := StartCommand(context.Background(), Options{Binary: "/nonexistent/prog", Limits: &Limits{OpenFiles: 10}}); err == nil || !strings.Contains(err.Error(), "/nonexistent/prog") {
		t.Fatalf("a missing program under limits: %v", err)
	}
	_, err = StartCommand(context.Background(), Options{Binary: "/bin/true", Limits: &Limits{MemoryMax: 64 << 20}})
	if err == nil || !strings.Contains(err.Error(), "memory") {
		t.Fatalf("a memory limit without the memory controller: %v", err)
	}
	noChildrenLeft(t)
}
