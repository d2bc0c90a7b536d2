package main

import (
	"testing"

	"github.com/arbor-go/arbor/internal/exampletest"
)

func TestBasics(t *testing.T) {
	exampletest.Expect(t, exampletest.Run(t),
		"1 cubed is 1 (computed by root.cube-1)", "5 cubed is 125 (computed by root.cube-5)")
}
