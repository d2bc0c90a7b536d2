package ipc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/arbor-go/arbor/internal/envelope"
)

// A writer owns the write side of a channel's connection. Its rules:
//
//  1. Every frame goes through queue, which appends it to buf under mu:
//     frames leave whole, in the order they were queued.
//  2. One goroutine writes at a time, the one that set writing. It writes
//     until buf is empty (flushLocked), taking the frames others queue
//     meanwhile: they append and leave.
//  3. The sender's flushMode says who writes: the sender itself (flushNow,
//     a served call's answer: a hand-off saved), the writer goroutine
//     (flushAsync: the reader never blocks on a peer that does not read,
//     and a caller's ctx can always end its wait), or whoever writes next
//     (flushLazy, within lazyDelay at the latest).
//  4. buf holds about MaxQueue bytes at most: a sender that finds it full
//     waits for room, a wait its ctx can end (the reader's own answers
//     never wait). While a sender waits, the write in progress must make
//     progress within stall, or it fails.
//  5. The first write error is kept in err: what is queued is dropped,
//     every sender gets err from then on, and fail (the channel's lost)
//     hears it once.
//  6. loop, the writer goroutine, stops when the channel ends or closes:
//     it lets a write in progress finish (bounded by cwait where the
//     connection has write deadlines), writes what is left, and closes
//     the connection.
type writer struct {
	conn     io.WriteCloser
	fail     func(error)     // told of the first write error
	maxFrame int             // Options.MaxFrame
	stall    time.Duration   // Options.StallTimeout
	cwait    time.Duration   // Options.CancelWait: the last flush's bound
	closing  <-chan struct{} // closed by Close
	done     <-chan struct{} // closed when the channel ends
	ended    func() error    // why the channel ended: what a send after its end returns

	mu         sync.Mutex
	cond       *sync.Cond     // signalled when writing becomes false
	room       chan struct{}  // closed (and replaced) when the queue is taken or the writer fails, if roomWanted
	roomWanted bool           // a sender waits on room
	buf        []byte         // frames waiting to be written
	spare      []byte         // the last batch written, for buf to reuse
	yield      envelope.Yield // the Yield being queued (sendItem), under mu
	writing    bool           // a goroutine is writing; it empties buf before it stops
	err        error
	lazy       *time.Timer // wakes the writer goroutine for frames queued with flushLazy
	lazyArmed  bool
	wake       chan struct{} // wakes the writer goroutine
	stalled    atomic.Bool   // senders wait for a full queue: writes have a deadline
}

func (w *writer) init() {
	w.cond = sync.NewCond(&w.mu)
	w.room = make(chan struct{})
	w.wake = make(chan struct{}, 1)
	w.lazy = time.AfterFunc(time.Hour, w.kick)
	w.lazy.Stop()
}

// kick wakes the writer goroutine.
func (w *writer) kick() { signal(w.wake) }

// backlog returns the bytes queued and not yet taken for writing.
func (w *writer) backlog() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.buf)
}

// How a queued frame reaches the connection.
type flushMode uint8

const (
	// flushNow: the sending goroutine writes the queue itself unless a
	// write is already in progress (whose writer then takes this frame
	// too). Served calls use it for their answers, saving a hand-off.
	flushNow flushMode = iota
	// flushAsync: the writer goroutine writes it. The reader and every
	// caller use this, so that the reader never blocks on a peer that is
	// not reading and a caller's ctx can always end its wait.
	flushAsync
	// flushLazy: the frame goes out with the next one, or within lazyDelay.
	// StartAck uses it, so that a quick call's StartAck and Return share
	// one write.
	flushLazy
	// flushReader: as flushAsync, for the reader's own messages, which
	// never wait for a full queue.
	flushReader
)

// lazyDelay bounds how long a lazily queued frame may wait.
const lazyDelay = time.Millisecond

