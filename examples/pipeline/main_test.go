package main

import (
	"testing"

	"github.com/arbor-go/arbor/internal/exampletest"
)

func TestPipeline(t *testing.T) {
	exampletest.Expect(t, exampletest.Run(t),
		"received 2000 items: 1000 from producer 0, 1000 from producer 1, each in order")
}
