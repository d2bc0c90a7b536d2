package ipc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/arbor-go/arbor/internal/envelope"
	"github.com/arbor-go/arbor/protocol"
	"github.com/hashicorp/go-hclog"
)

// Options configure one end of a channel. The zero value of every field is a
// documented default; Open never modifies the Options it is given.
type Options struct {
	// Actor identifies this end to the peer. A zero UUID is replaced by a
	// fresh random one and an empty Name by "actor".
	Actor protocol.ActorID
	// Initiator is true on the side that spawned or dialed the peer; exactly
	// one side of a channel must set it.
	Initiator bool
	// Functions is what this end serves to the peer; nil serves only the
	// runtime functions (arbor.cancel, arbor.schema, arbor.ping).
	Functions *Table
	// MaxFrame is the largest frame body sent or accepted, in bytes; zero
	// means envelope.DefaultMaxFrame (16 MiB).
	MaxFrame int
	// Window is the credit, in items, that a stream consumer grants; it
	// bounds the memory a stream takes at Window items. Zero means
	// DefaultWindow (1024).
	Window int
	// CancelWait bounds how long a call whose ctx ended waits for the remote
	// task to end before it returns; zero means 1s.
	CancelWait time.Duration
	// MaxServed bounds the calls this end serves at once; a start past it
	// is refused with code "overloaded". Zero means DefaultMaxServed.
	MaxServed int
	// StallTimeout is how long the write queue may stay full (MaxQueue)
	// without the peer reading any of it before the channel ends with a
	// *PeerGoneError; zero means DefaultStallTimeout.
	StallTimeout time.Duration
	// Logger receives protocol errors from the peer and other diagnostics;
	// nil discards them.
	Logger hclog.Logger
	// BaseContext, if set, supplies the values (not the cancellation) of
	// every served call's ctx: an actor puts its logger there.
	BaseContext context.Context
	// Heartbeat, if positive, makes this end call arbor.ping every
	// Heartbeat and end the channel with a *PeerGoneError whose cause is a
	// *HeartbeatError once no byte at all has arrived from the peer for
	// two of them: the lifeline where a cut link delivers no end of stream
	// (a launcher's connection across a network). Any byte counts, so a
	// busy channel, or a large frame arriving slowly, needs no ping
	// answered in time. Zero: no heartbeat; the end of the stream is then
	// the only sign. Values under a millisecond are a millisecond.
	Heartbeat time.Duration
	// HelloSpec, on the initiator, is sent in its hello (PROTOCOL.md §12.7,
	// 1.3): the spec of a child started with ARBOR_SPEC=handshake, which
	// takes its identity from it. Package spawn sets it; nil sends none.
	HelloSpec protocol.Raw
	// SpecFromHello, on the responder, makes it read the initiator's hello
	// before it sends its own, and gives it the hello's spec and these
	// Options to complete: it sets the Actor this end then introduces
	// itself with, and may set Logger, BaseContext and Heartbeat, which
	// take effect from then on. A hello without a spec, or an error from
	// SpecFromHello, fails the handshake. Package spawn's child side sets
	// it when started with ARBOR_SPEC=handshake.
	SpecFromHello func(spec protocol.Raw, opts *Options) error
	// Via lists the actors the connection passes through between the two
	// ends, in the order bytes from the peer cross them: a relay through
	// the tree (package spawn's Dial). Every error the peer sends is noted
	// as relayed through each of them in turn, so that its relay path
	// names the hops, as if each had passed it on. Nil: a direct
	// connection.
	Via []protocol.ActorID
	// Explain, if set, is asked once why the peer went away, with the
	// connection error (io.EOF, a reset), before pending calls fail. What
	// it returns becomes the Cause of the *PeerGoneError they fail with;
	// package spawn uses it to report the child's exit status instead of a
	// bare end of stream. It may block briefly.
	Explain func(cause error) error
}

// Bounds on what a peer can make a channel hold, whatever it sends.
const (
	// MaxQueue is the bytes of frames waiting to be written past which a
	// sender waits for the writer (a reply, a stream item): a peer that
	// does not read holds at most this, plus one frame, here.
	MaxQueue = 4 << 20
	// DefaultMaxServed is Options.MaxServed's default.
	DefaultMaxServed = 1024
	// DefaultStallTimeout is Options.StallTimeout's default.
	DefaultStallTimeout = 30 * time.Second
	// writeChunk is how much one write takes at most, so that the stall
	// deadline measures progress, not the size of a batch.
	writeChunk = 256 << 10
)

