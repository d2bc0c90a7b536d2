package spawn

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"
)

// BenchmarkStartCommand measures starting and reaping a plain program that
// exits at once (what arbor parallel does per job) against a bare os/exec
// fork, exec and wait of the same program in the same run, alternating.
func BenchmarkStartCommand(b *testing.B) {
	truePath, err := exec.LookPath("true")
	if err != nil {
		b.Skip("no true(1)")
	}
	ctx := context.Background()
	var bare, arbor time.Duration
	for b.Loop() {
		t0 := time.Now()
		cmd := exec.Command(truePath)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		a, err := StartCommand(ctx, Options{Binary: truePath, Stdout: os.Stdout, Stderr: os.Stderr})
		if err != nil {
			b.Fatal(err)
		}
		if err := a.Wait(); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		bare += t1.Sub(t0)
		arbor += t2.Sub(t1)
	}
	b.ReportMetric(float64(bare.Microseconds())/float64(b.N), "bare-µs/op")
	b.ReportMetric(float64(arbor.Microseconds())/float64(b.N), "arbor-µs/op")
	b.ReportMetric(float64(arbor)/float64(bare), "ratio")
}
