package spawn

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/arbor-go/arbor/protocol"
)

// TestPeersCallEachOther: an actor finds its sibling by name and calls it
// directly, on a channel of their own: the sibling sees the caller, not
// the root, and streams to it.
func TestPeersCallEachOther(t *testing.T) {
	ctx := context.Background()
	a := start(t, Options{Name: "a"})
	start(t, Options{Name: "b"})
	got, err := callPeer.Call(ctx, a.Channel(), struct {
		Name string
		N    int
	}{"root.b", 1000})
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != "root.a" || got[1] != strconv.Itoa(999*1000/2) {
		t.Errorf("root.a's call to root.b: the callee saw %q, the stream summed to %s", got[0], got[1])
	}
	// The root dials an actor too.
	b, err := Dial(ctx, "root.b", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if who, err := whoCalls.Call(ctx, b, struct{}{}); err != nil || who != "root" {
		t.Errorf("the root's call to root.b: the callee saw %q, %v", who, err)
	}
	if _, err := Dial(ctx, "root.nobody", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("Dial of a name nobody has: %v", err)
	}
	if _, err := Dial(ctx, "root", nil); err == nil {
		t.Error("Dial to the root, which takes no peers, succeeded")
	}
}

// TestPeerWithoutTheSecretIsRefused: a connection to an actor's peer socket
// that does not present the tree's secret is closed, and the actor goes on.
func TestPeerWithoutTheSecretIsRefused(t *testing.T) {
	ctx := context.Background()
	b := start(t, Options{Name: "b"})
	e, err := Find(ctx, "root.b")
	if err != nil || e.Addr == "" {
		t.Fatalf("root.b: %+v, %v", e, err)
	}
	conn, err := net.Dial("unix", e.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "0000000000000000000000000000000000000000000000000000000000000000\n")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := conn.Read(make([]byte, 1)); err == nil || n > 0 {
		t.Errorf("the actor answered a peer without the secret: %d bytes, %v", n, err)
	}
	if got, err := echo.Call(ctx, b.Channel(), "still here"); err != nil || got != "still here" {
		t.Errorf("after the refusal: %q, %v", got, err)
	}
}

// TestStopActorByName: an actor stops its sibling by name. Every call the
// sibling was serving, on its parent's channel and on a peer's, ends as
// cancelled, naming the actor that asked, and the sibling exits.
func TestStopActorByName(t *testing.T) {
	ctx := context.Background()
	a := start(t, Options{Name: "a"})
	b := start(t, Options{Name: "b"})
	peer, err := Dial(ctx, "root.b", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	calls := []<-chan error{blockIn(t, b.Channel()), blockIn(t, peer)}
	if _, err := stopPeer.Call(ctx, a.Channel(), "root.b"); err != nil {
		t.Fatal(err)
	}
	var re *protocol.RemoteError
	for _, blocked := range calls {
		select {
		case err := <-blocked:
			if !errors.As(err, &re) || !errors.Is(err, context.Canceled) || re.Canceller.Name != "root.a" {
				t.Errorf("a call to the stopped actor ended with %v, want a cancellation by root.a", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("a call to the stopped actor did not end")
		}
	}
	select {
	case <-b.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the stopped actor did not exit")
	}
	if _, err := Find(ctx, "root.b"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the stopped actor is still registered: %v", err)
	}
}
