package ipc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/arbor-go/arbor/internal/envelope"
	"github.com/arbor-go/arbor/protocol"
)

// task is one call this end serves, from the peer's Start to this end's
// final message.
type task struct {
	ch     *Channel
	cid    uint64
	fn     string
	kind   protocol.FuncKind
	ctx    context.Context
	cancel context.CancelCauseFunc
	in     *inbox  // the caller's Yields (contexts)
	out    *outbox // credit for Yields to the caller (streams, contexts)

	gone    atomic.Bool // set once the task has left the channel's table
	counted bool        // counts against MaxServed (not a runtime function)
	// state is the handler's own, allocated with the task (newTask).
	state any
	// The messages the task sends, kept here to save an allocation each.
	ackMsg envelope.StartAck
	retMsg envelope.Return

	mu          sync.Mutex
	cancelledBy protocol.ActorID // who asked for the cancellation, if anyone did
	violated    *ProtocolError   // the caller broke the protocol on this call
	acked       bool
	startedSent bool
	stopSent    bool
	ended       bool
}

// cancelCause is the cause a served call's ctx is cancelled with on behalf
// of another actor: the peer, when it asked with arbor.cancel, or the actor
// CancelServed names. reason, if set, is the cause as given to CancelServed.
type cancelCause struct {
	by     protocol.ActorID
	reason error
}

func (c *cancelCause) Error() string {
	if c.reason != nil {
		return c.reason.Error()
	}
	return "cancelled by actor " + c.by.String()
}
func (c *cancelCause) Unwrap() error { return c.reason }
func (c *cancelCause) Is(target error) bool {
	return target == context.Canceled
}

// accept handles a Start from the peer: it checks the call and runs it in a
// goroutine of its own, owned by the channel.
func (ch *Channel) accept(s *envelope.Start) {
	refuse := func(code protocol.ErrorCode, format string, args ...any) {
		ch.report(&envelope.Error{CID: s.CID, Err: runtimeError(code, fmt.Sprintf(format, args...), ch.self)})
	}
	if ch.ownID(s.CID) {
		// Answered on cid 0: the id is one the sender never used, so an
		// error for it would be a message for a call it does not have.
		ch.reject(&ProtocolError{CID: s.CID, Reason: fmt.Sprintf("start with call id %d, which has the parity of this side's own calls", s.CID)})
		return
	}
	h, ok := ch.funcs.lookup(s.Function)
	if !ok {
		refuse(protocol.CodeUnknownFunction, "actor %s serves no function %q", ch.self, s.Function)
		return
	}
	if h.funcKind() != s.FuncKind {
		refuse(protocol.CodeWrongKind, "%s is a %s, called as a %s", s.Function, h.funcKind(), s.FuncKind)
		return
	}
	ctx, cancel := context.WithCancelCause(ch.base)
	if s.Timeout > 0 {
		var cancelTimeout context.CancelFunc
		ctx, cancelTimeout = context.WithTimeout(ctx, s.Timeout)
		inner := cancel
		cancel = func(err error) { inner(err); cancelTimeout() }
	}
	t := h.newTask()
	t.ch, t.cid, t.fn, t.kind, t.ctx, t.cancel = ch, s.CID, s.Function, s.FuncKind, ctx, cancel
	if s.FuncKind != protocol.FuncUnary {
		t.out = newOutbox(int(s.Credit))
	}
	if s.FuncKind == protocol.FuncContext {
		t.in = newInbox(ch.window, t.grant)
	}

	ch.mu.Lock()
	if ch.err != nil {
		ch.mu.Unlock()
		cancel(nil)
		return
	}
	if _, live := ch.tasks[s.CID]; live {
		ch.mu.Unlock()
		cancel(nil)
		refuse(protocol.CodeProtocol, "call id %d is already in use by a running call", s.CID)
		return
	}
	if s.CID <= ch.lastPeerID {
		// Ids only grow (PROTOCOL.md §5): this one was used by a call that
		// has ended.
		ch.mu.Unlock()
		cancel(nil)
		refuse(protocol.CodeProtocol, "call id %d was already used by a call that has ended; ids only grow", s.CID)
		return
	}
	// The runtime's own functions (arbor.cancel, arbor.stop, ...) are not
	// counted: a full actor must still hear that its calls are cancelled.
	// A relay is (package spawn's arbor.relay): it carries a channel's
	// calls, and holds a window of items each way.
	runtime := strings.HasPrefix(s.Function, "arbor.") && s.Function != "arbor.relay"
	if n := ch.serving.Load(); n >= int64(ch.served) && !runtime {
		ch.mu.Unlock()
		cancel(nil)
		refuse(protocol.CodeOverloaded, "actor %s already serves %d calls, its maximum (ipc.Options.MaxServed); try again when one has ended", ch.self, n)
		return
	}
	if !runtime {
		// Counted until its final message is queued, not until it leaves
		// the table: a call waiting to send its answer to a peer that
		// does not read still holds a goroutine.
		ch.serving.Add(1)
		t.counted = true
	}
	ch.tasks[s.CID] = t
	ch.lastPeerID = max(ch.lastPeerID, s.CID)
	j := job{t: t, h: h, args: s.Args}
	select {
	case ch.jobs <- j: // an idle worker took it
	default:
		ch.wg.Add(1)
		go ch.worker(j)
	}
	ch.mu.Unlock()
}

