package ipc

import (
	"context"
	"io"
	"iter"

	"github.com/arbor-go/arbor/protocol"
)

// Func declares a unary function: arguments of type A in, one result of type
// R out. One declaration serves the function (in a Table) and calls it with
// compile-time types:
//
//	var Add = ipc.NewFunc("math.add", func(ctx context.Context, a [2]int) (int, error) {
//		return a[0] + a[1], nil
//	})
//	sum, err := Add.Call(ctx, ch, [2]int{1, 2})
type Func[A, R any] struct {
	fname string
	impl  func(context.Context, A) (R, error)
}

// NewFunc declares a unary function. impl may be nil in a program that only
// calls the function.
func NewFunc[A, R any](name string, impl func(ctx context.Context, args A) (R, error)) *Func[A, R] {
	return &Func[A, R]{fname: name, impl: impl}
}

// Implement returns the same function served by impl, leaving f as it is:
// a server whose implementation needs state known only at run time, or a
// function that calls itself, declares it once with a nil impl and puts
// f.Implement(impl) in its Table.
func (f *Func[A, R]) Implement(impl func(ctx context.Context, args A) (R, error)) *Func[A, R] {
	return NewFunc(f.fname, impl)
}

// Name returns the declared name.
func (f *Func[A, R]) Name() string { return f.fname }

// Schema describes the function.
func (f *Func[A, R]) Schema() protocol.Schema {
	return protocol.Schema{Name: f.fname, Kind: protocol.FuncUnary, Args: typeSchema[A](), Result: typeSchema[R]()}
}

func (f *Func[A, R]) implemented() bool           { return f.impl != nil }
func (f *Func[A, R]) name() string                { return f.fname }
func (f *Func[A, R]) funcKind() protocol.FuncKind { return protocol.FuncUnary }

// Call calls the function on the peer of ch and waits for its result. If
// ctx is cancelled first, the remote call is cancelled and Call returns
// ctx.Err() once the remote task has ended (or Options.CancelWait has
// passed); if the remote function ended meanwhile with an error of its own
// rather than the cancellation, Call returns an *AbandonedError that holds
// both. If ctx's deadline passes first, Call returns at once: a deadline
// bounds the call even with a peer that does not answer, and the channel
// waits for the remote task's end (at most CancelWait), logging a real
// error that arrives then. An error from the remote function is a
// *protocol.RemoteError.
func (f *Func[A, R]) Call(ctx context.Context, ch *Channel, args A) (R, error) {
	// One allocation holds the call, its arguments as they are encoded
	// and its result as it is decoded.
	u := &unaryCall[A, R]{args: args}
	c, err := ch.startCall(ctx, &u.call, f.fname, protocol.FuncUnary, &u.args)
	if err != nil {
		return u.result, err
	}
	raw, err := c.wait(ctx)
	if err != nil {
		return u.result, err
	}
	err = decodePayload(f.fname, "result", raw, &u.result)
	return u.result, err
}

// unaryCall is a call of a Func with its arguments and result.
type unaryCall[A, R any] struct {
	call
	args   A
	result R
}

// served is a served call of a Func, with its arguments as they are
// decoded and its result as it is encoded: one allocation for all three.
type served[A, R any] struct {
	task
	args   A
	result R
}

func (f *Func[A, R]) newTask() *task {
	s := &served[A, R]{}
	s.state = s
	return &s.task
}

func (f *Func[A, R]) handle(t *task, raw protocol.Raw) (any, error) {
	s := t.state.(*served[A, R])
	if err := decodePayload(f.fname, "argument", raw, &s.args); err != nil {
		return nil, err
	}
	t.ack()
	r, err := f.impl(t.ctx, s.args)
	if err != nil {
		return nil, err
	}
	s.result = r
	return &s.result, nil
}

// Stream declares a function that takes arguments of type A and yields a
// sequence of Y. The consumer's credit paces the producer: Send waits while
// the caller has not caught up, so memory per stream stays bounded.
type Stream[A, Y any] struct {
	fname string
	impl  func(context.Context, A, *Yielder[Y]) error
}

// NewStream declares a streaming function; impl may be nil in a program that
// only calls it. The stream ends when impl returns: normally when it returns
// nil, with an error otherwise.
func NewStream[A, Y any](name string, impl func(ctx context.Context, args A, out *Yielder[Y]) error) *Stream[A, Y] {
	return &Stream[A, Y]{fname: name, impl: impl}
}

