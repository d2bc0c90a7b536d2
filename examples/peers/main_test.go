package main

import (
	"testing"

	"github.com/arbor-go/arbor/internal/exampletest"
)

// TestPeers runs the example as a user would.
func TestPeers(t *testing.T) {
	out := exampletest.Run(t)
	exampletest.Expect(t, out,
		"root.producer streamed 1..1000 straight to root.consumer, which summed 500500",
		"registered: root.consumer", "registered: root.producer",
		"the producer's call to it ended: cancelled by root",
		"root.consumer exited: <nil>",
		"root.producer streamed 1..1000 to root.far through the tree, which summed 500500",
		`root.far's error "root.far refuses", raised in root.far, came back through root root.producer`)
}