// job is one accepted call waiting for a goroutine to run it.
type job struct {
	t    *task
	h    Handler
	args protocol.Raw
}

// Workers that ran a served call wait for the next one, at most
// maxIdleWorkers of them and for at most workerIdle each. Reusing them
// saves starting a goroutine, and growing its stack, for every call; a burst
// of concurrent calls leaves workers behind for the next burst.
const (
	maxIdleWorkers = 1024
	workerIdle     = 5 * time.Second
)

// worker runs served calls until the channel ends or it has idled long
// enough.
func (ch *Channel) worker(j job) {
	defer ch.wg.Done()
	var idle *time.Timer
	for {
		j.t.run(j.h, j.args)
		if ch.idle.Add(1) > maxIdleWorkers {
			ch.idle.Add(-1)
			return
		}
		if idle == nil {
			idle = time.NewTimer(workerIdle)
			defer idle.Stop()
		} else {
			idle.Reset(workerIdle)
		}
		select {
		case j = <-ch.jobs:
			ch.idle.Add(-1)
		case <-ch.done:
			ch.idle.Add(-1)
			return
		case <-idle.C:
			ch.idle.Add(-1)
			return
		}
	}
}

func (t *task) run(h Handler, args protocol.Raw) {
	returned := false
	defer func() {
		if !returned {
			// runtime.Goexit (t.FailNow in a test helper, say) skips both
			// the return and recover; the caller must still get an answer.
			t.end(nil, errors.New(t.fn+": the served function exited its goroutine without returning (runtime.Goexit)"))
		}
	}()
	result, err := t.call(h, args)
	returned = true
	t.end(result, err)
}

// call runs the function, turning a panic into an error that keeps the
// panic's value and stack.
func (t *task) call(h Handler, args protocol.Raw) (result any, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: fmt.Sprint(v), Stack: string(debug.Stack())}
		}
	}()
	return h.handle(t, args)
}

// PanicError is a panic recovered in a served function.
type PanicError struct {
	Value string
	Stack string
}

func (e *PanicError) Error() string { return "panic: " + e.Value }

// ack sends StartAck: the arguments decoded and the function is running.
func (t *task) ack() {
	t.mu.Lock()
	t.acked = true
	t.mu.Unlock()
	t.ackMsg = envelope.StartAck{CID: t.cid, FuncKind: t.kind}
	t.ch.send(&t.ackMsg, flushLazy)
}

func (t *task) grant(items uint32) {
	t.mu.Lock()
	ended := t.ended
	t.mu.Unlock()
	if !ended {
		t.ch.send(&envelope.Credit{CID: t.cid, Items: items}, flushNow)
	}
}

