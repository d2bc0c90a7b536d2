package spawn

import (
	"bytes"
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/vectortest"
	"github.com/arbor-go/arbor/protocol"
	"github.com/vmihailenco/msgpack/v5"
)

// TestRegistryFindsTheTree: every actor of the tree is found by its full
// name, from the root and from inside an actor, and listed under its
// parent.
func TestRegistryFindsTheTree(t *testing.T) {
	ctx := context.Background()
	mid := start(t, Options{Name: "mid", Aliases: []string{"middle"}})
	grandchild := openTree(t, mid)
	e, err := Find(ctx, "root.mid.grandchild")
	if err != nil || e.PID != grandchild || e.Parent != mid.ID().UUID {
		t.Fatalf("Find(root.mid.grandchild) = %+v, %v; want pid %d under %s", e, err, grandchild, mid.ID())
	}
	if e, err := Find(ctx, "middle"); err != nil || e.UUID != mid.ID().UUID {
		t.Errorf("Find(middle), an alias, = %+v, %v", e, err)
	}
	// From inside an actor: the question goes up to the root.
	if e, err := find.Call(ctx, mid.Channel(), "root.mid.grandchild"); err != nil || e.PID != grandchild {
		t.Errorf("Find from inside root.mid = %+v, %v", e, err)
	}
	if _, err := find.Call(ctx, mid.Channel(), "root.nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Find of a name nobody has, from inside an actor: %v, want ErrNotFound", err)
	}
	list, err := List(ctx, "root.mid")
	if err != nil || len(list) != 2 || list[0].Name != "root.mid" || list[1].Name != "root.mid.grandchild" {
		t.Errorf("List(root.mid) = %+v, %v", list, err)
	}
	if _, err := Find(ctx, "root.nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Find(root.nobody) = %v, want ErrNotFound", err)
	}
}

// TestRegistryForgetsTheDead: an actor killed with SIGKILL leaves the
// registry as soon as its parent has reaped it, and its subtree with it.
func TestRegistryForgetsTheDead(t *testing.T) {
	ctx := context.Background()
	mid := start(t, Options{Name: "mid"})
	grandchild := openTree(t, mid)
	gone := func(name string) time.Duration {
		t.Helper()
		begin := time.Now()
		for time.Since(begin) < 10*time.Second {
			if _, err := Find(ctx, name); errors.Is(err, ErrNotFound) {
				return time.Since(begin)
			}
			time.Sleep(time.Millisecond)
		}
		t.Fatalf("%s is still registered 10 s after it was killed", name)
		return 0
	}
	syscall.Kill(grandchild, syscall.SIGKILL)
	t.Logf("a SIGKILLed grandchild left the registry in %v", gone("root.mid.grandchild").Round(time.Millisecond))
	if _, err := Find(ctx, "root.mid"); err != nil {
		t.Fatalf("its parent went with it: %v", err)
	}
	// A killed actor takes its subtree out of the registry with it.
	openTree(t, mid)
	syscall.Kill(mid.PID(), syscall.SIGKILL)
	t.Logf("a SIGKILLed actor left the registry in %v", gone("root.mid").Round(time.Millisecond))
	if _, err := Find(ctx, "root.mid.grandchild"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the killed actor's child is still registered: %v", err)
	}
	<-mid.Done()
	noChildrenLeft(t)
}

// TestRegistryWaitFor waits for a name that appears later, and ends with
// its ctx otherwise.
func TestRegistryWaitFor(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	found := make(chan Entry, 1)
	go func() {
		e, err := WaitFor(ctx, "root.late")
		if err != nil {
			t.Error(err)
		}
		found <- e
	}()
	late := start(t, Options{Name: "late"})
	if e := <-found; e.UUID != late.ID().UUID {
		t.Errorf("WaitFor(root.late) = %+v, want %s", e, late.ID())
	}
	short, stop := context.WithTimeout(ctx, 50*time.Millisecond)
	defer stop()
	if _, err := WaitFor(short, "root.never"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitFor of a name that never comes: %v", err)
	}
}

