package ipc

import (
	"context"
	"errors"
	"sync"

	"github.com/arbor-go/arbor/internal/envelope"
	"github.com/arbor-go/arbor/protocol"
)

// DefaultWindow is the default number of stream items a consumer accepts
// before it grants more credit.
//
// A window of 1024 lets a producer in another process keep going while a
// grant makes its round trip: at 128, streams between processes on a 2-core
// machine ran at about half the speed (see BenchmarkStreamThroughput).
const DefaultWindow = 1024

// inbox is the consuming end of one stream direction. The channel's reader
// pushes into it without ever blocking; the consumer pops. The producer may
// send only what was granted, so the inbox never holds more than window
// items; a push beyond the credit granted is the producer's protocol
// violation. After every window/2 items consumed, the inbox grants that
// many again.
type inbox struct {
	grant  func(items uint32) // sends a Credit message
	window int

	mu       sync.Mutex
	items    []protocol.Raw
	head     int
	consumed int
	allowed  int   // credit granted and not yet used by the producer
	end      error // io.EOF after the producer's Stop, or why the call ended
	wake     chan struct{}
}

func newInbox(window int, grant func(uint32)) *inbox {
	return &inbox{grant: grant, window: window, allowed: window, wake: make(chan struct{}, 1)}
}

// push adds one item; it reports false when the producer exceeded its
// credit or the direction had already ended.
func (q *inbox) push(v protocol.Raw) bool {
	q.mu.Lock()
	if q.end != nil || q.allowed == 0 {
		q.mu.Unlock()
		return false
	}
	q.allowed--
	if q.head > 0 && len(q.items) == cap(q.items) {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, v)
	q.mu.Unlock()
	signal(q.wake)
	return true
}

// finish ends the direction: items already queued are still delivered, then
// pop returns err. Only the first call counts.
func (q *inbox) finish(err error) {
	q.mu.Lock()
	if q.end == nil {
		q.end = err
	}
	q.mu.Unlock()
	signal(q.wake)
}

// errWaitOver is what pop returns when its wait channel closes first.
var errWaitOver = errors.New("ipc: the wait for an item ended")

// pop waits for the next item, for the end of the direction, for ctx, or
// for wait to close (nil: no such bound), which leaves the direction as it
// is and returns errWaitOver.
func (q *inbox) pop(ctx context.Context, wait <-chan struct{}) (protocol.Raw, error) {
	for {
		q.mu.Lock()
		if q.head < len(q.items) {
			v := q.items[q.head]
			q.items[q.head] = nil
			q.head++
			q.consumed++
			var grant int
			if q.consumed >= max(q.window/2, 1) && q.end == nil {
				grant, q.consumed = q.consumed, 0
				q.allowed += grant
			}
			more := q.head < len(q.items)
			q.mu.Unlock()
			if more {
				signal(q.wake) // pass the wake-up on to another consumer
			}
			if grant > 0 {
				q.grant(uint32(grant))
			}
			return v, nil
		}
		end := q.end
		q.mu.Unlock()
		if end != nil {
			signal(q.wake)
			return nil, end
		}
		select {
		case <-q.wake:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-wait:
			return nil, errWaitOver
		}
	}
}

// outbox is the producing end of one stream direction: it counts the credit
// the consumer granted.
type outbox struct {
	mu     sync.Mutex
	credit int
	end    error
	wake   chan struct{}
}

// MaxCredit bounds the credit a peer can grant one stream direction: more
// is taken as MaxCredit. Credit is how many items the producer may send
// unread; the write queue's bound (MaxQueue) still holds whatever the
// credit.
const MaxCredit = 1 << 16

func newOutbox(initial int) *outbox {
	return &outbox{credit: min(initial, MaxCredit), wake: make(chan struct{}, 1)}
}

func (o *outbox) add(n uint32) {
	o.mu.Lock()
	o.credit = min(o.credit+int(n), MaxCredit)
	o.mu.Unlock()
	signal(o.wake)
}

func (o *outbox) finish(err error) {
	o.mu.Lock()
	if o.end == nil {
		o.end = err
	}
	o.mu.Unlock()
	signal(o.wake)
}

// acquire takes one unit of credit, waiting while there is none; it fails
// once ctx has ended, with credit or without.
func (o *outbox) acquire(ctx context.Context) error {
	for {
		// A cancelled call sends nothing more, whatever credit it has left.
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		default:
		}
		o.mu.Lock()
		if o.end != nil {
			err := o.end
			o.mu.Unlock()
			signal(o.wake)
			return err
		}
		if o.credit > 0 {
			o.credit--
			more := o.credit > 0
			o.mu.Unlock()
			if more {
				signal(o.wake)
			}
			return nil
		}
		o.mu.Unlock()
		select {
		case <-o.wake:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// signal wakes the one waiter of a capacity-1 channel without blocking.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// sendItem sends one stream item on call cid once out has credit for it,
// waiting while it has none. An item that cannot be sent (too large, not
// encodable) gives its credit back.
func (ch *Channel) sendItem(ctx context.Context, out *outbox, cid uint64, v any) error {
	if err := out.acquire(ctx); err != nil {
		return err
	}
	err := encodePayload(v, func(raw protocol.Raw) error {
		return ch.w.queue(ctx, flushAsync, func() (envelope.Message, error) {
			// queue holds the writer's mu while it encodes: one Yield
			// serves the channel.
			ch.w.yield = envelope.Yield{CID: cid, Value: raw}
			return &ch.w.yield, nil
		})
	})
	if err != nil {
		out.add(1)
	}
	return err
}
