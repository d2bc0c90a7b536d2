package main

import (
	"errors"
	"os/exec"
	"testing"

	"github.com/arbor-go/arbor/internal/exampletest"
)

func TestParallelJobs(t *testing.T) {
	out, err := exampletest.Command(exampletest.Build(t)).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("want status 1 after the failing job, got %v\n%s", err, out)
	}
	exampletest.Expect(t, string(out),
		"job 0: ok: compressing a / a done",
		"job 2: failed (process root.job-2",
		"exited with status 3",
		"job 3: stopped after another job failed",
		"job 1: ok: compressing b / b done",
		"job 4: stopped after another job failed")
}
