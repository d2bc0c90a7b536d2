package spawn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/protocol"
	"github.com/hashicorp/go-hclog"
)

// Relays (PROTOCOL.md §13.3): where no direct connection reaches an actor
// (it runs across a launcher, on another host or in another network
// namespace), Dial reaches it through the tree. The dialer opens the
// context function arbor.relay toward it on the channel to its parent, or
// to the child it is below; each actor on the way opens it again one hop
// further, down once it holds the target below it, up otherwise, and
// passes the bytes on in both directions; the target serves its functions
// on the bytes, as on a peer socket. The two ends then speak the protocol
// end to end: calls, streams, contexts, cancellation and errors work as on
// any channel, and each hop's credit holds the bytes in flight.

// relayArgs are arbor.relay's arguments.
type relayArgs struct {
	To   string             `msgpack:"to"`   // the target's uuid
	Name string             `msgpack:"name"` // its name, for errors
	Hops []protocol.ActorID `msgpack:"hops"` // the actors passed so far, the dialer's side first
}

// relayStarted is the target's started value: the whole path.
type relayStarted struct {
	Hops []protocol.ActorID `msgpack:"hops"`
}

var relayFunc = ipc.NewContext[relayArgs, relayStarted, []byte, []byte, struct{}]("arbor.relay", nil)

// relayHandler serves arbor.relay in every actor process and in every
// parent, on each channel of the tree.
var relayHandler = relayFunc.Implement(relayOn)

const (
	// maxRelayHops bounds a relay's path, as the tree's depth is bounded.
	maxRelayHops = 64
	// relayChunk is the most one item carries (PROTOCOL.md §13.3): a hop
	// holds at most its channel's window of them per direction (16 MiB
	// with the default window), and refuses a bigger one.
	relayChunk = 16 << 10
	// relayLinger is how long an end that has closed its direction waits
	// for the other's before it gives up on it.
	relayLinger = time.Second
)

// ErrNoRelay is the error of a relay toward an actor that does not take
// one: the root, or an actor in a language whose runtime does not serve
// arbor.relay.
var ErrNoRelay = errors.New("spawn: the actor takes no relayed connections")

func init() { protocol.RegisterSentinel("arbor.no_relay", ErrNoRelay) }

// relayServed is what this process serves at the end of a relay: its
// actor's functions, with the values of its calls' ctx. Set by runChild
// before its channel's handshake ends (during it, for a spec that comes in
// the hello); unset in the root.
var relayServed struct {
	mu    sync.Mutex
	funcs *ipc.Table
	base  context.Context
	log   hclog.Logger
	ends  map[*ipc.Channel]struct{} // the relays ending here, while they run; nil once closed
}

// relayOn is arbor.relay: the end of the relay here, or one hop on.
func relayOn(ctx context.Context, a relayArgs, s *ipc.Session[relayStarted, []byte, []byte]) (struct{}, error) {
	from, _ := ipc.ChannelFrom(ctx)
	if a.To == from.Self().UUID {
		return struct{}{}, endRelay(ctx, a, s)
	}
	if len(a.Hops) >= maxRelayHops {
		return struct{}{}, fmt.Errorf("spawn: the relay to %s passed %d actors without reaching it", a.Name, len(a.Hops))
	}
	next := nextHop(a.To, from)
	if next == nil {
		return struct{}{}, fmt.Errorf("spawn: relaying to %s (%s): %w", a.Name, a.To, ErrNotFound)
	}
	a.Hops = append(a.Hops, from.Self())
	on, err := relayFunc.Open(ctx, next, a)
	if err != nil {
		return struct{}{}, err
	}
	defer on.Close()
	if err := s.Started(on.Started()); err != nil {
		return struct{}{}, err
	}
	return struct{}{}, pass(s, on)
}

// nextHop is the channel a relay toward uuid that came in on from goes
// on: down to the child it is below, or else up; nil if neither (it came
// down, or this is the root, and the actor is not below).
func nextHop(uuid string, from *ipc.Channel) *ipc.Channel {
	if ch := below.route(uuid); ch != nil && ch != from {
		return ch
	}
	if up := parentChannel(); up != nil && up != from {
		return up
	}
	return nil
}

