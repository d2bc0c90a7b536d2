package ipc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arbor-go/arbor/protocol"
)

type addArgs struct {
	A, B int
}

var (
	add = NewFunc("test.add", func(ctx context.Context, a addArgs) (int, error) {
		return a.A + a.B, nil
	})
	fail = NewFunc("test.fail", func(ctx context.Context, msg string) (int, error) {
		return 0, errors.New(msg)
	})
	boom = NewFunc("test.boom", func(ctx context.Context, msg string) (int, error) {
		panic(msg)
	})
	count = NewStream("test.count", func(ctx context.Context, n int, out *Yielder[int]) error {
		for i := range n {
			if err := out.Send(i); err != nil {
				return err
			}
		}
		return nil
	})
	// echo answers each item with its double, then returns how many it saw.
	echo = NewContext("test.echo", func(ctx context.Context, greeting string, s *Session[string, int, int]) (int, error) {
		if err := s.Started(greeting + ", ready"); err != nil {
			return 0, err
		}
		n := 0
		for {
			v, err := s.Recv()
			if err == io.EOF {
				return n, nil
			}
			if err != nil {
				return n, err
			}
			n++
			if err := s.Send(2 * v); err != nil {
				return n, err
			}
		}
	})
	// askParent calls back the actor that called it, on the same channel.
	askParent = NewFunc("test.askParent", func(ctx context.Context, a addArgs) (string, error) {
		ch, _ := ChannelFrom(ctx)
		sum, err := add.Call(ctx, ch, a)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("parent says %d", sum), nil
	})
)

var testFuncs = MustNewTable(add, fail, boom, count, echo, askParent)

func TestDialogs(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			parent, child := pair(t, tr, testFuncs, MustNewTable(add), nil)
			ctx := context.Background()

			t.Run("func", func(t *testing.T) {
				sum, err := add.Call(ctx, parent, addArgs{2, 3})
				if err != nil || sum != 5 {
					t.Fatalf("add = %d, %v", sum, err)
				}
			})
			t.Run("both directions", func(t *testing.T) {
				got, err := askParent.Call(ctx, parent, addArgs{20, 22})
				if err != nil || got != "parent says 42" {
					t.Fatalf("askParent = %q, %v", got, err)
				}
				sum, err := add.Call(ctx, child, addArgs{1, 1})
				if err != nil || sum != 2 {
					t.Fatalf("child calling parent: %d, %v", sum, err)
				}
			})
			t.Run("stream", func(t *testing.T) {
				s, err := count.Open(ctx, parent, 1000)
				if err != nil {
					t.Fatal(err)
				}
				want := 0
				for v, err := range s.All() {
					if err != nil {
						t.Fatal(err)
					}
					if v != want {
						t.Fatalf("item %d is %d", want, v)
					}
					want++
				}
				if want != 1000 {
					t.Fatalf("got %d items, want 1000", want)
				}
			})
			t.Run("context", func(t *testing.T) {
				cc, err := echo.Open(ctx, parent, "hello")
				if err != nil {
					t.Fatal(err)
				}
				if cc.Started() != "hello, ready" {
					t.Fatalf("started %q", cc.Started())
				}
				for i := range 10 {
					if err := cc.Send(i); err != nil {
						t.Fatal(err)
					}
					v, err := cc.Recv()
					if err != nil || v != 2*i {
						t.Fatalf("round %d: %d, %v", i, v, err)
					}
				}
				if err := cc.CloseSend(); err != nil {
					t.Fatal(err)
				}
				if _, err := cc.Recv(); err != io.EOF {
					t.Fatalf("after the function's stop: %v, want io.EOF", err)
				}
				n, err := cc.Result()
				if err != nil || n != 10 {
					t.Fatalf("result %d, %v", n, err)
				}
			})
			t.Run("application error", func(t *testing.T) {
				_, err := fail.Call(ctx, parent, "disk full")
				var re *protocol.RemoteError
				if !errors.As(err, &re) {
					t.Fatalf("got %T %v, want a RemoteError", err, err)
				}
				if re.Message != "disk full" || re.Type != "*errors.errorString" || re.Source.Name != "child" || re.Code != protocol.CodeApplication {
					t.Fatalf("boxed error lost detail: %+v", re)
				}
			})
			t.Run("panic", func(t *testing.T) {
				_, err := boom.Call(ctx, parent, "kaboom")
				var re *protocol.RemoteError
				if !errors.As(err, &re) || !errors.Is(err, protocol.ErrPanic) {
					t.Fatalf("got %v", err)
				}
				if re.Message != "kaboom" || !strings.Contains(re.Stack, "ipc.init") {
					t.Fatalf("panic value or stack lost: %q\n%s", re.Message, re.Stack)
				}
				if sum, err := add.Call(ctx, parent, addArgs{1, 2}); err != nil || sum != 3 {
					t.Fatalf("the channel broke after a panic: %d, %v", sum, err)
				}
			})
			t.Run("schema", func(t *testing.T) {
				schemas, err := RemoteSchemas(ctx, parent)
				if err != nil {
					t.Fatal(err)
				}
				byName := map[string]protocol.Schema{}
				for _, s := range schemas {
					byName[s.Name] = s
				}
				if len(byName) != 6 {
					t.Fatalf("got %d schemas, want 6: %v", len(byName), schemas)
				}
				a := byName["test.add"]
				if a.Kind != protocol.FuncUnary || a.Args.Type != "object" || len(a.Args.Properties) != 2 ||
					a.Args.Properties[0].Name != "A" || a.Result.Type != "integer" {
					t.Fatalf("test.add schema: %+v", a)
				}
				e := byName["test.echo"]
				if e.Kind != protocol.FuncContext || e.Started.Type != "string" || e.Send.Type != "integer" || e.Yield.Type != "integer" {
					t.Fatalf("test.echo schema: %+v", e)
				}
			})
		})
	}
}

