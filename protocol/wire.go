package protocol

import (
	"encoding/binary"
	"fmt"
	"math"
)

// This file holds the few msgpack primitives the envelope needs. The
// envelope is encoded by hand, not by reflection, for three reasons: the
// golden vectors pin its bytes exactly, decoding can check every length
// against the bytes actually present (so an untrusted length never sizes an
// allocation), and the hot path allocates nothing but the frame itself.

func appendNil(b []byte) []byte { return append(b, 0xc0) }

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 0xc3)
	}
	return append(b, 0xc2)
}

func appendUint(b []byte, v uint64) []byte {
	switch {
	case v <= 0x7f:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(v))
	default:
		return binary.BigEndian.AppendUint64(append(b, 0xcf), v)
	}
}

func appendInt(b []byte, v int64) []byte {
	if v >= 0 {
		return appendUint(b, uint64(v))
	}
	switch {
	case v >= -32:
		return append(b, byte(v))
	case v >= math.MinInt8:
		return append(b, 0xd0, byte(v))
	case v >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(v))
	case v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(v))
	default:
		return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(v))
	}
}

func appendStr(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n <= 31:
		b = append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		b = append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, 0xda), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(n))
	}
	return append(b, s...)
}

func appendArrayLen(b []byte, n int) []byte {
	switch {
	case n <= 15:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xdc), uint16(n))
	default:
		return binary.BigEndian.AppendUint32(append(b, 0xdd), uint32(n))
	}
}

func appendMapLen(b []byte, n int) []byte {
	switch {
	case n <= 15:
		return append(b, 0x80|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xde), uint16(n))
	default:
		return binary.BigEndian.AppendUint32(append(b, 0xdf), uint32(n))
	}
}

// appendRaw appends an already encoded msgpack value; an empty one is nil.
func appendRaw(b []byte, raw []byte) []byte {
	if len(raw) == 0 {
		return appendNil(b)
	}
	return append(b, raw...)
}

// reader walks msgpack values in a byte slice. Every length it reads is
// checked against the bytes that remain before anything is sliced, and it
// never allocates except for strings it returns.
type reader struct {
	buf   []byte
	off   int
	depth int
	// payload: the value is a payload to be decoded by a general msgpack
	// decoder, which must meet no extension type but the timestamp.
	payload bool
}

// CheckPayload checks that raw is exactly one well-formed msgpack value
// that a general decoder can take without allocating more than the bytes
// present: every length fits in what follows, nesting is at most 64 deep,
// and the only extension type is the timestamp (-1, with 4, 8 or 12 bytes
// of data). A payload is checked before it is decoded into a Go type.
func CheckPayload(raw []byte) error {
	r := &reader{buf: raw, payload: true}
	if err := r.skip(); err != nil {
		return err
	}
	if r.off != len(raw) {
		return r.errorf("%d bytes after the value", len(raw)-r.off)
	}
	return nil
}

// maxDepth bounds nesting when skipping a value, so a frame of nested arrays
// cannot exhaust the stack.
const maxDepth = 64

func (r *reader) errorf(format string, args ...any) error {
	return &MalformedError{Offset: r.off, Reason: fmt.Sprintf(format, args...)}
}

func (r *reader) need(n int) error {
	if n < 0 || len(r.buf)-r.off < n {
		return r.errorf("truncated: need %d more bytes, have %d", n, len(r.buf)-r.off)
	}
	return nil
}

func (r *reader) byte() (byte, error) {
	if err := r.need(1); err != nil {
		return 0, err
	}
	c := r.buf[r.off]
	r.off++
	return c, nil
}

func (r *reader) uintN(n int) (uint64, error) {
	if err := r.need(n); err != nil {
		return 0, err
	}
	p := r.buf[r.off : r.off+n]
	r.off += n
	switch n {
	case 1:
		return uint64(p[0]), nil
	case 2:
		return uint64(binary.BigEndian.Uint16(p)), nil
	case 4:
		return uint64(binary.BigEndian.Uint32(p)), nil
	default:
		return binary.BigEndian.Uint64(p), nil
	}
}