// Channel is one end of an arbor channel: it serves this end's functions to
// the peer and lets this end call the peer's (see Func, Stream, Context).
//
// A Channel owns a reader goroutine, a writer goroutine (writer.go) and one
// goroutine per call it serves; Close waits for all of them.
//
// A channel ends once, in end, for the first of two reasons: Close
// (ErrClosed), or the connection failing, seen by the reader or the writer
// (lost: a *PeerGoneError). end fails the calls this end made and cancels
// the ones it serves; the writer then flushes what is queued and closes the
// connection. CancelServed is not an end: it cancels the served calls and
// waits for their answers, and an actor that stops calls it before Close so
// that no answer is lost.
type Channel struct {
	conn     io.ReadWriteCloser
	frames   *envelope.FrameReader
	self     protocol.ActorID
	peer     protocol.ActorID
	peerPID  int64
	funcs    *Table
	log      hclog.Logger
	maxFrame int
	window   int
	cwait    time.Duration
	served   int           // MaxServed
	stall    time.Duration // StallTimeout
	explain  func(error) error
	beat     time.Duration // Heartbeat
	via      []protocol.ActorID
	heard    atomic.Uint64 // reads that brought bytes from the peer, for the heartbeat

	// base is the parent of every served call's ctx. It only carries the
	// channel (for ChannelFrom) and is never cancelled: end cancels each
	// served call itself, which spares every call registering with, and
	// contending on, a shared parent.
	base context.Context

	mu          sync.Mutex
	calls       map[uint64]*call   // calls this end made, by id
	tasks       map[uint64]*task   // calls this end serves, by id
	ending      map[*task]struct{} // served calls out of tasks whose final message is not queued yet
	ended       chan struct{}      // if set, closed (and cleared) when a served call's final message is queued
	cancels     map[uint64]bool    // ids of calls sent without a caller (arbor.cancel, heartbeat pings) and not yet answered
	nextID      uint64             // the id of this end's next call
	parity      uint64             // nextID % 2, fixed at Open: read without mu
	lastPeerID  uint64             // the highest id the peer has used
	err         error              // why the channel ended; nil while it runs
	done        chan struct{}      // closed when err is set
	closeCalled bool
	losing      bool // lost has been called: the connection is broken

	w       writer        // the write side of conn
	closing chan struct{} // closed by Close: the writer flushes and exits
	serving atomic.Int64  // served calls counted against MaxServed, until their final message is queued

	// The reader's cache of the last call it routed a message to.
	routeCID  uint64
	routeCall *call
	routeTask *task

	jobs chan job       // accepted calls, to idle workers
	idle atomic.Int32   // workers waiting on jobs
	wg   sync.WaitGroup // reader, writer and workers
}

type channelKey struct{}

// ChannelFrom returns the channel a served function was called on, so it can
// call back the actor that called it.
func ChannelFrom(ctx context.Context) (*Channel, bool) {
	ch, ok := ctx.Value(channelKey{}).(*Channel)
	return ch, ok
}