func TestCallerErrors(t *testing.T) {
	parent, _ := pair(t, transports[0], testFuncs, nil, func(o *Options) { o.MaxFrame = 4096 })
	ctx := context.Background()
	tests := []struct {
		name  string
		call  func() error
		is    error
		words []string
	}{
		{"unknown function", func() error {
			_, err := NewFunc[int, int]("test.nope", nil).Call(ctx, parent, 1)
			return err
		}, protocol.ErrUnknownFunction, []string{`"test.nope"`, "child"}},
		{"wrong kind", func() error {
			_, err := NewFunc[int, int]("test.count", nil).Call(ctx, parent, 1)
			return err
		}, protocol.ErrWrongKind, []string{"test.count is a stream, called as a func"}},
		{"wrong argument type", func() error {
			_, err := NewFunc[string, int]("test.add", nil).Call(ctx, parent, "three")
			return err
		}, protocol.ErrBadArgument, []string{"ipc.addArgs", "got msgpack string"}},
		{"wrong result type", func() error {
			_, err := NewFunc[addArgs, string]("test.add", nil).Call(ctx, parent, addArgs{1, 2})
			return err
		}, nil, []string{"result", "want Go type string, got msgpack integer"}},
		{"argument over the frame limit", func() error {
			_, err := fail.Call(ctx, parent, strings.Repeat("x", 5000))
			return err
		}, nil, []string{"outgoing frame", "exceeds the maximum frame size of 4096"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil {
				t.Fatal("no error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("%v is not %v", err, tt.is)
			}
			for _, w := range tt.words {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not say %q", err, w)
				}
			}
			// One failing call never breaks the others.
			if sum, err := add.Call(ctx, parent, addArgs{4, 5}); err != nil || sum != 9 {
				t.Fatalf("channel broken after the failure: %d, %v", sum, err)
			}
		})
	}
}

func TestResultOverFrameLimit(t *testing.T) {
	big := NewFunc("test.big", func(ctx context.Context, n int) (string, error) { return strings.Repeat("y", n), nil })
	parent, _ := pair(t, transports[0], MustNewTable(big, add), nil, func(o *Options) { o.MaxFrame = 4096 })
	ctx := context.Background()
	_, err := big.Call(ctx, parent, 5000)
	var re *protocol.RemoteError
	if !errors.As(err, &re) || !strings.Contains(re.Message, "sending the result") || !strings.Contains(re.Message, "exceeds the maximum frame size") {
		t.Fatalf("got %v", err)
	}
	if s, err := big.Call(ctx, parent, 10); err != nil || s != "yyyyyyyyyy" {
		t.Fatalf("channel broken: %q %v", s, err)
	}
}

