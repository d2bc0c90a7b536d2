package ipc

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/proctest"
	"github.com/arbor-go/arbor/protocol"
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

// A call whose ctx ends returns the remote function's own error when the
// function fails instead of returning the cancellation, together with the
// ctx's error (issue 10, item 1); one that fails after CancelWait, when
// nobody waits for it any more, leaves a trace in the caller's log.
func TestErrorAfterCancellationIsKept(t *testing.T) {
	var logs proctest.Buffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug})
	running := make(chan struct{}, 1)
	stubborn := NewFunc("test.stubborn", func(ctx context.Context, ms int) (int, error) {
		running <- struct{}{}
		<-ctx.Done()
		time.Sleep(time.Duration(ms) * time.Millisecond)
		return 0, errors.New("my own failure")
	})
	parent, _ := pair(t, transports[0], MustNewTable(stubborn), nil, func(o *Options) {
		o.Logger = logger
		o.CancelWait = 500 * time.Millisecond
	})
	call := func(ms int) error {
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-running; cancel() }()
		_, err := stubborn.Call(ctx, parent, ms)
		return err
	}

	err := call(20)
	var ae *AbandonedError
	var re *protocol.RemoteError
	if !errors.As(err, &ae) || !errors.As(err, &re) || re.Message != "my own failure" || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %T %v: want the remote error and the cancellation", err, err)
	}
	if want := "context canceled, and the remote function failed meanwhile: actor child: *errors.errorString: my own failure"; err.Error() != want {
		t.Fatalf("got %q\nwant %q", err, want)
	}

	if err := call(800); err != context.Canceled {
		t.Fatalf("got %T %v: past CancelWait, want the cancellation", err, err)
	}
	eventually(t, 5*time.Second, "the late error in the log", func() bool {
		return strings.Contains(logs.String(), "arrived after its call was abandoned") && strings.Contains(logs.String(), "my own failure")
	})
}

// Past a deadline the call returns at once, and the remote function's own
// error that comes after is in the caller's log (issue 17, item 5).
func TestErrorAfterDeadlineIsLogged(t *testing.T) {
	var logs proctest.Buffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug})
	slow := NewFunc("test.slowFail", func(ctx context.Context, _ struct{}) (int, error) {
		<-ctx.Done()
		time.Sleep(50 * time.Millisecond)
		return 0, errors.New("failed after the deadline")
	})
	parent, _ := pair(t, transports[0], MustNewTable(slow), nil, func(o *Options) { o.Logger = logger })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := slow.Call(ctx, parent, struct{}{}); err != context.DeadlineExceeded {
		t.Fatalf("got %T %v", err, err)
	}
	eventually(t, 5*time.Second, "the late error in the log", func() bool {
		return strings.Contains(logs.String(), "arrived after its call was abandoned") && strings.Contains(logs.String(), "failed after the deadline")
	})
}
