package protocol

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"reflect"
	"sync"

	"github.com/arbor-go/arbor/internal/wire"
	"github.com/vmihailenco/msgpack/v5"
)

// The registry names error types and sentinel errors, so that they cross
// processes: a RemoteError carries the name (and, for a type, the error's
// fields), and unwraps on the receiving side to an error of the same type
// or to the same sentinel. Both sides register the same names, typically in
// an init function of a package both import.
var registry struct {
	sync.RWMutex
	types     map[reflect.Type]string
	byName    map[string]reflect.Type
	sentinels []namedSentinel // in registration order: the first match wins
}

type namedSentinel struct {
	name string
	err  error
}

// RegisterError names the error type E. An error of type E that a served
// function returns, or one that wraps it, is sent with the name and its
// fields msgpack-encoded (as payloads are: exported fields, msgpack tags),
// and the caller's RemoteError unwraps to an E rebuilt from them, so that
// errors.As(err, &e) finds it. E is usually a pointer to a struct; fields
// of interface type do not cross. It panics if the name or the type is
// already registered, as flag and gob do.
func RegisterError[E error](name string) {
	register(name, reflect.TypeFor[E](), nil)
}

// RegisterSentinel names a sentinel error value (io.EOF, fs.ErrNotExist,
// one of your own): an error that is it, or matches it under errors.Is,
// is sent with the name, and the caller's RemoteError unwraps to the same
// value, so that errors.Is holds. It panics if the name is taken.
func RegisterSentinel(name string, err error) {
	register(name, nil, err)
}

func register(name string, t reflect.Type, sentinel error) {
	if name == "" {
		panic("protocol: registering an error with an empty name")
	}
	registry.Lock()
	defer registry.Unlock()
	if registry.types == nil {
		registry.types = map[reflect.Type]string{}
		registry.byName = map[string]reflect.Type{}
	}
	_, taken := registry.byName[name]
	for _, s := range registry.sentinels {
		taken = taken || s.name == name
	}
	if taken {
		panic(fmt.Sprintf("protocol: error name %q registered twice", name))
	}
	if t == nil {
		registry.sentinels = append(registry.sentinels, namedSentinel{name, sentinel})
		return
	}
	if old, ok := registry.types[t]; ok {
		panic(fmt.Sprintf("protocol: error type %v registered twice, as %q and %q", t, old, name))
	}
	registry.types[t] = name
	registry.byName[name] = t
}

// The standard library's sentinels that programs test for most.
func init() {
	RegisterSentinel("io.EOF", io.EOF)
	RegisterSentinel("io.ErrUnexpectedEOF", io.ErrUnexpectedEOF)
	RegisterSentinel("fs.ErrNotExist", fs.ErrNotExist)
	RegisterSentinel("fs.ErrExist", fs.ErrExist)
	RegisterSentinel("fs.ErrPermission", fs.ErrPermission)
}

// RegisteredName returns the name err crosses processes with: that of the
// outermost error of a registered type on its chain of wrappers, with its
// fields encoded, else that of the first registered sentinel it matches,
// else "". The runtime calls it when it boxes an error.
func RegisteredName(err error) (name string, data Raw) {
	registry.RLock()
	defer registry.RUnlock()
	for e := err; e != nil; e = errors.Unwrap(e) {
		if name, ok := registry.types[reflect.TypeOf(e)]; ok {
			if b, merr := msgpack.Marshal(e); merr == nil {
				return name, b
			}
		}
	}
	for _, s := range registry.sentinels {
		if errors.Is(err, s.err) {
			return s.name, nil
		}
	}
	return "", nil
}

// restore rebuilds the error e names, or returns nil when this side does
// not know the name or the data do not decode.
func (e *RemoteError) restore() error {
	if e.Name == "" {
		return nil
	}
	registry.RLock()
	t, ok := registry.byName[e.Name]
	var sentinel error
	if !ok {
		for _, s := range registry.sentinels {
			if s.name == e.Name {
				sentinel = s.err
			}
		}
	}
	registry.RUnlock()
	if !ok {
		return sentinel
	}
	if len(e.Data) > 0 && wire.CheckPayload(e.Data) != nil {
		return nil // what a general decoder must not meet
	}
	var v reflect.Value
	if t.Kind() == reflect.Pointer {
		v = reflect.New(t.Elem())
		if len(e.Data) > 0 && msgpack.Unmarshal(e.Data, v.Interface()) != nil {
			return nil
		}
	} else {
		p := reflect.New(t)
		if len(e.Data) > 0 && msgpack.Unmarshal(e.Data, p.Interface()) != nil {
			return nil
		}
		v = p.Elem()
	}
	restored, _ := v.Interface().(error)
	return restored
}