// Open performs the handshake on conn and starts serving. It takes ownership
// of conn: conn is closed when the channel ends, and when Open fails. ctx
// bounds the handshake only.
func Open(ctx context.Context, conn io.ReadWriteCloser, opts Options) (*Channel, error) {
	self := opts.Actor
	if self.UUID == "" {
		self.UUID = protocol.NewUUID()
	}
	if self.Name == "" {
		self.Name = "actor"
	}
	ch := &Channel{
		conn:     conn,
		self:     self,
		funcs:    opts.Functions,
		log:      opts.Logger,
		maxFrame: opts.MaxFrame,
		window:   opts.Window,
		cwait:    opts.CancelWait,
		served:   opts.MaxServed,
		stall:    opts.StallTimeout,
		explain:  opts.Explain,
		beat:     opts.Heartbeat,
		via:      append([]protocol.ActorID(nil), opts.Via...),
		calls:    make(map[uint64]*call),
		cancels:  make(map[uint64]bool),
		tasks:    make(map[uint64]*task),
		ending:   make(map[*task]struct{}),
		done:     make(chan struct{}),
		jobs:     make(chan job),
		closing:  make(chan struct{}),
	}
	if ch.funcs == nil {
		ch.funcs = &Table{}
	}
	if ch.log == nil {
		ch.log = hclog.NewNullLogger()
	}
	if ch.maxFrame <= 0 {
		ch.maxFrame = envelope.DefaultMaxFrame
	}
	if ch.window <= 0 {
		ch.window = DefaultWindow
	}
	// The peer caps the credit it takes at MaxCredit, and this side grants
	// again after window/2 items: a larger window would never be granted
	// again.
	ch.window = min(ch.window, MaxCredit)
	if ch.cwait <= 0 {
		ch.cwait = time.Second
	}
	if ch.served <= 0 {
		ch.served = DefaultMaxServed
	}
	if ch.stall <= 0 {
		ch.stall = DefaultStallTimeout
	}
	ch.nextID = 2
	if opts.Initiator {
		ch.nextID = 1
	}
	ch.parity = ch.nextID % 2
	first := &firstBytes{r: conn, heard: &ch.heard}
	ch.frames = envelope.NewFrameReader(first, opts.MaxFrame)
	err := ch.handshake(ctx, &opts, first)
	first.stop()
	if err != nil {
		conn.Close()
		return nil, err
	}
	if opts.SpecFromHello != nil { // the spec completed opts
		ch.beat = opts.Heartbeat
		if opts.Logger != nil {
			ch.log = opts.Logger
		}
	}
	ch.log = ch.log.With("peer", ch.peer.String())
	base := context.Background()
	if opts.BaseContext != nil {
		base = context.WithoutCancel(opts.BaseContext)
	}
	ch.base = context.WithValue(base, channelKey{}, ch)
	ch.w = writer{conn: conn, fail: ch.lost, maxFrame: ch.maxFrame, stall: ch.stall, cwait: ch.cwait,
		closing: ch.closing, done: ch.done, ended: ch.Err}
	ch.w.init()
	ch.wg.Add(2)
	go ch.readLoop()
	go func() {
		defer ch.wg.Done()
		ch.w.loop()
	}()
	if ch.beat > 0 {
		ch.beat = max(ch.beat, time.Millisecond)
		ch.wg.Add(1)
		go ch.heartbeat()
	}
	return ch, nil
}

// heartbeat pings the peer every ch.beat and ends the channel once two
// beats have passed with nothing read from the peer. It looks four times a
// beat, so the end comes at most a quarter beat late. It sends without
// waiting for the answer (which is counted off like a cancellation's), so
// that a peer that does not answer cannot hold it up.
func (ch *Channel) heartbeat() {
	defer ch.wg.Done()
	look := time.NewTicker(ch.beat / 4)
	defer look.Stop()
	last, heardAt, pingedAt := ch.heard.Load(), time.Now(), time.Time{}
	for {
		var now time.Time
		select {
		case <-ch.done:
			return
		case now = <-look.C:
		}
		if n := ch.heard.Load(); n != last {
			last, heardAt = n, now
		} else if now.Sub(heardAt) >= 2*ch.beat {
			ch.lost(&HeartbeatError{Silence: 2 * ch.beat})
			return
		}
		if now.Sub(pingedAt) < ch.beat {
			continue
		}
		pingedAt = now
		// A full queue holds a ping back at most until the next look.
		ctx, cancel := context.WithTimeout(context.Background(), ch.beat/4)
		ch.sendStart(ctx, &envelope.Start{Function: fnPing, FuncKind: protocol.FuncUnary}, flushAsync,
			func(cid uint64) { ch.cancels[cid] = true })
		cancel()
	}
}

// firstBytes keeps the first bytes read from the peer during the handshake,
// so that a peer that is not an arbor actor can be quoted in the error.
type firstBytes struct {
	r     io.Reader
	heard *atomic.Uint64 // counts every read that brings bytes: the heartbeat's sign of life
	done  atomic.Bool    // set after the handshake; Read then only passes through
	mu    sync.Mutex
	seen  []byte
}