// MsgpackTypeName names the msgpack type that the first byte c introduces.
func MsgpackTypeName(c byte) string {
	switch {
	case c <= 0x7f || c >= 0xe0 || (c >= 0xcc && c <= 0xd3):
		return "integer"
	case c&0xf0 == 0x80 || c == 0xde || c == 0xdf:
		return "map"
	case c&0xf0 == 0x90 || c == 0xdc || c == 0xdd:
		return "array"
	case c&0xe0 == 0xa0 || (c >= 0xd9 && c <= 0xdb):
		return "string"
	case c == 0xc0:
		return "nil"
	case c == 0xc2 || c == 0xc3:
		return "boolean"
	case c >= 0xc4 && c <= 0xc6:
		return "binary"
	case c == 0xca || c == 0xcb:
		return "float"
	case (c >= 0xc7 && c <= 0xc9) || (c >= 0xd4 && c <= 0xd8):
		return "extension"
	default:
		return fmt.Sprintf("invalid byte 0x%02x", c)
	}
}

func (r *reader) isNil() bool { return r.off < len(r.buf) && r.buf[r.off] == 0xc0 }

func (r *reader) uint() (uint64, error) {
	start := r.off
	c, err := r.byte()
	if err != nil {
		return 0, err
	}
	switch {
	case c <= 0x7f:
		return uint64(c), nil
	case c >= 0xcc && c <= 0xcf:
		return r.uintN(1 << (c - 0xcc))
	case c >= 0xd0 && c <= 0xd3:
		v, err := r.uintN(1 << (c - 0xd0))
		if err != nil {
			return 0, err
		}
		if signExtend(v, 1<<(c-0xd0)) < 0 {
			r.off = start
			return 0, r.errorf("negative integer where an unsigned one is required")
		}
		return v, nil
	}
	r.off = start
	return 0, r.errorf("expected an unsigned integer, got %s", MsgpackTypeName(c))
}

func signExtend(v uint64, size int) int64 {
	switch size {
	case 1:
		return int64(int8(v))
	case 2:
		return int64(int16(v))
	case 4:
		return int64(int32(v))
	}
	return int64(v)
}

func (r *reader) int() (int64, error) {
	start := r.off
	c, err := r.byte()
	if err != nil {
		return 0, err
	}
	switch {
	case c <= 0x7f:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	case c >= 0xcc && c <= 0xcf:
		v, err := r.uintN(1 << (c - 0xcc))
		if err == nil && v > math.MaxInt64 {
			r.off = start
			return 0, r.errorf("integer %d overflows int64", v)
		}
		return int64(v), err
	case c >= 0xd0 && c <= 0xd3:
		size := 1 << (c - 0xd0)
		v, err := r.uintN(size)
		return signExtend(v, size), err
	}
	r.off = start
	return 0, r.errorf("expected an integer, got %s", MsgpackTypeName(c))
}

func (r *reader) bool() (bool, error) {
	c, err := r.byte()
	if err != nil {
		return false, err
	}
	switch c {
	case 0xc2:
		return false, nil
	case 0xc3:
		return true, nil
	}
	r.off--
	return false, r.errorf("expected a boolean, got %s", MsgpackTypeName(c))
}

// strBytes returns the bytes of a string without copying them.
func (r *reader) strBytes() ([]byte, error) {
	start := r.off
	c, err := r.byte()
	if err != nil {
		return nil, err
	}
	var n uint64
	switch {
	case c&0xe0 == 0xa0:
		n = uint64(c & 0x1f)
	case c >= 0xd9 && c <= 0xdb:
		if n, err = r.uintN(1 << (c - 0xd9)); err != nil {
			return nil, err
		}
	default:
		r.off = start
		return nil, r.errorf("expected a string, got %s", MsgpackTypeName(c))
	}
	if err := r.need(int(min(n, math.MaxInt32))); err != nil {
		return nil, err
	}
	s := r.buf[r.off : r.off+int(n)]
	r.off += int(n)
	return s, nil
}

func (r *reader) str() (string, error) {
	b, err := r.strBytes()
	return string(b), err
}

func (r *reader) containerLen(fix, fixMask byte, code16 byte, what string) (int, error) {
	start := r.off
	c, err := r.byte()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c&0xf0 == fix && fixMask == 0xf0:
		n = uint64(c & 0x0f)
	case c == code16:
		n, err = r.uintN(2)
	case c == code16+1:
		n, err = r.uintN(4)
	default:
		r.off = start
		return 0, r.errorf("expected %s, got %s", what, MsgpackTypeName(c))
	}
	if err != nil {
		return 0, err
	}
	// Each element takes at least one byte, so a count larger than what is
	// left is a lie; checking it here keeps callers from preallocating.
	if left := len(r.buf) - r.off; n > uint64(left) {
		r.off = start
		return 0, r.errorf("%s of %d elements in %d remaining bytes", what, n, left)
	}
	return int(n), nil
}