// Implement returns the same stream served by impl, leaving s as it is (see
// Func.Implement).
func (s *Stream[A, Y]) Implement(impl func(ctx context.Context, args A, out *Yielder[Y]) error) *Stream[A, Y] {
	return NewStream(s.fname, impl)
}

// Name returns the declared name.
func (s *Stream[A, Y]) Name() string { return s.fname }

// Schema describes the function.
func (s *Stream[A, Y]) Schema() protocol.Schema {
	return protocol.Schema{Name: s.fname, Kind: protocol.FuncStream, Args: typeSchema[A](), Yield: typeSchema[Y]()}
}

func (s *Stream[A, Y]) implemented() bool           { return s.impl != nil }
func (s *Stream[A, Y]) name() string                { return s.fname }
func (s *Stream[A, Y]) funcKind() protocol.FuncKind { return protocol.FuncStream }

func (s *Stream[A, Y]) newTask() *task { return &task{} }

func (s *Stream[A, Y]) handle(t *task, raw protocol.Raw) (any, error) {
	var a A
	if err := decodePayload(s.fname, "argument", raw, &a); err != nil {
		return nil, err
	}
	t.ack()
	return nil, s.impl(t.ctx, a, &Yielder[Y]{t: t})
}

// Open starts the stream on the peer of ch. ctx governs the whole stream:
// when it ends, the remote function is cancelled.
func (s *Stream[A, Y]) Open(ctx context.Context, ch *Channel, args A) (*StreamReader[Y], error) {
	c, err := ch.startCall(ctx, nil, s.fname, protocol.FuncStream, args)
	if err != nil {
		return nil, err
	}
	return &StreamReader[Y]{c: c, ctx: ctx}, nil
}

// Yielder sends a stream's items to the caller.
type Yielder[Y any] struct{ t *task }

// Send sends one item. It blocks while the caller has granted no credit, and
// fails once the call has been cancelled or the channel has ended.
func (y *Yielder[Y]) Send(v Y) error { return y.t.yield(v) }

// StreamReader receives a stream's items on the calling side. Its methods
// are for one goroutine at a time.
type StreamReader[Y any] struct {
	c    *call
	ctx  context.Context
	item Y // what recv decodes into: a local would escape, an allocation per item
}

// Recv returns the next item, io.EOF after the last one, or the error that
// ended the stream (a *protocol.RemoteError from the remote function, the
// ctx's error, a *PeerGoneError). A *DecodeError fails only that item.
func (r *StreamReader[Y]) Recv() (Y, error) { return r.recv(nil) }

// RecvContext is Recv with a bound on the wait: if ctx ends before an item
// arrives, it returns ctx's error and the stream goes on, the next item kept
// for a later call. The ctx given to Open still governs the stream itself.
func (r *StreamReader[Y]) RecvContext(ctx context.Context) (Y, error) {
	y, err := r.recv(ctx.Done())
	if err == errWaitOver {
		err = ctx.Err()
	}
	return y, err
}

func (r *StreamReader[Y]) recv(wait <-chan struct{}) (Y, error) {
	var y Y
	if err := r.ctx.Err(); err != nil {
		r.c.giveUp(r.ctx)
		return y, r.c.abandonedErr(err)
	}
	raw, err := r.c.in.pop(r.ctx, wait)
	if err != nil {
		if err != errWaitOver && r.ctx.Err() != nil && err != io.EOF {
			r.c.giveUp(r.ctx)
			return y, r.c.abandonedErr(r.ctx.Err())
		}
		return y, err
	}
	var zero Y
	r.item = zero // msgpack merges into what is there
	err = decodePayload(r.c.fn, "yield", raw, &r.item)
	return r.item, err
}

// All ranges over the items until the end of the stream. An error that ends
// the stream is yielded once, with a zero item; breaking out of the loop
// closes the stream.
func (r *StreamReader[Y]) All() iter.Seq2[Y, error] {
	return func(yield func(Y, error) bool) {
		for {
			y, err := r.Recv()
			if err == io.EOF {
				return
			}
			if !yield(y, err) {
				r.Close()
				return
			}
			if err != nil {
				if _, isDecode := err.(*DecodeError); !isDecode {
					return
				}
			}
		}
	}
}

// Done is closed once the stream has ended: after its last item was sent,
// it failed, or Close was called (items may still be queued for Recv).
func (r *StreamReader[Y]) Done() <-chan struct{} { return r.c.done }