func (f *firstBytes) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if n > 0 {
		// Bytes, not frames: a large frame arriving slowly is life too.
		f.heard.Add(1)
	}
	if !f.done.Load() {
		f.mu.Lock()
		if len(f.seen) < 64 {
			f.seen = append(f.seen, p[:min(n, 64-len(f.seen))]...)
		}
		f.mu.Unlock()
	}
	return n, err
}

func (f *firstBytes) stop() { f.done.Store(true) }

func (f *firstBytes) bytes() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]byte(nil), f.seen...)
}

func (ch *Channel) handshake(ctx context.Context, opts *Options, first *firstBytes) error {
	initiator := opts.Initiator
	// The handshake runs before the reader and writer exist, so a ctx that
	// ends during it closes the connection to unblock the read.
	stop := context.AfterFunc(ctx, func() { ch.conn.Close() })
	defer stop()
	fail := func(reason string, received []byte, err error) error {
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return &HandshakeError{Reason: reason, Received: received, Err: err}
	}
	if opts.SpecFromHello != nil {
		return ch.handshakeForSpec(opts, first, fail)
	}
	hello := &envelope.Hello{Version: protocol.Current(), Actor: ch.self, PID: int64(os.Getpid()), Initiator: initiator, Spec: opts.HelloSpec}
	frame, err := envelope.AppendFrame(nil, hello, ch.maxFrame)
	if err != nil {
		return fail("encoding hello", nil, err)
	}
	// Send while reading: on an unbuffered connection (net.Pipe) each
	// side's write waits for the other's read.
	sent := make(chan error, 1)
	go func() {
		_, err := ch.conn.Write(frame)
		sent <- err
	}()
	_, err = ch.readHello(initiator, first, fail)
	if err != nil {
		ch.conn.Close() // unblocks the write if the peer never reads
		<-sent
		return err
	}
	if err := <-sent; err != nil {
		return fail("sending hello", nil, err)
	}
	return nil
}

// handshakeForSpec is the responder's handshake when its identity comes in
// the initiator's hello: read that hello first, then answer with its own.
func (ch *Channel) handshakeForSpec(opts *Options, first *firstBytes, fail func(string, []byte, error) error) error {
	peer, err := ch.readHello(false, first, fail)
	if err != nil {
		return err
	}
	if len(peer.Spec) == 0 {
		return fail(fmt.Sprintf("the parent's hello (protocol %s) carries no spec, which a child started with ARBOR_SPEC=handshake needs (1.3)", peer.Version), nil, nil)
	}
	if err := opts.SpecFromHello(peer.Spec, opts); err != nil {
		return fail("the spec in the parent's hello", nil, err)
	}
	if opts.Actor.UUID == "" {
		return fail("the spec in the parent's hello gives this actor no uuid", nil, nil)
	}
	ch.self = opts.Actor
	hello := &envelope.Hello{Version: protocol.Current(), Actor: ch.self, PID: int64(os.Getpid())}
	frame, err := envelope.AppendFrame(nil, hello, ch.maxFrame)
	if err == nil {
		_, err = ch.conn.Write(frame)
	}
	if err != nil {
		return fail("sending hello", nil, err)
	}
	return nil
}

// readHello reads and checks the peer's Hello.
func (ch *Channel) readHello(initiator bool, first *firstBytes, fail func(string, []byte, error) error) (*envelope.Hello, error) {
	body, err := ch.frames.Next()
	if err != nil {
		var tooLarge *envelope.FrameTooLargeError
		if errors.As(err, &tooLarge) {
			return nil, fail("the peer is not an arbor actor: its first bytes are not an arbor frame", first.bytes(), err)
		}
		return nil, fail("reading the peer's hello", first.bytes(), err)
	}
	m, err := envelope.DecodeMessage(body)
	if err != nil {
		return nil, fail("the peer is not an arbor actor: its first frame is not a message", first.bytes(), err)
	}
	peer, ok := m.(*envelope.Hello)
	if !ok {
		return nil, fail(fmt.Sprintf("the peer's first message is %s, not hello", m.Kind()), nil, nil)
	}
	if err := protocol.CheckVersion(peer.Version); err != nil {
		return nil, err
	}
	if peer.Initiator == initiator {
		side := "initiator"
		if !initiator {
			side = "acceptor"
		}
		return nil, fail(fmt.Sprintf("both ends claim to be the %s of the channel", side), nil, nil)
	}
	ch.peer, ch.peerPID = peer.Actor, peer.PID
	return peer, nil
}

