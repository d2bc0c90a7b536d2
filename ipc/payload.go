package ipc

import (
	"bytes"
	"fmt"
	"reflect"
	"sync"

	"github.com/arbor-go/arbor/internal/wire"
	"github.com/arbor-go/arbor/protocol"
	"github.com/vmihailenco/msgpack/v5"
)

// codec encodes and decodes payloads; pooled because msgpack's encoder and
// decoder are worth reusing on the hot path.
type codec struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
	rd  bytes.Reader
	dec *msgpack.Decoder
}

var codecs = sync.Pool{New: func() any {
	c := &codec{}
	c.enc = msgpack.NewEncoder(&c.buf)
	c.enc.UseCompactInts(true)
	c.dec = msgpack.NewDecoder(&c.rd)
	return c
}}

// encodePayload encodes v and passes the bytes to use, which must not keep
// them: they are reused as soon as use returns.
func encodePayload(v any, use func(protocol.Raw) error) error {
	c := codecs.Get().(*codec)
	defer codecs.Put(c)
	c.buf.Reset()
	switch n := v.(type) {
	case *int:
		c.buf.Write(wire.AppendInt(c.buf.AvailableBuffer(), int64(*n)))
	case int:
		c.buf.Write(wire.AppendInt(c.buf.AvailableBuffer(), int64(n)))
	default:
		if err := c.enc.Encode(v); err != nil {
			return err
		}
	}
	err := use(c.buf.Bytes())
	if c.buf.Cap() > 1<<20 {
		c.buf = bytes.Buffer{} // do not pin a huge buffer in the pool
		c.enc.Reset(&c.buf)
		c.enc.UseCompactInts(true)
	}
	return err
}

// decodePayload decodes raw into *v, or returns a *DecodeError that names
// the declared type and the msgpack type that arrived.
func decodePayload[T any](fn, what string, raw protocol.Raw, v *T) (err error) {
	if len(raw) == 0 {
		raw = protocol.Raw{0xc0}
	}
	if p, ok := any(v).(*int); ok {
		if n, ok := wire.ParseInt(raw); ok && int64(int(n)) == n {
			*p = int(n)
			return nil
		}
	}
	// A general msgpack decoder trusts the lengths it reads: 15 bytes
	// announcing a map of 800 million entries inside an extension value
	// made it allocate gigabytes. Check first what it will meet.
	if err := wire.CheckPayload(raw); err != nil {
		return &DecodeError{Function: fn, What: what, Want: reflect.TypeFor[T]().String(),
			Got: wire.TypeName(raw[0]), Err: err}
	}
	c := codecs.Get().(*codec)
	defer func() {
		// msgpack panics on some input (an array as a map[any]any key);
		// peer data must never crash this process.
		if p := recover(); p != nil {
			c = nil // its state is unknown: do not return it to the pool
			err = &DecodeError{Function: fn, What: what, Want: reflect.TypeFor[T]().String(),
				Got: wire.TypeName(raw[0]), Err: fmt.Errorf("decoder panicked: %v", p)}
		}
	}()
	c.rd.Reset(raw)
	// Decode has a fast path for *int and the other integer pointers, and
	// for *map[string]any, that skips the decoders registered in ints.go
	// and maps.go: those go through them here.
	if isIntPointer(v) || isMapPointer(v) {
		err = c.dec.DecodeValue(reflect.ValueOf(v).Elem())
	} else {
		err = c.dec.Decode(v)
	}
	c.rd.Reset(nil)
	codecs.Put(c)
	if err != nil {
		return &DecodeError{Function: fn, What: what, Want: reflect.TypeFor[T]().String(),
			Got: wire.TypeName(raw[0]), Err: err}
	}
	return nil
}

// isIntPointer reports whether v points to a built-in integer.
func isIntPointer(v any) bool {
	switch v.(type) {
	case *int, *int8, *int16, *int32, *int64, *uint, *uint8, *uint16, *uint32, *uint64:
		return true
	}
	return false
}

// isMapPointer reports whether v points to a map msgpack's Decode would
// fill without the decoders of maps.go.
func isMapPointer(v any) bool {
	_, ok := v.(*map[string]any)
	return ok
}
