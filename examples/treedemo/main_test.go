package main

import (
	"testing"

	"github.com/arbor-go/arbor/internal/exampletest"
)

// TestTreeDemo builds the demo and runs it as a user would.
func TestTreeDemo(t *testing.T) {
	out := exampletest.Run(t)
	exampletest.Expect(t, out,
		"started root.worker-1", "started root.worker-2",
		"root.worker-2 streamed 25",
		"relayed 25 from root.worker-1.helper",
		`call failed in root.worker-2: type *fmt.wrapError, message "divide 42 by zero: division error"`,
		"call failed because root.worker-2 crashed: status 2, panic: worker-2 hit a bug",
		"stopped root.worker-1: exited cleanly",
		"stopped root.worker-2: actor root.worker-2",
		"processes left behind: 0",
	)
}