// Self returns this end's actor id.
func (ch *Channel) Self() protocol.ActorID { return ch.self }

// Peer returns the actor id the peer sent in its Hello.
func (ch *Channel) Peer() protocol.ActorID { return ch.peer }

// PeerPID returns the process id the peer sent in its Hello.
func (ch *Channel) PeerPID() int64 { return ch.peerPID }

// Done is closed when the channel has ended, by Close or by losing the peer.
func (ch *Channel) Done() <-chan struct{} { return ch.done }

// Err returns why the channel ended (ErrClosed after Close, a
// *PeerGoneError when the peer went away), or nil while it runs.
func (ch *Channel) Err() error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.err
}

// Close ends the channel: served calls see their ctx cancelled, pending
// calls fail with ErrClosed, frames already queued are flushed (for at most
// Options.CancelWait, if the peer has stopped reading), and the connection
// is closed. It returns once the reader, the writer and every served call
// have returned, so it must not be called from a function the channel is
// serving (it would wait for itself), and a served function that ignores
// its ctx holds it. It is safe to call more than once.
func (ch *Channel) Close() error {
	ch.mu.Lock()
	first := !ch.closeCalled
	ch.closeCalled = true
	ch.mu.Unlock()
	if first {
		ch.end(ErrClosed)
		close(ch.closing)
	}
	// A peer that stopped reading must not hold Close: a write blocked on
	// it gets a deadline, and the connection is closed outright once
	// CancelWait has passed.
	if d, ok := ch.conn.(interface{ SetWriteDeadline(time.Time) error }); ok {
		d.SetWriteDeadline(time.Now().Add(ch.cwait))
	}
	force := time.AfterFunc(ch.cwait, func() { ch.conn.Close() })
	ch.wg.Wait()
	force.Stop()
	return nil
}