func (r *reader) mapLen() (int, error)   { return r.containerLen(0x80, 0xf0, 0xde, "a map") }
func (r *reader) arrayLen() (int, error) { return r.containerLen(0x90, 0xf0, 0xdc, "an array") }

// raw returns the next complete value as a sub-slice, without copying.
func (r *reader) raw() ([]byte, error) {
	start := r.off
	if err := r.skip(); err != nil {
		return nil, err
	}
	return r.buf[start:r.off], nil
}

// checkExt checks, at the type byte of an extension value with size bytes
// of data, that a payload's extension is a timestamp.
func (r *reader) checkExt(size uint64) error {
	if r.off >= len(r.buf) {
		return r.errorf("truncated: an extension value without its type")
	}
	typ := int8(r.buf[r.off])
	if typ != -1 {
		return r.errorf("extension type %d: payloads carry no extension type but the timestamp (-1)", typ)
	}
	if size != 4 && size != 8 && size != 12 {
		return r.errorf("a timestamp of %d bytes (want 4, 8 or 12)", size)
	}
	return nil
}

func (r *reader) skip() error {
	if r.depth >= maxDepth {
		return r.errorf("values nested deeper than %d", maxDepth)
	}
	c, err := r.byte()
	if err != nil {
		return err
	}
	var length, count uint64 // bytes to skip, nested values to skip
	switch {
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
	case c&0xf0 == 0x80:
		count = 2 * uint64(c&0x0f)
	case c&0xf0 == 0x90:
		count = uint64(c & 0x0f)
	case c&0xe0 == 0xa0:
		length = uint64(c & 0x1f)
	case c >= 0xcc && c <= 0xcf:
		length = 1 << (c - 0xcc)
	case c >= 0xd0 && c <= 0xd3:
		length = 1 << (c - 0xd0)
	case c == 0xca:
		length = 4
	case c == 0xcb:
		length = 8
	case c >= 0xd9 && c <= 0xdb:
		length, err = r.uintN(1 << (c - 0xd9))
	case c >= 0xc4 && c <= 0xc6:
		length, err = r.uintN(1 << (c - 0xc4))
	case c >= 0xd4 && c <= 0xd8: // fixext: type byte + 1..16 bytes
		length = 1 + 1<<(c-0xd4)
		if r.payload {
			err = r.checkExt(1 << (c - 0xd4))
		}
	case c >= 0xc7 && c <= 0xc9: // ext 8/16/32: length, then type byte
		length, err = r.uintN(1 << (c - 0xc7))
		if err == nil && r.payload {
			err = r.checkExt(length)
		}
		length++
	case c == 0xdc || c == 0xdd:
		count, err = r.uintN(2 << (c - 0xdc))
	case c == 0xde || c == 0xdf:
		count, err = r.uintN(2 << (c - 0xde))
		count *= 2
	default:
		r.off--
		return r.errorf("invalid msgpack byte 0x%02x", c)
	}
	if err != nil {
		return err
	}
	if length > uint64(len(r.buf)-r.off) || count > uint64(len(r.buf)-r.off) {
		return r.errorf("truncated: value claims more than the %d bytes left", len(r.buf)-r.off)
	}
	r.off += int(length)
	r.depth++
	defer func() { r.depth-- }()
	for ; count > 0; count-- {
		if err := r.skip(); err != nil {
			return err
		}
	}
	return nil
}

// AppendInt appends v as msgpack's encoder does with compact integers, in
// the fewest bytes that hold it. Integer payloads take this path in ipc,
// without msgpack's reflection.
func AppendInt(b []byte, v int64) []byte { return appendInt(b, v) }

// ParseInt decodes raw as exactly one msgpack integer that fits an int64.
// It reports false for anything else (another type, a uint64 past int64,
// trailing bytes), which a general decoder then handles and explains.
func ParseInt(raw []byte) (int64, bool) {
	r := reader{buf: raw}
	v, err := r.int()
	return v, err == nil && r.off == len(raw)
}
