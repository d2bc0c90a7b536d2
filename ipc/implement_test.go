package ipc

import (
	"context"
	"testing"
)

// A declaration made without an implementation can be served later, by
// state known only at run time, and called through the first declaration
// (issue 13, item 7).
func TestImplementLater(t *testing.T) {
	double := NewFunc[int, int]("test.double", nil)
	factor := 2 // run-time state
	served := double.Implement(func(_ context.Context, n int) (int, error) { return factor * n, nil })
	if double.implemented() || !served.implemented() || served.Name() != double.Name() {
		t.Fatalf("Implement changed the declaration or lost its name")
	}
	if _, err := NewTable(double); err == nil {
		t.Fatal("a table took a declaration without an implementation")
	}
	numbers := NewStream[int, int]("test.upto", nil)
	parent, _ := pair(t, transports[0], MustNewTable(served, numbers.Implement(func(_ context.Context, n int, out *Yielder[int]) error {
		for i := range n {
			if err := out.Send(i); err != nil {
				return err
			}
		}
		return nil
	})), nil, nil)
	if v, err := double.Call(context.Background(), parent, 21); err != nil || v != 42 {
		t.Fatalf("double(21) = %d, %v", v, err)
	}
	readCount(t, numbers, parent, 3)
	ctxFn := NewContext[int, int, int, int, int]("test.ctx", nil)
	if impl := ctxFn.Implement(func(context.Context, int, *Session[int, int, int]) (int, error) { return 0, nil }); !impl.implemented() || impl.Name() != "test.ctx" {
		t.Fatal("Context.Implement")
	}
}
