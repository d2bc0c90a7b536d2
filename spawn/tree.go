package spawn

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/protocol"
)

// The tree's registry (PROTOCOL.md §13): the root process holds an entry
// for every actor of its tree while the actor lives. A parent registers
// each child it has started once the handshake is done, and unregisters
// it once it has reaped it; in an actor process, both go up the tree, hop
// by hop, to the root. Find, WaitFor and List ask the root the same way.
// No consensus and no service: the tree's own channels carry it.

// Entry is an actor of the tree, as the registry knows it.
type Entry struct {
	Name    string   `msgpack:"name"`    // full name: root.pool.worker-3
	Aliases []string `msgpack:"aliases"` // Options.Aliases: more names it answers to
	UUID    string   `msgpack:"uuid"`
	Parent  string   `msgpack:"parent"` // the parent's uuid; empty for the root
	PID     int      `msgpack:"pid"`    // on its host; the launcher's for one started through a Launcher
	Host    string   `msgpack:"host"`   // where its parent runs; "" across a launcher
	Addr    string   `msgpack:"addr"`   // its peer socket (Dial); "" if it takes no peers
	// Seq orders entries by registration: of two actors with a name, Find
	// gives the one registered first that still lives.
	Seq uint64 `msgpack:"seq"`
}

// ID is the entry's actor id.
func (e Entry) ID() protocol.ActorID { return protocol.ActorID{Name: e.Name, UUID: e.UUID} }

// ErrNotFound is Find's error when no living actor of the tree has the name.
var ErrNotFound = errors.New("spawn: no actor of that name in the tree")

// The registry's runtime functions (PROTOCOL.md §13), which every parent
// serves its children: each forwards to its own parent, or, in the root,
// answers. Declared first, implemented in init, as they call themselves
// up the tree.
var (
	fnRegister   = ipc.NewFunc[Entry, struct{}]("arbor.register", nil)
	fnUnregister = ipc.NewFunc[string, struct{}]("arbor.unregister", nil)
	fnFind       = ipc.NewFunc[string, Entry]("arbor.find", nil)
	fnWaitFor    = ipc.NewFunc[string, Entry]("arbor.wait_for", nil)
	fnList       = ipc.NewFunc[string, []Entry]("arbor.list", nil)
	treeFuncs    []ipc.Handler // the implementations, set in init
)

func init() {
	protocol.RegisterSentinel("arbor.not_found", ErrNotFound)
	treeFuncs = []ipc.Handler{
		fnRegister.Implement(func(ctx context.Context, e Entry) (struct{}, error) {
			via, _ := ipc.ChannelFrom(ctx) // the child it came up from
			return struct{}{}, register(ctx, e, via)
		}),
		fnUnregister.Implement(func(ctx context.Context, uuid string) (struct{}, error) { return struct{}{}, unregister(ctx, uuid) }),
		fnFind.Implement(Find),
		fnWaitFor.Implement(WaitFor),
		fnList.Implement(List),
		relayHandler,
	}
}

// upstream is the channel to this process's parent, in an actor process;
// nil in the root, which holds the registry. Set once, in runChild: ready
// is made before the channel opens and closed once ch is set.
var upstream struct {
	mu    sync.Mutex
	ready chan struct{}
	ch    *ipc.Channel
}

func parentChannel() *ipc.Channel {
	upstream.mu.Lock()
	ready := upstream.ready
	upstream.mu.Unlock()
	if ready != nil {
		<-ready
	}
	upstream.mu.Lock()
	defer upstream.mu.Unlock()
	return upstream.ch
}

// isAncestorName reports whether name is an ancestor's of actor, by their
// dotted full names: a stop on behalf of one is a stop from above.
func isAncestorName(name, actor string) bool { return strings.HasPrefix(actor, name+".") }

// Find returns the living actor of this tree named name (its full name or
// one of its aliases), or ErrNotFound. Of several with the name, it is the
// one registered first. It can be called from any process of the tree.
func Find(ctx context.Context, name string) (Entry, error) {
	if up := parentChannel(); up != nil {
		return fnFind.Call(ctx, up, name)
	}
	if e, ok := below.find(name); ok {
		return e, nil
	}
	return Entry{}, ErrNotFound
}

// WaitFor is Find that waits for the name to appear, until ctx ends.
func WaitFor(ctx context.Context, name string) (Entry, error) {
	if up := parentChannel(); up != nil {
		return fnWaitFor.Call(ctx, up, name)
	}
	for {
		changed := below.changes()
		if e, ok := below.find(name); ok {
			return e, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return Entry{}, context.Cause(ctx)
		}
	}
}

// List returns the living actors of the tree whose full name is prefix or
// starts with prefix and a dot (all of them for ""), by name, then by
// registration.
func List(ctx context.Context, prefix string) ([]Entry, error) {
	if up := parentChannel(); up != nil {
		return fnList.Call(ctx, up, prefix)
	}
	return below.list(prefix), nil
}

// register records e, reached through the child channel via, among the
// actors below this process (the routes of relays, relay.go), and passes
// it up; the root's record is the registry.
func register(ctx context.Context, e Entry, via *ipc.Channel) error {
	below.add(e, via)
	if up := parentChannel(); up != nil {
		_, err := fnRegister.Call(ctx, up, e)
		return err
	}
	return nil
}