// sendStarted sends a context's Started value, once.
func (t *task) sendStarted(v any) error {
	t.mu.Lock()
	if t.startedSent {
		t.mu.Unlock()
		return fmt.Errorf("%s: Started called twice", t.fn)
	}
	t.startedSent = true
	t.mu.Unlock()
	return encodePayload(v, func(raw protocol.Raw) error {
		return t.ch.send(&envelope.Started{CID: t.cid, Value: raw, Credit: uint32(t.ch.window)}, flushNow)
	})
}

// yield sends one item to the caller, waiting for credit.
func (t *task) yield(v any) error { return t.yieldContext(t.ctx, v) }

// yieldContext is yield with ctx, which ends with t.ctx, bounding the wait.
func (t *task) yieldContext(ctx context.Context, v any) error {
	t.mu.Lock()
	notStarted := t.kind == protocol.FuncContext && !t.startedSent
	stopped := t.stopSent
	t.mu.Unlock()
	if notStarted {
		return fmt.Errorf("%s: Send before Started", t.fn)
	}
	if stopped {
		return fmt.Errorf("%s: Send after CloseSend: %w", t.fn, ErrCallEnded)
	}
	return t.ch.sendItem(ctx, t.out, t.cid, v)
}

// closeSend ends this end's direction of a stream or context, once.
func (t *task) closeSend() error {
	t.mu.Lock()
	already := t.stopSent
	t.stopSent = true
	t.mu.Unlock()
	if already {
		return nil
	}
	return t.ch.send(&envelope.Stop{CID: t.cid}, flushNow)
}

// receive handles a message from the caller; it runs on the reader
// goroutine and never blocks.
func (t *task) receive(m envelope.Message) {
	switch m := m.(type) {
	case *envelope.Yield:
		t.mu.Lock()
		started := t.startedSent
		t.mu.Unlock()
		switch {
		case t.kind != protocol.FuncContext:
			t.violation(fmt.Sprintf("yield from the caller of a %s", t.kind))
		case !started:
			t.violation("yield from the caller before started")
		case !t.in.push(m.Value):
			t.violation("yield beyond the credit granted, or after stop")
		}
	case *envelope.Stop:
		if t.kind != protocol.FuncContext {
			t.violation(fmt.Sprintf("stop from the caller of a %s; cancel with %s", t.kind, fnCancel))
			return
		}
		t.in.finish(io.EOF)
	case *envelope.Credit:
		if t.out == nil {
			t.violation("credit for a func call")
			return
		}
		t.out.add(m.Items)
	default:
		t.violation(fmt.Sprintf("%s sent by the caller", m.Kind()))
	}
}

// violation fails the call because the caller broke the protocol.
func (t *task) violation(reason string) {
	perr := &ProtocolError{CID: t.cid, Reason: reason}
	t.mu.Lock()
	if t.violated == nil {
		t.violated = perr
	}
	t.mu.Unlock()
	t.ch.log.Warn("rejected a message from the caller", "cid", t.cid, "function", t.fn, "reason", reason)
	t.cancel(perr)
}

// cancelBy cancels the task at the request of actor by.
func (t *task) cancelBy(by protocol.ActorID) {
	t.mu.Lock()
	if t.cancelledBy.IsZero() {
		t.cancelledBy = by
	}
	t.mu.Unlock()
	t.cancel(&cancelCause{by: by})
}