// Err returns the error that ended the stream: nil while it runs and after
// a normal end, otherwise what Recv returns once the queued items are read
// (ErrCallEnded, or the remote function's cancellation, after Close).
func (r *StreamReader[Y]) Err() error {
	select {
	case <-r.c.done:
	default:
		return nil
	}
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	return r.c.err
}

// Close stops reading. If the stream has not ended, the remote function is
// cancelled, and Close returns once it has ended or Options.CancelWait has
// passed. It is safe to call more than once.
func (r *StreamReader[Y]) Close() error {
	select {
	case <-r.c.done:
	default:
		r.c.abandon(ErrCallEnded, protocol.ActorID{})
	}
	return nil
}

// Context declares a function that opens a two-way session: it takes
// arguments of type A, first sends a value of type S ("started"), then
// exchanges items with the caller — I from the caller, O to the caller —
// and finally returns a result of type R.
type Context[A, S, I, O, R any] struct {
	fname string
	impl  func(context.Context, A, *Session[S, I, O]) (R, error)
}

// NewContext declares a context function; impl may be nil in a program that
// only calls it.
func NewContext[A, S, I, O, R any](name string, impl func(ctx context.Context, args A, s *Session[S, I, O]) (R, error)) *Context[A, S, I, O, R] {
	return &Context[A, S, I, O, R]{fname: name, impl: impl}
}

// Implement returns the same context function served by impl, leaving d as
// it is (see Func.Implement).
func (d *Context[A, S, I, O, R]) Implement(impl func(ctx context.Context, args A, s *Session[S, I, O]) (R, error)) *Context[A, S, I, O, R] {
	return NewContext(d.fname, impl)
}

// Name returns the declared name.
func (d *Context[A, S, I, O, R]) Name() string { return d.fname }

// Schema describes the function.
func (d *Context[A, S, I, O, R]) Schema() protocol.Schema {
	return protocol.Schema{Name: d.fname, Kind: protocol.FuncContext, Args: typeSchema[A](),
		Started: typeSchema[S](), Send: typeSchema[I](), Yield: typeSchema[O](), Result: typeSchema[R]()}
}

func (d *Context[A, S, I, O, R]) implemented() bool           { return d.impl != nil }
func (d *Context[A, S, I, O, R]) name() string                { return d.fname }
func (d *Context[A, S, I, O, R]) funcKind() protocol.FuncKind { return protocol.FuncContext }

func (d *Context[A, S, I, O, R]) newTask() *task { return &task{} }

func (d *Context[A, S, I, O, R]) handle(t *task, raw protocol.Raw) (any, error) {
	var a A
	if err := decodePayload(d.fname, "argument", raw, &a); err != nil {
		return nil, err
	}
	t.ack()
	return d.impl(t.ctx, a, &Session[S, I, O]{t: t})
}

// Session is the serving side of a context call.
type Session[S, I, O any] struct{ t *task }

// Started sends the first value; it must come before Send, and only once.
// A function that returns without calling it sends a zero S.
func (s *Session[S, I, O]) Started(v S) error { return s.t.sendStarted(v) }

// Send sends one item to the caller, waiting for credit.
func (s *Session[S, I, O]) Send(v O) error { return s.t.yield(v) }

// SendContext is Send with a bound on the wait for credit: a ctx that ends
// first returns its error, sends nothing and leaves the session open.
func (s *Session[S, I, O]) SendContext(ctx context.Context, v O) error {
	ctx, stop := bothContexts(s.t.ctx, ctx)
	defer stop()
	return s.t.yieldContext(ctx, v)
}

// Recv returns the caller's next item, or io.EOF once the caller has closed
// its direction.
func (s *Session[S, I, O]) Recv() (I, error) {
	var v I
	raw, err := s.t.in.pop(s.t.ctx, nil)
	if err != nil {
		return v, err
	}
	err = decodePayload(s.t.fn, "sent value", raw, &v)
	return v, err
}

// RecvContext is Recv with a bound on the wait: a ctx that ends first
// returns its error and leaves the session open.
func (s *Session[S, I, O]) RecvContext(ctx context.Context) (I, error) {
	var v I
	raw, err := s.t.in.pop(s.t.ctx, ctx.Done())
	if err == errWaitOver {
		err = ctx.Err()
	}
	if err != nil {
		return v, err
	}
	err = decodePayload(s.t.fn, "sent value", raw, &v)
	return v, err
}

