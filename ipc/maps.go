package ipc

import (
	"reflect"

	"github.com/vmihailenco/msgpack/v5"
)

// msgpack reads an extension value where it expects a map as a wrapper
// around the map (DecodeMapLen skips the extension's header), and makes a
// map[string]any or map[any]any as large as the length it then reads, with
// no bound. wire.CheckPayload lets a timestamp through, whose 12 bytes
// of data can read as a map32 header: 15 bytes of arguments made a
// map[string]any of 832 million entries (2.4 GB; found by
// FuzzPayloadBehindAChannel). These decoders do what msgpack's do, but
// start the map small: it then grows only with entries that arrive, each
// of which takes bytes that were sent.
func init() {
	msgpack.Register(map[string]any(nil), nil, decodeStringAnyMap)
	msgpack.Register(map[any]any(nil), nil, decodeAnyAnyMap)
}

// mapHint is the most entries a map is made for before they arrive.
const mapHint = 64

func decodeStringAnyMap(d *msgpack.Decoder, v reflect.Value) error {
	return decodeMap(d, v, (*msgpack.Decoder).DecodeString)
}

func decodeAnyAnyMap(d *msgpack.Decoder, v reflect.Value) error {
	return decodeMap(d, v, (*msgpack.Decoder).DecodeInterface)
}

// decodeMap decodes a map[K]any into v, its keys with key.
func decodeMap[K comparable](d *msgpack.Decoder, v reflect.Value, key func(*msgpack.Decoder) (K, error)) error {
	n, err := d.DecodeMapLen()
	if err != nil || n == -1 {
		v.Set(reflect.Zero(v.Type()))
		return err
	}
	m := make(map[K]any, min(n, mapHint))
	for range n {
		k, err := key(d)
		if err != nil {
			return err
		}
		if m[k], err = d.DecodeInterface(); err != nil {
			return err
		}
	}
	v.Set(reflect.ValueOf(m))
	return nil
}
