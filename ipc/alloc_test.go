package ipc

import (
	"context"
	"testing"
)

// A small unary call costs at most three allocations on each side (issue
// 12): the caller's call, arguments and result in one, and its done
// channel; the callee's task with its arguments and result, and the ctx it
// runs under (two). Both ends are in this process, so the count is both
// sides' together.
func TestCallAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own; .ci/run runs this without it")
	}
	parent, _ := pair(t, transports[0], testFuncs, nil, nil)
	ctx := context.Background()
	for i := range 100 { // warm the workers, pools and buffers
		add.Call(ctx, parent, addArgs{i, 1})
	}
	allocs := testing.AllocsPerRun(2000, func() {
		if v, err := add.Call(ctx, parent, addArgs{2, 3}); err != nil || v != 5 {
			t.Fatalf("add: %d, %v", v, err)
		}
	})
	if allocs > 6 {
		t.Fatalf("%.1f allocations per call on both sides, want at most 6 (3 each)", allocs)
	}
	t.Logf("%.2f allocations per call, both sides", allocs)
}

// A stream of small ints costs at most one allocation per item, both sides
// together: the producer's int as it is handed to the encoder (values
// past 255 are boxed); framing, routing and the consumer's decode
// allocate nothing.
func TestStreamAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own; .ci/run runs this without it")
	}
	parent, _ := pair(t, transports[0], testFuncs, nil, nil)
	const items = 20000
	read := func() { readCount(t, count, parent, items) }
	read() // warm up
	perItem := testing.AllocsPerRun(5, read) / items
	if perItem > 1 {
		t.Fatalf("%.3f allocations per item, want at most 1", perItem)
	}
	t.Logf("%.3f allocations per item, both sides", perItem)
}
