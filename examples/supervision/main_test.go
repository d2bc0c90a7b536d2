package main

import (
	"testing"

	"github.com/arbor-go/arbor/internal/exampletest"
)

func TestSupervision(t *testing.T) {
	exampletest.Expect(t, exampletest.Run(t),
		"pool: worker-2 exited: ", "worker hit a bug",
		"pool: restarting worker-2 after a backoff",
		"pool grown to 4 workers",
		"worker-2: running, 1 restarts",
		"stopped in order: [worker-4 worker-3 worker-2 worker-1 pool]")
}
