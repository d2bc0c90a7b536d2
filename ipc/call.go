package ipc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/arbor-go/arbor/internal/envelope"
	"github.com/arbor-go/arbor/protocol"
)

// call is one call this end made, from Start to its final message.
type call struct {
	ch      *Channel
	cid     uint64
	fn      string
	kind    protocol.FuncKind
	start   envelope.Start // what startCall sends, kept here to save an allocation
	in      *inbox         // the callee's Yields (streams, contexts)
	out     *outbox        // credit for Yields to the callee (contexts)
	started chan struct{}  // closed at Started (contexts)
	done    chan struct{}  // closed when the call has ended

	mu           sync.Mutex
	acked        bool
	gotStarted   bool
	startedValue protocol.Raw
	result       protocol.Raw
	err          error
	cancelSent   bool
	stopSent     bool
	unwatch      func() bool
	letGo        error       // why the caller returned before the call ended (let)
	letTimer     *time.Timer // ends a let call after CancelWait
}

// startCall registers a call and sends its Start. c is a new call, or nil
// for startCall to make one: a caller that allocates it together with its
// own state saves an allocation. For streams and contexts a ctx that ends
// asks the peer to cancel the remote task even when nobody is waiting on
// the call.
func (ch *Channel) startCall(ctx context.Context, c *call, fn string, kind protocol.FuncKind, args any) (*call, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c == nil {
		c = &call{}
	}
	c.ch, c.fn, c.kind, c.done = ch, fn, kind, make(chan struct{})
	start := &c.start
	*start = envelope.Start{Function: fn, FuncKind: kind}
	if kind != protocol.FuncUnary {
		c.in = newInbox(ch.window, c.grant)
		start.Credit = uint32(ch.window)
	}
	if kind == protocol.FuncContext {
		c.started = make(chan struct{})
		c.out = newOutbox(0)
	}
	if deadline, ok := ctx.Deadline(); ok {
		start.Timeout = max(time.Until(deadline), 1)
	}
	err := encodePayload(args, func(raw protocol.Raw) error {
		ch.mu.Lock()
		n := len(ch.cancels)
		ch.mu.Unlock()
		if n >= maxUnansweredCancels {
			return &StalledError{Peer: ch.peer, Unanswered: n}
		}
		start.Args = raw
		err := ch.sendStart(ctx, start, flushAsync, func(cid uint64) {
			c.cid = cid
			ch.calls[cid] = c
		})
		if err != nil && c.cid != 0 {
			ch.forget(c) // queued nothing: too large, say
		}
		start.Args = nil // encoded: do not keep the encoder's buffer
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("calling %s: %w", fn, err)
	}
	if kind != protocol.FuncUnary {
		stop := context.AfterFunc(ctx, func() { c.cancelRemote(cancellerOf(ctx)) })
		c.mu.Lock()
		c.unwatch = stop
		c.mu.Unlock()
		select {
		case <-c.done: // finished before the watch was in place
			stop()
		default:
		}
	}
	return c, nil
}

// forget removes c from the table of live calls; messages still arriving
// for it are then dropped as late.
func (ch *Channel) forget(c *call) {
	ch.mu.Lock()
	if ch.calls[c.cid] == c {
		delete(ch.calls, c.cid)
	}
	ch.mu.Unlock()
}

// ended reports whether the call has ended.
func (c *call) ended() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// grant gives the callee more credit for its Yields.
func (c *call) grant(items uint32) {
	select {
	case <-c.done:
	default:
		c.ch.send(&envelope.Credit{CID: c.cid, Items: items}, flushAsync)
	}
}

// finish ends the call once: with a result, a nil error after a stream's
// Stop, or an error.
func (c *call) finish(result protocol.Raw, err error) {
	c.mu.Lock()
	select {
	case <-c.done:
		c.mu.Unlock()
		return
	default:
	}
	c.result, c.err = result, err
	if c.out != nil {
		// Before done: once a caller has seen the end, no Send takes
		// credit left over.
		c.out.finish(ErrCallEnded)
	}
	close(c.done)
	unwatch := c.unwatch
	letGo, letTimer := c.letGo, c.letTimer
	c.mu.Unlock()
	if letTimer != nil {
		letTimer.Stop()
		var re *protocol.RemoteError
		if errors.As(err, &re) && re.Code != protocol.CodeCancelled && re.Code != protocol.CodeDeadline {
			// Nobody waits for the answer any more: leave a trace of it.
			c.ch.log.Warn("a remote error arrived after its call was abandoned", "cid", c.cid, "function", c.fn, "error", err, "abandoned", letGo)
		}
	}
	if unwatch != nil {
		unwatch()
	}
	if c.in != nil {
		if err == nil {
			err = io.EOF
		}
		c.in.finish(err)
	}
	c.ch.forget(c)
}

// violation ends the call because the callee broke the protocol, and asks
// the callee to cancel its side.
func (c *call) violation(reason string) {
	perr := &ProtocolError{CID: c.cid, Reason: reason}
	c.ch.reject(perr)
	c.cancelRemote(protocol.ActorID{})
	c.finish(nil, perr)
}

// maxUnansweredCancels bounds the cancellations sent to a peer and not yet
// answered. A peer that answers none (frozen, wedged, not reading) would
// otherwise make every call that times out leave its frames queued here
// for ever; past the bound new calls fail at once with a *StalledError, and
// cancellations are no longer sent (the calls they were for are abandoned
// here all the same).
const maxUnansweredCancels = 1024

// cancelRemote asks the peer to cancel the remote task, once, on behalf of
// actor by when the cancellation came from further up the tree (zero: this
// one). The request is itself a call (of arbor.cancel) whose answer nobody
// waits for: it arrives for an id this end issued and no longer tracks, and
// is counted off.
func (c *call) cancelRemote(by protocol.ActorID) {
	c.mu.Lock()
	ended := false
	select {
	case <-c.done:
		ended = true
	default:
	}
	if ended || c.cancelSent {
		c.mu.Unlock()
		return
	}
	c.cancelSent = true
	c.mu.Unlock()
	ch := c.ch
	encodePayload(cancelArgs{CID: c.cid, By: by}, func(raw protocol.Raw) error {
		ch.mu.Lock()
		n := len(ch.cancels)
		ch.mu.Unlock()
		if n >= maxUnansweredCancels {
			return nil
		}
		// Never held by a full queue: the reader sends this after a
		// callee's violation.
		return ch.sendStart(context.Background(), &envelope.Start{Function: fnCancel, FuncKind: protocol.FuncUnary, Args: raw}, flushReader,
			func(cid uint64) { ch.cancels[cid] = true })
	})
}

// abandon is what a caller does when its ctx ended: ask the peer to cancel
// (on behalf of by), wait a bounded time for the remote task to end, then
// stop tracking the call. It reports whether the call ended successfully
// meanwhile.
func (c *call) abandon(cause error, by protocol.ActorID) bool {
	c.cancelRemote(by)
	timer := time.NewTimer(c.ch.cwait)
	defer timer.Stop()
	select {
	case <-c.done:
	case <-timer.C:
	}
	c.finish(nil, cause)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err == nil
}

// giveUp is what a caller does when its ctx ended, and reports whether the
// call had ended successfully meanwhile. A deadline is a promise about
// time: the caller returns at once (let). A cancellation waits, a bounded
// time, for the remote task to end (abandon), so that when the call
// returns the remote work has stopped and its own error, if it had one,
// is returned with the cancellation.
func (c *call) giveUp(ctx context.Context) bool {
	cause, by := ctx.Err(), cancellerOf(ctx)
	if errors.Is(cause, context.DeadlineExceeded) {
		return c.let(cause, by)
	}
	return c.abandon(cause, by)
}

// cancellerOf is Canceller for a ctx that has ended.
func cancellerOf(ctx context.Context) protocol.ActorID {
	var cc *cancelCause
	if errors.As(context.Cause(ctx), &cc) {
		return cc.by
	}
	return protocol.ActorID{}
}

// Canceller reports the actor on whose behalf ctx was cancelled: for the ctx
// of a served call (or one derived from it) cancelled by its caller, the
// actor that asked for the cancellation, which may be further up the tree
// than the caller; for a ctx given to WithCanceller, the actor given. It is
// zero when nothing names one (this process cancelled ctx itself).
//
// Calls made with a cancelled ctx pass its canceller on with arbor.cancel
// (PROTOCOL.md §9), so that an actor further down names the one that asked.
func Canceller(ctx context.Context) protocol.ActorID {
	if by, ok := ctx.Value(cancellerKey{}).(protocol.ActorID); ok {
		return by
	}
	return cancellerOf(ctx)
}

type cancellerKey struct{}

// WithCanceller returns a copy of ctx that names by as its canceller, for
// work done on behalf of a cancellation that ctx itself does not carry: a
// nursery stopping its actors, with a ctx that must outlive its own, because
// by cancelled it.
func WithCanceller(ctx context.Context, by protocol.ActorID) context.Context {
	return context.WithValue(ctx, cancellerKey{}, by)
}

// let is what a caller does when its ctx's deadline passed: ask the peer to cancel and
// return at once, leaving the call to the channel, which waits for the
// remote task's end (at most CancelWait) and logs a real error that then
// arrives: the ctx bounds the call, not the peer. It reports whether the
// call had already ended successfully.
func (c *call) let(cause error, by protocol.ActorID) bool {
	c.cancelRemote(by)
	c.mu.Lock()
	select {
	case <-c.done:
		ok := c.err == nil
		c.mu.Unlock()
		return ok
	default:
	}
	if c.letTimer != nil { // already let go (a stream's Recv, again)
		c.mu.Unlock()
		return false
	}
	c.letGo = cause
	c.letTimer = time.AfterFunc(c.ch.cwait, func() { c.finish(nil, cause) })
	c.mu.Unlock()
	return false
}

// abandonedErr is the error of a call abandoned because of cause: cause,
// or, when the remote function ended meanwhile with an error that is not
// the cancellation, both.
func (c *call) abandonedErr(cause error) error {
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	var re *protocol.RemoteError
	if !errors.As(err, &re) || re.Code == protocol.CodeCancelled || re.Code == protocol.CodeDeadline {
		return cause
	}
	return &AbandonedError{Cause: cause, Remote: err}
}

// wait waits for the final result of a unary or context call.
func (c *call) wait(ctx context.Context) (protocol.Raw, error) {
	select {
	case <-c.done:
	case <-ctx.Done():
		if !c.giveUp(ctx) {
			return nil, c.abandonedErr(ctx.Err())
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.result, c.err
}

// receive handles a message from the callee; it runs on the reader
// goroutine and never blocks.
func (c *call) receive(m envelope.Message) {
	switch m := m.(type) {
	case *envelope.StartAck:
		c.mu.Lock()
		dup := c.acked
		c.acked = true
		c.mu.Unlock()
		if dup {
			c.violation("startack twice")
		} else if m.FuncKind != c.kind {
			c.violation(fmt.Sprintf("startack for a %s, but %s was called as a %s", m.FuncKind, c.fn, c.kind))
		}
	case *envelope.Started:
		if c.kind != protocol.FuncContext {
			c.violation(fmt.Sprintf("started on a %s call", c.kind))
			return
		}
		c.mu.Lock()
		dup := c.gotStarted
		if !dup {
			c.gotStarted, c.startedValue = true, m.Value
		}
		c.mu.Unlock()
		if dup {
			c.violation("started twice")
			return
		}
		c.out.add(m.Credit)
		close(c.started)
	case *envelope.Yield:
		if c.kind == protocol.FuncUnary {
			c.violation("yield on a func call")
			return
		}
		if c.kind == protocol.FuncContext {
			c.mu.Lock()
			ok := c.gotStarted
			c.mu.Unlock()
			if !ok {
				c.violation("yield before started")
				return
			}
		}
		if !c.in.push(m.Value) {
			c.violation("yield beyond the credit granted, or after stop")
		}
	case *envelope.Stop:
		switch c.kind {
		case protocol.FuncStream:
			c.finish(nil, nil)
		case protocol.FuncContext:
			c.in.finish(io.EOF)
		default:
			c.violation("stop on a func call")
		}
	case *envelope.Return:
		if c.kind == protocol.FuncStream {
			c.violation("return on a stream call; a stream ends with stop")
			return
		}
		c.finish(m.Value, nil)
	case *envelope.Error:
		if m.Err == nil {
			m.Err = &protocol.RemoteError{Code: protocol.CodeProtocol, Message: "error without details"}
		}
		for _, hop := range c.ch.via {
			m.Err = m.Err.RelayedThrough(hop)
		}
		c.finish(nil, m.Err)
	case *envelope.Credit:
		if c.kind != protocol.FuncContext {
			c.violation(fmt.Sprintf("credit on a %s call", c.kind))
			return
		}
		c.out.add(m.Items)
	default:
		c.violation(fmt.Sprintf("unexpected %s", m.Kind()))
	}
}

// sendYield sends one item to the callee of a context, waiting for credit.
func (c *call) sendYield(ctx context.Context, v any) error {
	c.mu.Lock()
	stopped := c.stopSent
	c.mu.Unlock()
	if stopped {
		return fmt.Errorf("%s: send after CloseSend: %w", c.fn, ErrCallEnded)
	}
	return c.ch.sendItem(ctx, c.out, c.cid, v)
}

// closeSend ends the caller's direction of a context, once.
func (c *call) closeSend() error {
	c.mu.Lock()
	already := c.stopSent
	c.stopSent = true
	c.mu.Unlock()
	select {
	case <-c.done:
		return nil
	default:
	}
	if already {
		return nil
	}
	return c.ch.send(&envelope.Stop{CID: c.cid}, flushAsync)
}
