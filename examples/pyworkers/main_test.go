package main

import (
	"testing"

	"github.com/arbor-go/arbor/internal/exampletest"
	"github.com/arbor-go/arbor/internal/pyenv"
)

func TestPyWorkers(t *testing.T) {
	t.Setenv("ARBOR_PYTHON", pyenv.Require(t))
	bin := exampletest.Build(t)

	out, err := exampletest.Command(bin, "-workers", "3", "-limit", "50000").CombinedOutput()
	if err != nil {
		t.Fatalf("pyworkers: %v\n%s", err, out)
	}
	exampletest.Expect(t, string(out), "3 Python workers found the 5133 primes below 50000")

	out, err = exampletest.Command(bin, "-workers", "3", "-limit", "50000", "-fail").CombinedOutput()
	if err == nil {
		t.Fatalf("pyworkers -fail succeeded:\n%s", out)
	}
	exampletest.Expect(t, string(out),
		"root.py-2 raised ValueError: an empty range: 33333..33333",
		"Traceback (most recent call last):",
		`worker.py", line`,
		"actor root.py-2: ValueError: an empty range")
}
