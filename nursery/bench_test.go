package nursery

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/arbor-go/arbor/spawn"
)

// Benchmarks measure each figure against a baseline of bare processes of
// the same binary, in alternating rounds.

// bareChildren starts n plain children of this binary, each blocked reading
// its stdin, and returns a function that ends them all (closing stdin) and
// reaps them.
func bareChildren(b *testing.B, n int) (stop func()) {
	var cmds []*exec.Cmd
	var stdins []interface{ Close() error }
	for range n {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), benchModeEnv+"=bare")
		in, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		bufio.NewReader(out).ReadString('\n')
		cmds = append(cmds, cmd)
		stdins = append(stdins, in)
	}
	return func() {
		for _, in := range stdins {
			in.Close()
		}
		for _, c := range cmds {
			c.Wait()
		}
	}
}

// parallelBare starts n bare children at once and ends them.
func parallelBare(b *testing.B, n int) {
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() { defer wg.Done(); bareChildren(b, 1)() }()
	}
	wg.Wait()
}

// BenchmarkTreeTeardown: a tree of 14 actors (two subtrees, breadth 2,
// depth 3) in which a leaf fails once every leaf is up; timed from the
// failure to Open returning. Baseline: ending 14 bare children and
// reaping them.
func BenchmarkTreeTeardown(b *testing.B) {
	var total, baseTotal time.Duration
	for range b.N {
		dir := b.TempDir()
		var failedAt time.Time
		Open(context.Background(), func(ctx context.Context, n *Nursery) error {
			for i := range 2 {
				args := treeArgs{Depth: 2, Breadth: 2, Path: fmt.Sprint("t", i), Failing: "t0.1.0", Dir: dir}
				if _, err := RunInActor(n, tree, args, spawn.Options{Name: fmt.Sprint("top", i)}); err != nil {
					return err
				}
			}
			for { // wait until all 8 leaves are up
				m, _ := filepath.Glob(filepath.Join(dir, "t*"))
				if len(m) == 8 {
					break
				}
				time.Sleep(time.Millisecond)
			}
			failedAt = time.Now()
			return os.WriteFile(filepath.Join(dir, "go"), nil, 0o600)
		})
		total += time.Since(failedAt)

		stop := bareChildren(b, 14)
		t := time.Now()
		stop()
		baseTotal += time.Since(t)
	}
	per, base := total/time.Duration(b.N), baseTotal/time.Duration(b.N)
	b.ReportMetric(float64(per.Microseconds())/1000, "ms/teardown")
	b.ReportMetric(float64(base.Microseconds())/1000, "baseline-ms")
	b.ReportMetric(float64(per)/float64(base), "x-baseline")
}

// BenchmarkManyFailures: 25 children that fail, from the start of Open to
// its return. Baseline: starting and ending 25 bare children at once.
func BenchmarkManyFailures(b *testing.B) {
	var total, baseTotal time.Duration
	for range b.N {
		t := time.Now()
		Open(context.Background(), func(ctx context.Context, n *Nursery) error {
			for range 25 {
				if _, err := RunInActor(n, fail, "sdz", spawn.Options{}); err != nil {
					return err
				}
			}
			return nil
		})
		total += time.Since(t)
		t = time.Now()
		parallelBare(b, 25)
		baseTotal += time.Since(t)
	}
	per, base := total/time.Duration(b.N), baseTotal/time.Duration(b.N)
	b.ReportMetric(float64(per.Microseconds())/1000, "ms/open")
	b.ReportMetric(float64(base.Microseconds())/1000, "baseline-ms")
	b.ReportMetric(float64(per)/float64(base), "x-baseline")
}

// BenchmarkRunAndCollect: spawn, run and collect 10 and 50 run-in-actor
// children. Baseline: starting and ending as many bare children at once.
func BenchmarkRunAndCollect(b *testing.B) {
	for _, k := range []int{10, 50} {
		b.Run(fmt.Sprint(k), func(b *testing.B) {
			var total, baseTotal time.Duration
			for range b.N {
				t := time.Now()
				err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
					var rs []*Result[int]
					for i := range k {
						r, err := RunInActor(n, square, i, spawn.Options{})
						if err != nil {
							return err
						}
						rs = append(rs, r)
					}
					for i, r := range rs {
						if v, err := r.Wait(ctx); err != nil || v != i*i {
							return fmt.Errorf("child %d: %d %v", i, v, err)
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				total += time.Since(t)
				t = time.Now()
				parallelBare(b, k)
				baseTotal += time.Since(t)
			}
			per, base := total/time.Duration(b.N), baseTotal/time.Duration(b.N)
			b.ReportMetric(float64(per.Microseconds())/1000, "ms/open")
			b.ReportMetric(float64(base.Microseconds())/1000, "baseline-ms")
			b.ReportMetric(float64(per)/float64(base), "x-baseline")
		})
	}
}