// end sends the call's final messages and forgets the task.
func (t *task) end(result any, err error) {
	t.mu.Lock()
	t.ended = true
	if t.violated != nil {
		err = t.violated
	}
	needStarted := t.kind == protocol.FuncContext && !t.startedSent && err == nil
	needStop := t.kind != protocol.FuncUnary && !t.stopSent && err == nil
	t.mu.Unlock()

	ch := t.ch
	defer func() {
		ch.mu.Lock()
		delete(ch.ending, t)
		if ch.ended != nil { // a CancelServed waits
			close(ch.ended)
			ch.ended = nil
		}
		ch.mu.Unlock()
	}()
	if t.counted {
		defer ch.serving.Add(-1)
	}
	ch.mu.Lock()
	if ch.tasks[t.cid] == t {
		delete(ch.tasks, t.cid)
	}
	ch.ending[t] = struct{}{}
	t.gone.Store(true)
	ch.mu.Unlock()
	defer t.cancel(nil)
	if t.out != nil {
		t.out.finish(ErrCallEnded)
	}
	if t.in != nil {
		t.in.finish(ErrCallEnded)
	}

	if err == nil && needStarted {
		err = t.sendStarted(nil)
	}
	if err == nil && needStop {
		err = t.closeSend()
	}
	if err == nil && t.kind != protocol.FuncStream {
		err = encodePayload(result, func(raw protocol.Raw) error {
			t.retMsg = envelope.Return{CID: t.cid, Value: raw}
			err := ch.send(&t.retMsg, flushNow)
			t.retMsg.Value = nil // encoded: do not keep the encoder's buffer
			return err
		})
		if err == nil {
			return
		}
		err = fmt.Errorf("%s: sending the result: %w", t.fn, err)
	}
	if err == nil {
		return
	}
	sendErr := ch.send(&envelope.Error{CID: t.cid, Err: t.box(err)}, flushNow)
	if sendErr == nil {
		select {
		case <-ch.done: // queued on a channel that has ended: it goes nowhere
			sendErr = ch.Err()
		default:
		}
	}
	if sendErr != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		// The caller will never see this error: leave a trace of it. (A
		// cancellation here is only the channel's end, said again.)
		ch.log.Warn("a served function's error could not be sent to its caller", "function", t.fn, "error", err, "send_error", sendErr)
	}
}

// box turns an error from a served function into a RemoteError.
func (t *task) box(err error) *protocol.RemoteError { return t.boxAt(err, 1) }

// boxAt boxes err as an error depth levels down a group. An error from an
// actor further away is passed on, noting the hop and keeping what plain
// wrappers here added to it ("step 2: %w"). A group of errors (a nursery's
// *Error, an errors.Join) stays a group: each error it holds is boxed as a
// child. A group of one is passed on as the error it holds.
func (t *task) boxAt(err error, depth int) *protocol.RemoteError {
	self := t.ch.self
	plain := true // only plain wrappers, each of one error, so far
	for e := err; e != nil; {
		if re, ok := e.(*protocol.RemoteError); ok {
			relayed := re.RelayedThrough(self)
			if outer := err.Error(); plain && strings.Contains(outer, re.Error()) {
				relayed.Message = strings.Replace(outer, re.Error(), re.Message, 1)
			}
			return relayed
		}
		if g, ok := e.(interface{ Unwrap() []error }); ok {
			errs := g.Unwrap()
			if len(errs) == 1 {
				e, plain = errs[0], false
				continue
			}
			if len(errs) > 1 && depth < envelope.MaxErrorDepth {
				group := &protocol.RemoteError{Type: fmt.Sprintf("%T", err), Message: err.Error(), Source: self}
				group.Name, group.Data = protocol.RegisteredName(err)
				for _, c := range errs {
					group.Children = append(group.Children, t.boxAt(c, depth+1))
				}
				return group
			}
			break
		}
		e = errors.Unwrap(e)
	}
	e := &protocol.RemoteError{Type: fmt.Sprintf("%T", err), Message: err.Error(), Source: self}
	e.Name, e.Data = protocol.RegisteredName(err)
	var (
		pe *PanicError
		de *DecodeError
		pr *ProtocolError
	)
	switch {
	case errors.As(err, &pe):
		e.Code, e.Type, e.Message, e.Stack = protocol.CodePanic, "panic", pe.Value, pe.Stack
		return e
	case errors.As(err, &pr):
		e.Code = protocol.CodeProtocol
	case errors.As(err, &de) && de.What == "argument" && de.Function == t.fn:
		e.Code = protocol.CodeBadArgument
	case errors.Is(err, context.DeadlineExceeded):
		e.Code = protocol.CodeDeadline
	case errors.Is(err, context.Canceled):
		e.Code = protocol.CodeCancelled
		t.mu.Lock()
		e.Canceller = t.cancelledBy
		t.mu.Unlock()
		if e.Canceller.IsZero() {
			e.Canceller = self // the function cancelled itself
		}
	default:
		return e
	}
	e.Type = protocol.RuntimeType(e.Code)
	return e
}