// unregister removes the actor uuid and every actor below it: when an
// actor has ended, so has its subtree (or it is ending: each actor stops
// when its parent goes).
func unregister(ctx context.Context, uuid string) error {
	below.remove(uuid)
	if up := parentChannel(); up != nil {
		_, err := fnUnregister.Call(ctx, up, uuid)
		return err
	}
	return nil
}

// registryTimeout bounds a registration or an unregistration sent up the
// tree: a parent that does not answer must not hold a start or a reap.
const registryTimeout = 5 * time.Second

// enter registers a started actor; a parent that does not serve the
// registry (one before protocol 1.4, or in another language) is no error.
func (a *Actor) enter(ctx context.Context, opts Options, parent protocol.ActorID) {
	rctx, cancel := context.WithTimeout(ctx, registryTimeout)
	defer cancel()
	e := Entry{Name: a.proc.id.Name, Aliases: opts.Aliases, UUID: a.proc.id.UUID, Parent: parent.UUID, PID: a.proc.pid()}
	if !a.proc.launcher.remote {
		e.Host, _ = os.Hostname()
		// Where it takes peers (Dial); a child that does not say takes none.
		e.Addr, _ = peerAddrFunc.Call(rctx, a.ch, struct{}{})
		a.peerAddr = e.Addr
	}
	if err := register(rctx, e, a.ch); err != nil && !errors.Is(err, protocol.ErrUnknownFunction) {
		a.proc.log.Warn("the actor is not in the tree's registry: Find will not find it", "error", err)
	}
}

// leave unregisters an actor that has ended, and removes its peer socket's
// directory, which a child killed with SIGKILL leaves behind.
func (a *Actor) leave() {
	// Only a directory of the kind a child makes, where it makes them.
	if dir := filepath.Dir(a.peerAddr); a.peerAddr != "" && filepath.Dir(dir) == filepath.Clean(os.TempDir()) &&
		strings.HasPrefix(filepath.Base(dir), peerDirPrefix) {
		os.RemoveAll(dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), registryTimeout)
	defer cancel()
	if err := unregister(ctx, a.proc.id.UUID); err != nil && !errors.Is(err, protocol.ErrUnknownFunction) {
		a.proc.log.Debug("could not unregister the actor from the tree", "error", err)
	}
}

// below holds the actors below this process, as their registrations
// passed through it, with the child channel each is reached through: in
// the root, that is the tree's registry.
var below = newTreeRegistry()

type treeRegistry struct {
	mu      sync.Mutex
	seq     uint64
	byUUID  map[string]*Entry
	via     map[string]*ipc.Channel // by uuid: the channel to the child the actor is, or is below
	changed chan struct{}           // closed, and replaced, when an actor registers
	// gone remembers the uuids removed lately (at most maxGone): a
	// registration that arrives after its actor, or its parent, was
	// removed (it crossed the removal on the way up) is dropped.
	gone      map[string]bool
	goneOrder []string
}

const maxGone = 4096

func newTreeRegistry() *treeRegistry {
	return &treeRegistry{byUUID: map[string]*Entry{}, via: map[string]*ipc.Channel{}, changed: make(chan struct{})}
}

func (t *treeRegistry) changes() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.changed
}

func (t *treeRegistry) add(e Entry, via *ipc.Channel) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gone[e.UUID] || t.gone[e.Parent] {
		return
	}
	e.Aliases = append([]string(nil), e.Aliases...)
	t.seq++
	e.Seq = t.seq
	t.byUUID[e.UUID] = &e
	if via != nil {
		t.via[e.UUID] = via
	}
	close(t.changed)
	t.changed = make(chan struct{})
}

func (t *treeRegistry) remove(uuid string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	gone := map[string]bool{uuid: true}
	for grew := true; grew; { // and every entry below it
		grew = false
		for id, e := range t.byUUID {
			if !gone[id] && gone[e.Parent] {
				gone[id], grew = true, true
			}
		}
	}
	if t.gone == nil {
		t.gone = map[string]bool{}
	}
	for id := range gone {
		delete(t.byUUID, id)
		delete(t.via, id)
		if !t.gone[id] {
			t.gone[id] = true
			t.goneOrder = append(t.goneOrder, id)
		}
	}
	for len(t.goneOrder) > maxGone {
		delete(t.gone, t.goneOrder[0])
		t.goneOrder = t.goneOrder[1:]
	}
}

// route is the channel toward the actor uuid, if it is below this process.
func (t *treeRegistry) route(uuid string) *ipc.Channel {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.via[uuid]
}

func (t *treeRegistry) find(name string) (Entry, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var best *Entry
	for _, e := range t.byUUID {
		if (e.Name == name || contains(e.Aliases, name)) && (best == nil || e.Seq < best.Seq) {
			best = e
		}
	}
	if best == nil {
		if name == rootID.Name {
			return rootEntry(), true
		}
		return Entry{}, false
	}
	return *best, true
}

func (t *treeRegistry) list(prefix string) []Entry {
	t.mu.Lock()
	out := []Entry{}
	if prefix == "" || prefix == rootID.Name {
		out = append(out, rootEntry())
	}
	for _, e := range t.byUUID {
		if prefix == "" || e.Name == prefix || strings.HasPrefix(e.Name, prefix+".") {
			out = append(out, *e)
		}
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Seq < out[j].Seq
	})
	return out
}

// rootEntry is the root process itself.
func rootEntry() Entry {
	host, _ := os.Hostname()
	return Entry{Name: rootID.Name, UUID: rootID.UUID, PID: os.Getpid(), Host: host}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