// pass copies the bytes between the two channels' calls, both ways, until
// the far side returns; its result is the relay's. Each side's closing of
// its direction is passed on as it comes. A direction that breaks (an item
// past relayChunk, a receive that fails) fails the whole relay.
func pass(s *ipc.Session[relayStarted, []byte, []byte], on *ipc.ContextCall[relayStarted, []byte, []byte, struct{}]) error {
	farEnded, stopForward := context.WithCancel(context.Background())
	back, breakBack := context.WithCancelCause(context.Background()) // bounds the sends back
	defer breakBack(nil)
	forward := make(chan struct{})
	var broke error // why the forward direction broke; read after forward closes

	// Forward, toward the far side; pass waits for it.
	go func() {
		defer close(forward)
		for {
			b, err := s.RecvContext(farEnded)
			if err == io.EOF {
				on.CloseSend()
				return
			}
			if err == nil {
				err = relayItem(b)
			}
			if err == nil {
				if on.Send(b) != nil {
					// The far call has ended (its return or error), or
					// ctx has: the loop below sees which.
					return
				}
				continue
			}
			if farEnded.Err() == nil { // broken, not ended by the loop below
				broke = err
				breakBack(err)
				on.Close()
			}
			return
		}
	}()
	var err error
	for {
		var b []byte
		if b, err = on.Recv(); err != nil {
			break
		}
		if err = relayItem(b); err != nil {
			break
		}
		if err = s.SendContext(back, b); err != nil {
			break
		}
	}
	if err == io.EOF {
		s.CloseSend()
		_, err = on.Result()
	}
	stopForward()
	if err != nil {
		on.Close() // a forward waiting for credit returns
	}
	<-forward
	if broke != nil {
		err = broke
	}
	return err
}

// relayItem checks one item of a relay: at most relayChunk bytes, which
// bounds what a hop holds.
func relayItem(b []byte) error {
	if len(b) > relayChunk {
		return fmt.Errorf("spawn: a relay's item of %d bytes, past the bound of %d", len(b), relayChunk)
	}
	return nil
}

// endRelay is the relay's end in the actor it is to: the actor serves its
// functions on it, as on a peer's connection, until either end closes it
// or the actor stops.
func endRelay(ctx context.Context, a relayArgs, s *ipc.Session[relayStarted, []byte, []byte]) error {
	relayServed.mu.Lock()
	funcs, base, log := relayServed.funcs, relayServed.base, relayServed.log
	open := relayServed.ends != nil
	relayServed.mu.Unlock()
	if funcs == nil || !open {
		return ErrNoRelay
	}
	if err := s.Started(relayStarted{Hops: a.Hops}); err != nil {
		return err
	}
	t := newTunnel(s.SendContext, s.RecvContext, s.CloseSend, nil)
	hctx, cancel := context.WithTimeout(ctx, DefaultHandshakeTimeout)
	defer cancel()
	from, _ := ipc.ChannelFrom(ctx)
	ch, err := ipc.Open(hctx, t, ipc.Options{Actor: from.Self(), Functions: funcs, Logger: log, BaseContext: base, Via: a.Hops})
	if err != nil {
		return err
	}
	relayServed.mu.Lock()
	if relayServed.ends == nil { // the actor is stopping
		relayServed.mu.Unlock()
		ch.Close()
		return ErrNoRelay
	}
	relayServed.ends[ch] = struct{}{}
	relayServed.mu.Unlock()
	select {
	case <-ch.Done():
	case <-ctx.Done():
	}
	relayServed.mu.Lock()
	if relayServed.ends != nil {
		delete(relayServed.ends, ch)
	}
	relayServed.mu.Unlock()
	ch.Close()
	return nil
}

// serveRelays makes this actor process the end of relays to it, serving
// funcs.
func serveRelays(funcs *ipc.Table, base context.Context, log hclog.Logger) {
	relayServed.mu.Lock()
	relayServed.funcs, relayServed.base, relayServed.log = funcs, base, log
	relayServed.ends = map[*ipc.Channel]struct{}{}
	relayServed.mu.Unlock()
}

// closeRelays cancels, on behalf of by, what the relays ending here serve,
// so that their answers go back before the relays do, and closes each
// whose calls have returned (the others, which ignore their cancellation,
// end with the process); no relay ends here after it.
func closeRelays(ctx context.Context, by protocol.ActorID, reason error) {
	relayServed.mu.Lock()
	ends := relayServed.ends
	relayServed.ends = nil
	relayServed.mu.Unlock()
	for ch := range ends {
		if ch.CancelServed(ctx, by, reason) == nil {
			ch.Close()
		}
	}
}

