package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkParallelOverhead compares the cost of starting many tiny jobs
// with 'arbor parallel -j 2 true' and 'xargs -P 2 -n 1 true', on the same
// input (seq N on stdin), alternating the two in every iteration. It
// reports milliseconds per run for each, the ratio arbor/xargs of the
// summed times, and the peak RSS of each. It asserts nothing about time.
//
//	go test -run '^$' -bench ParallelOverhead -benchtime 3x ./cmd/arbor/
func BenchmarkParallelOverhead(b *testing.B) {
	xargs, err := exec.LookPath("xargs")
	if err != nil {
		b.Skip("xargs is not on PATH")
	}
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("jobs=%d", n), func(b *testing.B) {
			input := []byte(seqLines(n))
			runs := []benchRun{
				{name: "xargs", argv: []string{xargs, "-P", "2", "-n", "1", "true"}},
				{name: "arbor", argv: []string{arborBin, "parallel", "-j", "2", "true"}},
			}
			// GNU parallel too, for scale, where it is installed (only
			// for the smaller size: it takes ~5 ms a job here).
			if gnu, err := exec.LookPath("parallel"); err == nil && n <= 1000 {
				runs = append(runs, benchRun{name: "gnu", argv: []string{gnu, "--will-cite", "-j", "2", "true"}})
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for k := range runs {
					// Alternate which goes first, so neither always
					// runs on a cache the other warmed.
					r := &runs[(k+i)%len(runs)]
					wall, rss := timeRun(b, r.argv, input)
					r.wall += wall
					r.rss = max(r.rss, rss)
				}
			}
			b.StopTimer()
			xw, aw := runs[0].wall, runs[1].wall
			b.ReportMetric(float64(xw.Microseconds())/1000/float64(b.N), "xargs-ms/run")
			b.ReportMetric(float64(aw.Microseconds())/1000/float64(b.N), "arbor-ms/run")
			if xw > 0 {
				b.ReportMetric(float64(aw)/float64(xw), "ratio")
			}
			b.ReportMetric(float64(runs[1].rss)/1024, "arbor-peak-RSS-MiB")
			b.ReportMetric(float64(runs[0].rss)/1024, "xargs-peak-RSS-MiB")
			if len(runs) > 2 {
				b.ReportMetric(float64(runs[2].wall.Microseconds())/1000/float64(b.N), "gnu-parallel-ms/run")
				b.ReportMetric(float64(runs[2].wall)/float64(aw), "gnu/arbor")
			}
		})
	}
}

// benchRun is one program measured by BenchmarkParallelOverhead.
type benchRun struct {
	name string
	argv []string
	wall time.Duration
	rss  int64 // KiB
}

// timeRun runs argv with stdin, and returns its wall time and its peak
// RSS in KiB. The peak is the process's own VmHWM, read from /proc while it
// runs (every 2 ms, keeping the last value, which only grows): rusage's
// Maxrss would count the memory of this test binary, which the child
// shares between fork and exec.
func timeRun(b *testing.B, argv []string, stdin []byte) (time.Duration, int64) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = bytes.NewReader(stdin)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
	var hwm int64
	done := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			if v := vmHWM(status, argv[0]); v > hwm {
				hwm = v
			}
			select {
			case <-t.C:
			case <-done:
				return
			}
		}
	}()
	err := cmd.Wait()
	wall := time.Since(start)
	close(done)
	<-watched
	if err != nil {
		b.Fatalf("%s: %v; stderr %s", strings.Join(argv, " "), err, clip(errOut.Bytes()))
	}
	return wall, hwm
}

// vmHWM reads the VmHWM line of a /proc status file, in KiB, once the
// process runs the program (before its exec the child is still a copy of
// this test binary).
func vmHWM(path, program string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	var name string
	var kib int64
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "Name:"):
			name = strings.TrimSpace(strings.TrimPrefix(line, "Name:"))
		case strings.HasPrefix(line, "VmHWM:"):
			fmt.Sscan(strings.TrimPrefix(line, "VmHWM:"), &kib)
		}
	}
	if !strings.HasPrefix(filepath.Base(program), name) {
		return 0
	}
	return kib
}
