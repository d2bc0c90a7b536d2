package ipc

import (
	"fmt"
	"math"
	"reflect"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// msgpack converts a number that does not fit a Go integer type without a
// word (uint64's maximum into an int becomes -1, 300 into an int8 44).
// Numbers that arrive for the built-in integer types are checked instead:
// one that does not fit fails the decode, and so the call (bad_argument).
// The decoders are registered with msgpack for the whole program.
func init() {
	for _, v := range []any{int(0), int8(0), int16(0), int32(0), int64(0)} {
		msgpack.Register(v, nil, decodeSigned)
	}
	for _, v := range []any{uint(0), uint8(0), uint16(0), uint32(0), uint64(0)} {
		msgpack.Register(v, nil, decodeUnsigned)
	}
}

func decodeSigned(d *msgpack.Decoder, v reflect.Value) error {
	c, err := d.PeekCode()
	if err != nil {
		return err
	}
	if c == msgpcode.Uint64 {
		u, err := d.DecodeUint64()
		if err != nil {
			return err
		}
		if u > math.MaxInt64 || v.OverflowInt(int64(u)) {
			return fmt.Errorf("%d does not fit in %s", u, v.Type())
		}
		v.SetInt(int64(u))
		return nil
	}
	n, err := d.DecodeInt64()
	if err != nil {
		return err
	}
	if v.OverflowInt(n) {
		return fmt.Errorf("%d does not fit in %s", n, v.Type())
	}
	v.SetInt(n)
	return nil
}

func decodeUnsigned(d *msgpack.Decoder, v reflect.Value) error {
	c, err := d.PeekCode()
	if err != nil {
		return err
	}
	if msgpcode.IsFixedNum(c) && int8(c) < 0 || c == msgpcode.Int8 || c == msgpcode.Int16 || c == msgpcode.Int32 || c == msgpcode.Int64 {
		n, err := d.DecodeInt64()
		if err != nil {
			return err
		}
		if n < 0 || v.OverflowUint(uint64(n)) {
			return fmt.Errorf("%d does not fit in %s", n, v.Type())
		}
		v.SetUint(uint64(n))
		return nil
	}
	u, err := d.DecodeUint64()
	if err != nil {
		return err
	}
	if v.OverflowUint(u) {
		return fmt.Errorf("%d does not fit in %s", u, v.Type())
	}
	v.SetUint(u)
	return nil
}