// dialRelay opens a channel to the actor e through the tree.
func dialRelay(ctx context.Context, e Entry, functions *ipc.Table) (*ipc.Channel, error) {
	next := nextHop(e.UUID, nil)
	if next == nil {
		return nil, fmt.Errorf("spawn: connecting to actor %s: %w", e.Name, ErrNotFound)
	}
	// The relay lasts as long as the channel, past ctx, which bounds
	// only the opening.
	life, end := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, end)
	on, err := relayFunc.Open(life, next, relayArgs{To: e.UUID, Name: e.Name})
	if err == nil {
		// Once both directions are closed, the call ends with the
		// target's return; only one that does not come is cancelled.
		t := newTunnel(on.SendContext, on.RecvContext, on.CloseSend, func() error {
			wait := time.AfterFunc(relayLinger, end)
			on.Result()
			wait.Stop()
			end()
			return nil
		})
		// Errors from the target cross the hops from its side first.
		via := slices.Clone(on.Started().Hops)
		slices.Reverse(via)
		var ch *ipc.Channel
		ch, err = ipc.Open(ctx, t, ipc.Options{Actor: actingAs(ctx), Initiator: true, Functions: functions, BaseContext: ctx, Via: via})
		if err == nil && ch.Peer().UUID != e.UUID {
			ch.Close()
			err = fmt.Errorf("spawn: the relay to %s reached %s", e.Name, ch.Peer())
		}
		if err == nil && !stop() { // ctx ended meanwhile, and with it the relay
			ch.Close()
			err = context.Cause(ctx)
		}
		if err == nil {
			return ch, nil
		}
	}
	stop()
	end()
	if errors.Is(err, protocol.ErrUnknownFunction) {
		err = fmt.Errorf("%w (it, or an actor on the way, does not serve arbor.relay): %w", ErrNoRelay, err)
	}
	return nil, fmt.Errorf("spawn: connecting to actor %s through the tree: %w", e.Name, err)
}

// tunnel is one end of a relay as a connection: each Write is sent as
// items of at most relayChunk, and Read reads the items the other end
// sent. Its write deadline bounds a Write's wait for credit, as a socket's
// bounds a write the peer does not read, so that the channel's
// StallTimeout and the CancelWait of its Close hold on a relay too.
type tunnel struct {
	send      func(context.Context, []byte) error
	recv      func(context.Context) ([]byte, error)
	closeSend func() error
	abandon   func() error // after Close: ends the relay here (nil: nothing)

	closed   context.Context // ends once Close has waited for the other end long enough
	stopRecv context.CancelFunc
	heard    chan struct{} // closed when Read has seen the other end's end
	once     sync.Once
	buf      []byte

	wmu      sync.Mutex
	writes   context.Context         // what a Write waits under: ends at the write deadline, or at Close
	endWrite context.CancelCauseFunc // ends writes
	deadline *time.Timer             // the write deadline's, if one is set
}

func newTunnel(send func(context.Context, []byte) error, recv func(context.Context) ([]byte, error), closeSend func() error, abandon func() error) *tunnel {
	t := &tunnel{send: send, recv: recv, closeSend: closeSend, abandon: abandon, heard: make(chan struct{})}
	t.closed, t.stopRecv = context.WithCancel(context.Background())
	t.writes, t.endWrite = context.WithCancelCause(context.Background())
	return t
}

func (t *tunnel) Read(p []byte) (int, error) {
	for len(t.buf) == 0 {
		b, err := t.recv(t.closed)
		if err != nil {
			select {
			case <-t.heard:
			default:
				close(t.heard)
			}
			return 0, err // io.EOF, or why the relay broke: a hop's error says where
		}
		t.buf = b
	}
	n := copy(p, t.buf)
	t.buf = t.buf[n:]
	return n, nil
}

func (t *tunnel) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), relayChunk)
		t.wmu.Lock()
		ctx := t.writes
		t.wmu.Unlock()
		if err := t.send(ctx, append([]byte(nil), p[:k]...)); err != nil {
			return n, err
		}
		n += k
		p = p[k:]
	}
	return n, nil
}

// SetWriteDeadline bounds the wait of Writes, as a socket's does: past d
// they fail with os.ErrDeadlineExceeded until a later deadline, or none
// (the zero d), is set. After Close, writes fail whatever the deadline.
func (t *tunnel) SetWriteDeadline(d time.Time) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if t.closed.Err() != nil { // Close has ended writes for good
		return nil
	}
	if t.deadline != nil && !t.deadline.Stop() || t.writes.Err() != nil {
		// Past the last deadline, or about to be: writes may go on again.
		t.writes, t.endWrite = context.WithCancelCause(context.Background())
	}
	t.deadline = nil
	if d.IsZero() {
		return nil
	}
	end := t.endWrite
	t.deadline = time.AfterFunc(time.Until(d), func() { end(os.ErrDeadlineExceeded) })
	return nil
}

// Close closes this end's direction, waits a moment for the other end's,
// so that what is in flight arrives, then ends the relay here and fails
// any Write still waiting.
func (t *tunnel) Close() error {
	t.once.Do(func() {
		t.closeSend()
		select {
		case <-t.heard:
		case <-time.After(relayLinger):
		}
		t.wmu.Lock()
		t.stopRecv() // under wmu: SetWriteDeadline then sees it
		if t.deadline != nil {
			t.deadline.Stop()
		}
		t.endWrite(net.ErrClosed)
		if context.Cause(t.writes) != net.ErrClosed { // a deadline had fired: its context stays ended, by it
			t.writes, t.endWrite = context.WithCancelCause(context.Background())
			t.endWrite(net.ErrClosed)
		}
		t.wmu.Unlock()
		if t.abandon != nil {
			t.abandon()
		}
	})
	return nil
}
