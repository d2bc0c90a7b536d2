package main

import (
	"testing"

	"github.com/arbor-go/arbor/internal/exampletest"
)

func TestBatchTool(t *testing.T) {
	exampletest.Expect(t, exampletest.Run(t),
		"the cache crashed and is being restarted",
		"processed item 3",
		"cache running again after 1 restart(s)",
		"batch done; the cache is stopped")
}
