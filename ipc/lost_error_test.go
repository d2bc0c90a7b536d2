package ipc

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/proctest"
	"github.com/hashicorp/go-hclog"
)

// An error a served function returns after its channel has closed cannot
// reach the caller; it is logged instead of dropped (issue 10, item 6). A
// cancellation is not logged: it only repeats the channel's end.
func TestErrorAfterCloseIsLogged(t *testing.T) {
	var logs proctest.Buffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug})
	running := make(chan struct{}, 2)
	late := NewFunc("test.late", func(ctx context.Context, kind string) (int, error) {
		running <- struct{}{}
		<-ctx.Done()
		if kind == "cancel" {
			return 0, ctx.Err()
		}
		return 0, errors.New("disk full while the caller was gone")
	})
	parent, child := pair(t, transports[0], MustNewTable(late), nil, func(o *Options) { o.Logger = logger })
	var calls sync.WaitGroup
	defer calls.Wait()
	for _, kind := range []string{"fail", "cancel"} {
		calls.Go(func() { late.Call(context.Background(), parent, kind) })
		select {
		case <-running:
		case <-time.After(5 * time.Second):
			t.Fatal("the served function did not start")
		}
	}
	parent.Close()
	eventually(t, 5*time.Second, "the lost error in the log", func() bool {
		return strings.Contains(logs.String(), "disk full while the caller was gone")
	})
	<-child.Done()
	if strings.Count(logs.String(), "could not be sent") != 1 {
		t.Fatalf("want one warning, for the real error only:\n%s", logs.String())
	}
}
