package main

import (
	"testing"

	"github.com/arbor-go/arbor/internal/exampletest"
)

func TestTreeError(t *testing.T) {
	exampletest.Expect(t, exampletest.Run(t),
		"failed in root.top.n1.n0: leaf t.1.0: sensor offline",
		"relayed through root.top.n1\n  relayed through root.top\n")
}
