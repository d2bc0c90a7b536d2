package ipc

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// Calls that time out against a frozen peer (SIGSTOPped: it reads nothing
// and answers nothing) cost bounded memory; past the bound new calls fail
// at once with a typed error, and the channel's end frees it all (issue 10,
// item 8). Before, every call left its frames queued for ever.
func TestFrozenPeerBoundedMemory(t *testing.T) {
	conn, cmd := xprocPeerCmd(t, "serve")
	ch, err := Open(context.Background(), conn, Options{Initiator: true, CancelWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if sum, err := add.Call(context.Background(), ch, addArgs{1, 2}); err != nil || sum != 3 {
		t.Fatalf("warm-up call: %d, %v", sum, err)
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Signal(syscall.SIGCONT)
	before := heapInUse()

	const calls, workers = 50000, 32
	var next, stalled atomic.Int64
	var other error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= calls {
				ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
				_, err := add.Call(ctx, ch, addArgs{1, 2})
				cancel()
				var se *StalledError
				switch {
				case errors.As(err, &se):
					stalled.Add(1)
				case errors.Is(err, context.DeadlineExceeded):
				default:
					mu.Lock()
					other = err
					mu.Unlock()
				}
			}
		})
	}
	within(t, 60*time.Second, "50 000 calls to a frozen peer", wg.Wait)
	if other != nil {
		t.Fatalf("a call failed with %T %v: want a deadline or a StalledError", other, other)
	}
	held := int64(heapInUse()) - int64(before)
	t.Logf("50 000 timed-out calls to a frozen peer: %d failed fast as stalled; heap held: %d KiB", stalled.Load(), held/1024)
	if held > 4<<20 {
		t.Errorf("the frozen peer holds %d KiB of heap after 50 000 timed-out calls, want at most 4 MiB", held/1024)
	}
	if stalled.Load() == 0 {
		t.Errorf("no call failed fast: the bound on pending cancellations never applied")
	}
	// Thawed, the peer answers its cancellations and calls work again.
	cmd.Process.Signal(syscall.SIGCONT)
	eventually(t, 10*time.Second, "a call after the peer thawed", func() bool {
		sum, err := add.Call(context.Background(), ch, addArgs{2, 2})
		return err == nil && sum == 4
	})
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Kill()
	within(t, 5*time.Second, "the channel's end", func() { <-ch.Done() })
	if after := int64(heapInUse()) - int64(before); after > 1<<20 {
		t.Errorf("%d KiB still held after the channel ended", after/1024)
	}
}

// A caller's ctx bounds the call, even against a peer that answers
// nothing (issue 17, item 5): a call with a 1 ms timeout to a SIGSTOPped
// child returns with the deadline, not after CancelWait (here 10 s).
func TestDeadlineBoundsACallToAFrozenPeer(t *testing.T) {
	conn, cmd := xprocPeerCmd(t, "serve")
	ch, err := Open(context.Background(), conn, Options{Initiator: true, CancelWait: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Signal(syscall.SIGCONT)
	within(t, 3*time.Second, "a call with a 1 ms timeout", func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel()
		if _, err := add.Call(ctx, ch, addArgs{1, 2}); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got %v", err)
		}
	})
	cmd.Process.Kill()
}