// CloseSend tells the caller no more items will come.
func (s *Session[S, I, O]) CloseSend() error { return s.t.closeSend() }

// Open starts the context on the peer of ch and waits for its Started
// value. ctx governs the whole session.
func (d *Context[A, S, I, O, R]) Open(ctx context.Context, ch *Channel, args A) (*ContextCall[S, I, O, R], error) {
	c, err := ch.startCall(ctx, nil, d.fname, protocol.FuncContext, args)
	if err != nil {
		return nil, err
	}
	cc := &ContextCall[S, I, O, R]{c: c, ctx: ctx}
	select {
	case <-c.started:
	case <-c.done:
		c.mu.Lock()
		err := c.err
		c.mu.Unlock()
		if err == nil {
			err = &ProtocolError{CID: c.cid, Reason: "context ended without started"}
		}
		return nil, err
	case <-ctx.Done():
		c.giveUp(ctx)
		return nil, c.abandonedErr(ctx.Err())
	}
	c.mu.Lock()
	raw := c.startedValue
	c.mu.Unlock()
	if err := decodePayload(d.fname, "started value", raw, &cc.started); err != nil {
		c.abandon(err, protocol.ActorID{})
		return nil, err
	}
	return cc, nil
}

// ContextCall is the calling side of an open context. Send and Recv may be
// used from different goroutines.
type ContextCall[S, I, O, R any] struct {
	c       *call
	ctx     context.Context
	started S
	item    O // what recv decodes into, as StreamReader's
}

// Started returns the value the function sent first.
func (cc *ContextCall[S, I, O, R]) Started() S { return cc.started }

// Send sends one item to the function, waiting for credit.
func (cc *ContextCall[S, I, O, R]) Send(v I) error { return cc.c.sendYield(cc.ctx, v) }

// SendContext is Send with a bound on the wait for credit, as
// Session.SendContext is.
func (cc *ContextCall[S, I, O, R]) SendContext(ctx context.Context, v I) error {
	ctx, stop := bothContexts(cc.ctx, ctx)
	defer stop()
	return cc.c.sendYield(ctx, v)
}

// bothContexts returns a ctx that ends when either a or b does, with the
// cause of the first, and the function that releases it.
func bothContexts(a, b context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(a)
	if b.Err() != nil { // ended already: at once, not in AfterFunc's goroutine
		cancel(context.Cause(b))
		return ctx, func() {}
	}
	stop := context.AfterFunc(b, func() { cancel(context.Cause(b)) })
	return ctx, func() { stop(); cancel(nil) }
}

// Recv returns the function's next item, or io.EOF once it has closed its
// direction or returned.
func (cc *ContextCall[S, I, O, R]) Recv() (O, error) { return cc.recv(nil) }

// RecvContext is Recv with a bound on the wait, as StreamReader's is: a ctx
// that ends first returns its error and leaves the session open.
func (cc *ContextCall[S, I, O, R]) RecvContext(ctx context.Context) (O, error) {
	v, err := cc.recv(ctx.Done())
	if err == errWaitOver {
		err = ctx.Err()
	}
	return v, err
}

func (cc *ContextCall[S, I, O, R]) recv(wait <-chan struct{}) (O, error) {
	var zero O
	raw, err := cc.c.in.pop(cc.ctx, wait)
	if err != nil {
		return zero, err
	}
	cc.item = zero // msgpack merges into what is there
	err = decodePayload(cc.c.fn, "yield", raw, &cc.item)
	return cc.item, err
}

// CloseSend tells the function no more items will come. It is safe to call
// more than once.
func (cc *ContextCall[S, I, O, R]) CloseSend() error { return cc.c.closeSend() }

// Result waits for the function's result. Like Func.Call, a ctx that ends
// cancels the remote function.
func (cc *ContextCall[S, I, O, R]) Result() (R, error) {
	var r R
	raw, err := cc.c.wait(cc.ctx)
	if err != nil {
		return r, err
	}
	err = decodePayload(cc.c.fn, "result", raw, &r)
	return r, err
}

// Close cancels the function if it has not ended, waiting for it as
// StreamReader.Close does. It is safe to call more than once.
func (cc *ContextCall[S, I, O, R]) Close() error {
	select {
	case <-cc.c.done:
	default:
		cc.c.abandon(ErrCallEnded, protocol.ActorID{})
	}
	return nil
}