// queue appends the message next gives (called with w.mu held: nothing is
// queued between) and flushes it as mode says. Locks: w.mu, then the
// channel's mu (sendStart).
func (w *writer) queue(ctx context.Context, mode flushMode, next func() (envelope.Message, error)) error {
	w.mu.Lock()
	// A full queue holds the sender until the writer has taken it: what
	// a peer that does not read makes this side hold is bounded. The wait
	// ends with the sender's ctx. The reader never waits here.
	for len(w.buf) >= MaxQueue && w.err == nil && mode != flushReader {
		// The write in progress must now make progress within the stall
		// timeout, or the channel ends.
		if w.stalled.CompareAndSwap(false, true) && !w.isClosing() {
			w.setWriteDeadline(time.Now().Add(w.stall))
		}
		room := w.room
		w.roomWanted = true
		if !w.writing {
			signal(w.wake) // the writer goroutine takes it: no write here that ctx cannot end
		}
		w.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		w.mu.Lock()
	}
	if mode == flushReader {
		mode = flushAsync
	}
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return err
	}
	m, err := next()
	if err != nil {
		w.mu.Unlock()
		return err
	}
	w.buf, err = envelope.AppendFrame(w.buf, m, w.maxFrame)
	switch {
	case err != nil || w.writing:
		w.mu.Unlock()
	case mode == flushLazy:
		if !w.lazyArmed {
			w.lazyArmed = true
			w.lazy.Reset(lazyDelay)
		}
		w.mu.Unlock()
	case mode == flushAsync:
		w.mu.Unlock()
		signal(w.wake)
	default:
		w.writing = true
		w.flushLocked()
	}
	return err
}

// flushLocked writes the queue until it is empty. It is called with mu
// held and writing set by the caller, and returns with mu released.
func (w *writer) flushLocked() {
	for len(w.buf) > 0 && w.err == nil {
		batch := w.buf
		w.buf = w.spare[:0]
		w.lazyArmed = false
		if w.stalled.Load() {
			// The queue is empty again: no sender waits on the peer.
			w.stalled.Store(false)
			if !w.isClosing() {
				w.setWriteDeadline(time.Time{})
			}
		}
		if w.roomWanted { // senders held by a full queue may queue again
			close(w.room)
			w.room, w.roomWanted = make(chan struct{}), false
		}
		w.mu.Unlock()
		err := w.write(batch)
		if cap(batch) > 1<<20 {
			batch = nil // let a huge batch go rather than keep it
		}
		w.mu.Lock()
		w.spare = batch[:0]
		if err != nil && w.err == nil {
			w.err = err
			w.buf = nil
			w.writing = false
			w.cond.Broadcast()
			close(w.room) // senders waiting for room see the error
			w.room, w.roomWanted = make(chan struct{}), false
			w.mu.Unlock()
			w.fail(err)
			return
		}
	}
	w.writing = false
	w.cond.Broadcast()
	w.mu.Unlock()
}

// isClosing reports whether Close has been called: its own write deadline
// then rules.
func (w *writer) isClosing() bool {
	select {
	case <-w.closing:
		return true
	default:
		return false
	}
}

// setWriteDeadline sets the connection's write deadline, where it has one.
func (w *writer) setWriteDeadline(t time.Time) {
	if d, ok := w.conn.(interface{ SetWriteDeadline(time.Time) error }); ok {
		d.SetWriteDeadline(t)
	}
}

// write writes a batch, in chunks. While senders wait for a full queue
// (stalled), each chunk must go within the stall timeout: a peer that
// stopped reading then ends the channel rather than holding its senders
// for ever.
func (w *writer) write(batch []byte) error {
	for len(batch) > 0 {
		n, err := w.conn.Write(batch[:min(len(batch), writeChunk)])
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && w.stalled.Load() {
				err = fmt.Errorf("the peer read nothing for %v while the write queue was full (%d bytes): %w", w.stall, MaxQueue, err)
			}
			return err
		}
		batch = batch[n:]
		if w.stalled.Load() && !w.isClosing() {
			w.setWriteDeadline(time.Now().Add(w.stall)) // progress: the clock starts again
		}
	}
	return nil
}

// loop writes what other goroutines queued without writing it
// themselves, and flushes the queue when the channel closes.
func (w *writer) loop() {
	for {
		closing := false
		select {
		case <-w.wake:
		case <-w.closing:
			closing = true
		case <-w.done:
			closing = true
		}
		w.mu.Lock()
		if closing {
			// Let a write in progress finish, bounded by a deadline where
			// the connection has one, then flush what is left and stop.
			if d, ok := w.conn.(interface{ SetWriteDeadline(time.Time) error }); ok {
				d.SetWriteDeadline(time.Now().Add(w.cwait))
			}
			for w.writing {
				w.cond.Wait()
			}
			w.writing = true
			w.flushLocked()
			w.mu.Lock()
			if w.err == nil {
				w.err = ErrClosed
				if w.ended != nil && w.ended() != nil {
					w.err = w.ended() // a lost peer, say, rather than a bare "closed"
				}
			}
			w.buf = nil
			w.mu.Unlock()
			w.lazy.Stop()
			w.conn.Close()
			return
		}
		if w.writing {
			w.mu.Unlock() // the goroutine writing will take the queue
			continue
		}
		w.writing = true
		w.flushLocked()
	}
}
