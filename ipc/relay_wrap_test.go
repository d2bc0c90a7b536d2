package ipc

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/arbor-go/arbor/protocol"
)

// An error relayed through an actor keeps what that actor's code wrapped
// around it (issue 10, item 4): top calls mid, mid calls leaf, leaf fails,
// mid returns fmt.Errorf("step 2: %w", err).
func TestRelayKeepsWrappers(t *testing.T) {
	leafFn := NewFunc("test.leaf", func(ctx context.Context, _ struct{}) (int, error) {
		return 0, errors.New("disk full")
	})
	midToLeaf, _ := pair(t, transports[0], MustNewTable(leafFn), nil, nil)
	midFn := NewFunc("test.mid", func(ctx context.Context, _ struct{}) (int, error) {
		_, err := leafFn.Call(ctx, midToLeaf, struct{}{})
		return 0, fmt.Errorf("step 2: %w", err)
	})
	top, _ := pair(t, transports[0], MustNewTable(midFn), nil, nil)
	_, err := midFn.Call(context.Background(), top, struct{}{})
	var re *protocol.RemoteError
	if !errors.As(err, &re) {
		t.Fatalf("got %T %v", err, err)
	}
	if re.Message != "step 2: disk full" || len(re.Relay) != 1 {
		t.Fatalf("message %q, relay %v: want the wrapper's words kept and one hop", re.Message, re.Relay)
	}
}