// CancelServed cancels every call this end is serving, with cause, and waits until
// they have all returned and sent their final messages, or until ctx ends.
// by is the actor on whose behalf they are cancelled (reported as the
// canceller); the zero id means this one. Calls the peer starts meanwhile
// are served as usual. An actor uses it to stop gracefully before Close.
// The calls of the functions named in spare go on (a relay through the
// actor, which ends once what it leads to has stopped); Close ends them.
func (ch *Channel) CancelServed(ctx context.Context, by protocol.ActorID, cause error, spare ...string) error {
	ch.mu.Lock()
	tasks := make([]*task, 0, len(ch.tasks)+len(ch.ending))
	for _, t := range ch.tasks {
		if !slices.Contains(spare, t.fn) {
			tasks = append(tasks, t)
		}
	}
	// A call that has returned and is still sending its result is waited
	// for too: closing the channel now would lose that result.
	for t := range ch.ending {
		tasks = append(tasks, t)
	}
	ch.mu.Unlock()
	if !by.IsZero() {
		// Calls the tasks make pass the canceller on (cancellerOf).
		cause = &cancelCause{by: by, reason: cause}
	}
	for _, t := range tasks {
		if !by.IsZero() {
			t.mu.Lock()
			if t.cancelledBy.IsZero() {
				t.cancelledBy = by
			}
			t.mu.Unlock()
		}
		t.cancel(cause)
	}
	for {
		ch.mu.Lock()
		left := false
		for _, t := range tasks {
			_, ending := ch.ending[t]
			if left = ending || ch.tasks[t.cid] == t; left {
				break
			}
		}
		if !left {
			ch.mu.Unlock()
			return nil
		}
		if ch.ended == nil {
			ch.ended = make(chan struct{})
		}
		ended := ch.ended
		ch.mu.Unlock()
		select {
		case <-ended:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// end records why the channel ended and fails everything that depends on
// it. The first reason wins.
func (ch *Channel) end(reason error) {
	ch.mu.Lock()
	if ch.err != nil {
		ch.mu.Unlock()
		return
	}
	ch.err = reason
	close(ch.done)
	calls := ch.calls
	ch.calls = map[uint64]*call{}
	ch.cancels = map[uint64]bool{}
	tasks := make([]*task, 0, len(ch.tasks))
	for _, t := range ch.tasks {
		tasks = append(tasks, t)
	}
	ch.mu.Unlock()

	if !errors.Is(reason, ErrClosed) {
		ch.log.Debug("channel ended", "reason", reason)
	}
	for _, c := range calls {
		c.finish(nil, reason)
	}
	// No task joins the table once err is set, so these are all of them.
	for _, t := range tasks {
		t.cancel(reason)
	}
}

// lost ends the channel because the connection failed.
func (ch *Channel) lost(cause error) {
	ch.mu.Lock()
	first := ch.err == nil && !ch.losing
	ch.losing = true
	ch.mu.Unlock()
	if !first {
		// The reader and a writer can both find the connection broken;
		// the first one explains and ends the channel.
		ch.conn.Close()
		return
	}
	if ch.explain != nil {
		cause = ch.explain(cause)
	}
	ch.end(&PeerGoneError{Peer: ch.peer, Cause: cause})
	// Closing the connection unblocks the reader, and the writer exits on
	// its own once it sees the channel has ended.
	ch.conn.Close()
	ch.w.kick()
}

// send queues one message. It fails only this message when the frame is too
// large, and returns the channel's error once it has ended.
func (ch *Channel) send(m envelope.Message, mode flushMode) error {
	return ch.w.queue(context.Background(), mode, func() (envelope.Message, error) { return m, nil })
}

// sendStart takes the next call id and queues the Start that uses it in
// one step, so that Starts leave in the order of their ids (PROTOCOL.md
// §5: a peer refuses an id below one it has seen). register, if set, runs
// with mu held and the new id.
func (ch *Channel) sendStart(ctx context.Context, start *envelope.Start, mode flushMode, register func(cid uint64)) error {
	return ch.w.queue(ctx, mode, func() (envelope.Message, error) {
		ch.mu.Lock()
		defer ch.mu.Unlock()
		if ch.err != nil {
			return nil, ch.err
		}
		start.CID = ch.nextID
		ch.nextID += 2
		if register != nil {
			register(start.CID)
		}
		return start, nil
	})
}

// readLoop reads frames and routes each message; it owns the decision that
// the peer is gone.
func (ch *Channel) readLoop() {
	defer ch.wg.Done()
	// Each message is routed before the next is decoded, and nothing keeps
	// a message (only its fields): the decoder's own messages serve.
	var dec envelope.Decoder
	for {
		body, err := ch.frames.Next()
		if err != nil {
			ch.lost(err)
			return
		}
		m, err := dec.Decode(body)
		if err != nil {
			// The frame boundary is intact, so one bad message costs only
			// itself and the call it belongs to: tell the peer and carry
			// on.
			ch.undecodable(err)
			continue
		}
		ch.route(m)
	}
}

// undecodable handles a well-framed message that does not decode: the call
// it belongs to, if the call id was read, fails, so that nobody waits for
// an answer that will not come.
func (ch *Channel) undecodable(err error) {
	perr := &ProtocolError{Reason: err.Error()}
	var me *envelope.MalformedError
	if !errors.As(err, &me) || me.CID == 0 {
		ch.reject(perr)
		return
	}
	perr.CID = me.CID
	if me.Kind == envelope.KindStart {
		// A start fails the call it would have begun, if that is a new
		// call of the peer's (PROTOCOL.md §10); a start cannot belong to a
		// call already running, so anything else is refused on cid 0.
		ch.mu.Lock()
		fresh := !ch.ownID(me.CID) && me.CID > ch.lastPeerID
		if fresh {
			ch.lastPeerID = me.CID
		}
		ch.mu.Unlock()
		if !fresh {
			ch.reject(perr)
			return
		}
		ch.report(&envelope.Error{CID: me.CID, Err: runtimeError(protocol.CodeProtocol, perr.Error(), ch.self)})
		return
	}
	ch.mu.Lock()
	c := ch.calls[me.CID]
	t := ch.tasks[me.CID]
	ch.mu.Unlock()
	switch {
	case ch.ownID(me.CID) && c != nil:
		c.violation(perr.Reason)
	case !ch.ownID(me.CID) && t != nil:
		t.violation(perr.Reason)
	default:
		ch.reject(perr)
	}
}

// reject reports a message this side cannot accept to the peer, as a
// channel-level Error (call id 0) that names the call in its text, and to
// the log.
func (ch *Channel) reject(perr *ProtocolError) {
	ch.log.Warn("rejected a message from the peer", "cid", perr.CID, "reason", perr.Reason)
	ch.report(&envelope.Error{Err: runtimeError(protocol.CodeProtocol, perr.Reason, ch.self)})
}

// runtimeError is an error the runtime makes itself, rather than boxes from
// a function's own error, with its pinned type (PROTOCOL.md §4).
func runtimeError(code protocol.ErrorCode, msg string, source protocol.ActorID) *protocol.RemoteError {
	return &protocol.RemoteError{Code: code, Type: protocol.RuntimeType(code), Message: msg, Source: source}
}

// maxReportBacklog bounds the bytes queued for a peer before answers to its
// bad messages are dropped: a peer that sends garbage and never reads must
// not make this side's memory grow without end.
const maxReportBacklog = 1 << 20

// report queues an answer the reader owes the peer, unless the peer is so
// far behind in reading that the answer would only pile up.
func (ch *Channel) report(m envelope.Message) {
	backlog := ch.w.backlog()
	// An answer to a start is never dropped: its caller waits for it, and
	// each costs the peer a start of its own. Answers about the channel
	// (cid 0, to garbage) are.
	if backlog > maxReportBacklog && envelope.CallID(m) == 0 {
		ch.log.Warn("dropped an answer to the peer: it is not reading", "queued_bytes", backlog, "kind", m.Kind())
		return
	}
	ch.send(m, flushReader)
}

// ownID reports whether cid numbers a call made by this end.
func (ch *Channel) ownID(cid uint64) bool { return cid%2 == ch.parity }

func (ch *Channel) route(m envelope.Message) {
	if start, ok := m.(*envelope.Start); ok {
		ch.accept(start)
		return
	}
	cid := envelope.CallID(m)
	if cid == 0 {
		switch m := m.(type) {
		case *envelope.Error:
			ch.log.Warn("the peer reported a protocol error", "error", m.Err)
		case *envelope.Hello:
			ch.reject(&ProtocolError{Reason: "hello after the handshake"})
		}
		return
	}
	// Messages come in runs for one call (a stream's items), so the reader
	// remembers the last call it routed to and skips the table for it.
	if cid == ch.routeCID {
		if c := ch.routeCall; c != nil && !c.ended() {
			c.receive(m)
			return
		}
		if t := ch.routeTask; t != nil && !t.gone.Load() {
			t.receive(m)
			return
		}
	}
	ch.mu.Lock()
	if ch.ownID(cid) {
		c, live := ch.calls[cid]
		issued := cid < ch.nextID
		ch.mu.Unlock()
		switch {
		case live:
			ch.routeCID, ch.routeCall, ch.routeTask = cid, c, nil
			c.receive(m)
		case !issued:
			ch.reject(&ProtocolError{CID: cid, Reason: fmt.Sprintf("%s for call id %d, which this side never used", m.Kind(), cid)})
		default:
			// A message for a call that has already ended here (abandoned
			// after a cancellation, say) is a late one: dropping it is
			// correct, but a real error it carries leaves a trace. The
			// answer to a cancellation is counted off.
			if _, final := m.(*envelope.StartAck); !final {
				ch.mu.Lock()
				answered := ch.cancels[cid]
				delete(ch.cancels, cid)
				ch.mu.Unlock()
				if answered {
					return
				}
			}
			if e, ok := m.(*envelope.Error); ok && e.Err != nil && e.Err.Code != protocol.CodeCancelled && e.Err.Code != protocol.CodeDeadline {
				ch.log.Warn("a remote error arrived after its call was abandoned", "cid", cid, "error", e.Err)
			}
		}
		return
	}
	t, live := ch.tasks[cid]
	seen := cid <= ch.lastPeerID
	ch.mu.Unlock()
	switch {
	case live:
		ch.routeCID, ch.routeCall, ch.routeTask = cid, nil, t
		t.receive(m)
	case !seen:
		ch.reject(&ProtocolError{CID: cid, Reason: fmt.Sprintf("%s for call id %d, which was never started", m.Kind(), cid)})
	}
}