// TestRegistryDuplicates: of two living actors with one name, Find gives
// the one registered first; once it is gone, the other.
func TestRegistryDuplicates(t *testing.T) {
	ctx := context.Background()
	first := start(t, Options{Name: "twin"})
	second := start(t, Options{Name: "twin"})
	if e, err := Find(ctx, "root.twin"); err != nil || e.UUID != first.ID().UUID {
		t.Fatalf("Find(root.twin) = %+v, %v; want the first, %s", e, err, first.ID())
	}
	if l, _ := List(ctx, "root.twin"); len(l) != 2 || l[0].Seq > l[1].Seq {
		t.Errorf("List(root.twin) = %+v", l)
	}
	if err := first.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if e, err := Find(ctx, "root.twin"); err != nil || e.UUID != second.ID().UUID {
		t.Errorf("after the first stopped, Find(root.twin) = %+v, %v; want the second", e, err)
	}
}

// TestRegistryVector: an Entry on the wire is the args of the golden vector
// start-register (PROTOCOL.md §13), encoded as ipc encodes payloads.
func TestRegistryVector(t *testing.T) {
	want := vectortest.Payload(t, "start-register", "args")
	e := Entry{Name: "root.pool.worker-1", Aliases: []string{"cache"}, UUID: "c3d2e1f0-a9b8-4c7d-8e6f-5a4b3c2d1e0f",
		Parent: "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", PID: 70000, Host: "node-3", Addr: "/tmp/arbor-peer-1234/peer.sock"}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true) // as ipc's payloads
	if err := enc.Encode(e); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("an Entry encodes to\n%x\nthe vector holds\n%x", buf.Bytes(), want)
	}
	var back Entry
	if err := msgpack.Unmarshal(want, &back); err != nil || back.PID != 70000 || back.Aliases[0] != "cache" {
		t.Fatalf("the vector decodes to %+v, %v", back, err)
	}

	// return-find: the root's answer, numbered.
	found := vectortest.Payload(t, "return-find", "v")
	var got Entry
	if err := msgpack.Unmarshal(found, &got); err != nil || got.Seq != 7 || got.Name != e.Name {
		t.Fatalf("return-find decodes to %+v, %v", got, err)
	}

	// error-not-found: how ErrNotFound crosses, as this runtime boxes it.
	var ev struct {
		Err struct {
			Type, Msg, Name string
		} `json:"err"`
	}
	vectortest.Fields(t, "error-not-found", &ev)
	mid := start(t, Options{Name: "mid"})
	_, err := find.Call(context.Background(), mid.Channel(), "root.nobody")
	var re *protocol.RemoteError
	if !errors.As(err, &re) || re.Name != ev.Err.Name || re.Type != ev.Err.Type || re.Message != ev.Err.Msg {
		t.Errorf("ErrNotFound crosses as %+v; the vector says %+v", re, ev.Err)
	}
}

// TestRegistryDropsLateRegistrations: a registration that crossed its
// actor's removal (or its parent's) on the way up is dropped, not kept for
// ever.
func TestRegistryDropsLateRegistrations(t *testing.T) {
	r := newTreeRegistry()
	r.add(Entry{Name: "root.mid", UUID: "u-mid", Parent: rootID.UUID}, nil)
	r.remove("u-mid") // killed, its parent reaped it
	r.add(Entry{Name: "root.mid.leaf", UUID: "u-leaf", Parent: "u-mid"}, nil)
	r.add(Entry{Name: "root.mid", UUID: "u-mid", Parent: rootID.UUID}, nil)
	if l := r.list("root.mid"); len(l) != 0 {
		t.Errorf("late registrations kept: %+v", l)
	}
	r.add(Entry{Name: "root.other", UUID: "u-other", Parent: rootID.UUID, Aliases: []string{"o"}}, nil)
	if _, ok := r.find("o"); !ok {
		t.Error("a registration of a living actor was dropped")
	}
}