func TestCancellation(t *testing.T) {
	started := make(chan struct{}, 1)
	seen := make(chan error, 1)
	block := NewFunc("test.block", func(ctx context.Context, _ struct{}) (int, error) {
		started <- struct{}{}
		<-ctx.Done()
		seen <- context.Cause(ctx)
		return 0, ctx.Err()
	})
	selfCancel := NewFunc("test.selfCancel", func(ctx context.Context, _ struct{}) (int, error) {
		ctx, cancel := context.WithCancel(ctx)
		cancel()
		return 0, ctx.Err()
	})
	deadline := NewFunc("test.deadline", func(ctx context.Context, _ struct{}) (time.Duration, error) {
		d, ok := ctx.Deadline()
		if !ok {
			return 0, errors.New("no deadline")
		}
		return time.Until(d), nil
	})
	parent, _ := pair(t, transports[0], MustNewTable(block, selfCancel, deadline, add), nil, nil)

	t.Run("caller cancels", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			_, err := block.Call(ctx, parent, struct{}{})
			errc <- err
		}()
		<-started
		cancel()
		var err error
		within(t, 2*time.Second, "the cancelled call", func() { err = <-errc })
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("call returned %v, want context.Canceled", err)
		}
		cause := <-seen
		if !errors.Is(cause, context.Canceled) || !strings.Contains(cause.Error(), "cancelled by actor parent") {
			t.Fatalf("the remote function saw cause %v", cause)
		}
		if sum, err := add.Call(context.Background(), parent, addArgs{1, 1}); err != nil || sum != 2 {
			t.Fatalf("the actor does not serve the next call: %d %v", sum, err)
		}
	})
	t.Run("callee cancels itself", func(t *testing.T) {
		_, err := selfCancel.Call(context.Background(), parent, struct{}{})
		var re *protocol.RemoteError
		if !errors.As(err, &re) || !errors.Is(err, context.Canceled) || re.Canceller.Name != "child" {
			t.Fatalf("got %v (%+v)", err, re)
		}
	})
	t.Run("deadline travels", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		left, err := deadline.Call(ctx, parent, struct{}{})
		if err != nil || left <= 59*time.Minute || left > time.Hour {
			t.Fatalf("remote deadline in %v, %v", left, err)
		}
	})
	t.Run("deadline expires remotely", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		go func() { <-started }()
		_, err := block.Call(ctx, parent, struct{}{})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v", err)
		}
		within(t, 2*time.Second, "the remote function's end", func() { <-seen })
	})
}

func TestStreamCancelAndClose(t *testing.T) {
	ended := make(chan error, 1)
	forever := NewStream("test.forever", func(ctx context.Context, _ struct{}, out *Yielder[int]) error {
		for i := 0; ; i++ {
			if err := out.Send(i); err != nil {
				ended <- err
				return err
			}
		}
	})
	parent, _ := pair(t, transports[0], MustNewTable(forever, add), nil, nil)

	t.Run("break closes the stream", func(t *testing.T) {
		s, err := forever.Open(context.Background(), parent, struct{}{})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for v, err := range s.All() {
			if err != nil || v != n {
				t.Fatalf("item %d: %d %v", n, v, err)
			}
			if n++; n == 500 {
				break
			}
		}
		within(t, 2*time.Second, "the producer's end", func() {
			if err := <-ended; !errors.Is(err, context.Canceled) {
				t.Errorf("producer's Send returned %v", err)
			}
		})
	})
	t.Run("ctx ends while nobody reads", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		s, err := forever.Open(ctx, parent, struct{}{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); err != nil {
			t.Fatal(err)
		}
		cancel()
		within(t, 2*time.Second, "the producer's end", func() { <-ended })
		if _, err := s.Recv(); !errors.Is(err, context.Canceled) {
			t.Fatalf("Recv after cancel: %v", err)
		}
		s.Close()
	})
}

