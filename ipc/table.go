package ipc

import (
	"context"
	"reflect"
	"sort"
	"strings"

	"github.com/arbor-go/arbor/protocol"
)

// Handler is a declared function that a Table can serve: a *Func, *Stream
// or *Context with an implementation.
type Handler interface {
	// Schema describes the function's name, kind and types.
	Schema() protocol.Schema
	// handle decodes the arguments, acknowledges the call and runs the
	// implementation; the result is encoded by the caller of handle.
	handle(t *task, args protocol.Raw) (result any, err error)
	// newTask allocates a task with the handler's state for one call.
	newTask() *task
	implemented() bool
	name() string
	funcKind() protocol.FuncKind
}

var (
	_ Handler = (*Func[int, int])(nil)
	_ Handler = (*Stream[int, int])(nil)
	_ Handler = (*Context[int, int, int, int, int])(nil)
)

// ReservedPrefix starts the names of the runtime's own functions; no
// declared function may use it.
const ReservedPrefix = "arbor."

// Table is the set of functions an endpoint serves. It is immutable once
// built and safe to share between channels.
type Table struct {
	byName  map[string]Handler
	runtime map[string]Handler // extra arbor.* functions, from WithRuntime
}

// NewTable builds a table from declared functions. It fails with a
// *TableError for an empty or reserved name, a name used twice, or a
// declaration without an implementation.
func NewTable(handlers ...Handler) (*Table, error) {
	t := &Table{byName: make(map[string]Handler, len(handlers))}
	for _, h := range handlers {
		name := h.name()
		switch {
		case name == "":
			return nil, &TableError{Function: name, Reason: "the name is empty"}
		case strings.HasPrefix(name, ReservedPrefix):
			return nil, &TableError{Function: name, Reason: "names starting with " + ReservedPrefix + " are reserved for the runtime"}
		case t.byName[name] != nil:
			return nil, &TableError{Function: name, Reason: "declared twice"}
		case !h.implemented():
			return nil, &TableError{Function: name, Reason: "declared without an implementation, so it can only be called"}
		}
		t.byName[name] = h
	}
	return t, nil
}

// MustNewTable is NewTable for tables built at program start: it panics
// where NewTable returns an error.
func MustNewTable(handlers ...Handler) *Table {
	t, err := NewTable(handlers...)
	if err != nil {
		panic(err)
	}
	return t
}

// Schemas describes every function in the table, sorted by name.
func (t *Table) Schemas() []protocol.Schema {
	out := make([]protocol.Schema, 0, len(t.byName))
	for _, h := range t.byName {
		out = append(out, h.Schema())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// WithRuntime returns a copy of t that also serves handlers under reserved
// names (ReservedPrefix). It is how arbor's own packages add runtime
// functions, such as an actor's arbor.stop; application code has no use for
// it. A nil t serves only the handlers.
func (t *Table) WithRuntime(handlers ...Handler) (*Table, error) {
	out := &Table{runtime: map[string]Handler{}}
	if t != nil {
		out.byName = t.byName
		for k, v := range t.runtime {
			out.runtime[k] = v
		}
	}
	for _, h := range handlers {
		name := h.name()
		switch {
		case !strings.HasPrefix(name, ReservedPrefix):
			return nil, &TableError{Function: name, Reason: "a runtime function's name must start with " + ReservedPrefix}
		case runtimeFuncs[name] != nil || out.runtime[name] != nil:
			return nil, &TableError{Function: name, Reason: "declared twice"}
		case !h.implemented():
			return nil, &TableError{Function: name, Reason: "declared without an implementation"}
		}
		out.runtime[name] = h
	}
	return out, nil
}

func (t *Table) lookup(name string) (Handler, bool) {
	if strings.HasPrefix(name, ReservedPrefix) {
		if h, ok := runtimeFuncs[name]; ok {
			return h, true
		}
		h, ok := t.runtime[name]
		return h, ok
	}
	h, ok := t.byName[name]
	return h, ok
}

// The runtime's own functions, served by every endpoint.
const (
	fnCancel = ReservedPrefix + "cancel"
	fnSchema = ReservedPrefix + "schema"
	fnPing   = ReservedPrefix + "ping"
)

// cancelArgs are arbor.cancel's arguments: the call to cancel and, when the
// caller passes on a cancellation from further up the tree, the actor it is
// for (1.2; empty otherwise, and left off the wire).
type cancelArgs struct {
	CID uint64           `msgpack:"cid"`
	By  protocol.ActorID `msgpack:"by,omitempty"`
}

// runtimeFuncs is read-only after package initialisation.
var runtimeFuncs = map[string]Handler{
	fnCancel: NewFunc(fnCancel, func(ctx context.Context, a cancelArgs) (any, error) {
		ch, _ := ChannelFrom(ctx)
		ch.mu.Lock()
		t := ch.tasks[a.CID]
		ch.mu.Unlock()
		if t != nil { // a task that has already ended needs nothing
			by := a.By
			if by.IsZero() {
				by = ch.peer
			}
			t.cancelBy(by)
		}
		return nil, nil
	}),
	// ping and schema take no arguments and ignore whatever is sent.
	fnSchema: NewFunc(fnSchema, func(ctx context.Context, _ any) ([]protocol.Schema, error) {
		ch, _ := ChannelFrom(ctx)
		return ch.funcs.Schemas(), nil
	}),
	fnPing: NewFunc(fnPing, func(context.Context, any) (any, error) { return nil, nil }),
}

// RemoteSchemas asks the peer for the schemas of the functions it serves.
func RemoteSchemas(ctx context.Context, ch *Channel) ([]protocol.Schema, error) {
	return runtimeFuncs[fnSchema].(*Func[any, []protocol.Schema]).Call(ctx, ch, nil)
}

// Ping makes a round trip to the peer's runtime.
func Ping(ctx context.Context, ch *Channel) error {
	_, err := runtimeFuncs[fnPing].(*Func[any, any]).Call(ctx, ch, nil)
	return err
}

func typeSchema[T any]() *protocol.TypeSchema { return protocol.SchemaOf(reflect.TypeFor[T]()) }