func TestFlowControl(t *testing.T) {
	const window = 16
	var sent atomic.Int64
	produce := NewStream("test.produce", func(ctx context.Context, n int, out *Yielder[int]) error {
		for i := range n {
			if err := out.Send(i); err != nil {
				return err
			}
			sent.Add(1)
		}
		return nil
	})
	parent, child := pair(t, transports[0], MustNewTable(produce), nil, func(o *Options) { o.Window = window })
	s, err := produce.Open(context.Background(), parent, 1000)
	if err != nil {
		t.Fatal(err)
	}
	// Nobody reads yet: the producer must stop after exactly one window.
	eventually(t, 2*time.Second, "a full window", func() bool { return sent.Load() == window })
	child.mu.Lock()
	var task *task
	for _, tk := range child.tasks {
		task = tk
	}
	child.mu.Unlock()
	eventually(t, 2*time.Second, "the producer to wait for credit", func() bool {
		task.out.mu.Lock()
		defer task.out.mu.Unlock()
		return task.out.credit == 0
	})
	parent.mu.Lock()
	c := parent.calls[s.c.cid]
	parent.mu.Unlock()
	// Items are flushed asynchronously: the last may still be on its way
	// when the producer runs out of credit.
	queued := 0
	eventually(t, 2*time.Second, "the window to arrive", func() bool {
		c.in.mu.Lock()
		defer c.in.mu.Unlock()
		queued = len(c.in.items) - c.in.head
		return queued == window
	})
	if queued != window || sent.Load() != window {
		t.Fatalf("consumer holds %d items, producer sent %d; both should be %d", queued, sent.Load(), window)
	}
	sum := 0
	for v, err := range s.All() {
		if err != nil {
			t.Fatal(err)
		}
		sum += v
	}
	if sum != 999*1000/2 {
		t.Fatalf("items lost: sum %d", sum)
	}
}

func TestPeerGone(t *testing.T) {
	hang := NewFunc("test.hang", func(ctx context.Context, _ struct{}) (int, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	})
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			parent, child := pair(t, tr, MustNewTable(hang, count), nil, nil)
			const n = 20
			errs := make(chan error, n+1)
			for range n {
				go func() {
					_, err := hang.Call(context.Background(), parent, struct{}{})
					errs <- err
				}()
			}
			s, err := count.Open(context.Background(), parent, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, 2*time.Second, "calls to reach the child", func() bool {
				child.mu.Lock()
				defer child.mu.Unlock()
				return len(child.tasks) == n+1
			})
			start := time.Now()
			child.conn.Close() // the peer vanishes without a word
			within(t, time.Second, "failing every pending call", func() {
				for range n {
					err := <-errs
					var gone *PeerGoneError
					if !errors.As(err, &gone) || gone.Peer.Name != "child" {
						t.Errorf("pending call got %v", err)
					}
				}
				for {
					_, err := s.Recv()
					if err != nil {
						var gone *PeerGoneError
						if !errors.As(err, &gone) {
							t.Errorf("stream got %v", err)
						}
						return
					}
				}
			})
			if took := time.Since(start); took > 100*time.Millisecond {
				t.Logf("note: failing pending calls took %v", took)
			}
			if _, err := add.Call(context.Background(), parent, addArgs{}); err == nil {
				t.Fatal("a call on a dead channel succeeded")
			}
		})
	}
}

func TestConcurrentCalls(t *testing.T) {
	parent, _ := pair(t, transports[0], testFuncs, nil, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for i := range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sum, err := add.Call(context.Background(), parent, addArgs{i, i})
			if err == nil && sum != 2*i {
				err = fmt.Errorf("call %d got %d", i, sum)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestClose(t *testing.T) {
	parent, child := pair(t, transports[0], testFuncs, nil, nil)
	if err := parent.Close(); err != nil {
		t.Fatal(err)
	}
	if err := parent.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := add.Call(context.Background(), parent, addArgs{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after Close: %v", err)
	}
	within(t, time.Second, "the child noticing", func() { <-child.Done() })
	var gone *PeerGoneError
	if !errors.As(child.Err(), &gone) {
		t.Fatalf("child channel ended with %v", child.Err())
	}
}
