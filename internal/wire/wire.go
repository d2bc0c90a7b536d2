// Package wire holds the few msgpack primitives arbor's envelope and its
// payload checks need. The envelope is encoded by hand, not by reflection,
// for three reasons: the golden vectors pin its bytes exactly, decoding can
// check every length against the bytes actually present (so an untrusted
// length never sizes an allocation), and the hot path allocates nothing but
// the frame itself.
package wire

import (
	"encoding/binary"
	"fmt"
	"math"
)

// AppendNil appends msgpack's nil.
func AppendNil(b []byte) []byte { return append(b, 0xc0) }

func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 0xc3)
	}
	return append(b, 0xc2)
}

func AppendUint(b []byte, v uint64) []byte {
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

// AppendInt appends v as msgpack's encoder does with compact integers, in
// the fewest bytes that hold it. Integer payloads take this path in ipc,
// without msgpack's reflection.
func AppendInt(b []byte, v int64) []byte {
	if v >= 0 {
		return AppendUint(b, uint64(v))
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

func AppendStr(b []byte, s string) []byte {
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

func AppendArrayLen(b []byte, n int) []byte {
	switch {
	case n <= 15:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xdc), uint16(n))
	default:
		return binary.BigEndian.AppendUint32(append(b, 0xdd), uint32(n))
	}
}

func AppendMapLen(b []byte, n int) []byte {
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
func AppendRaw(b []byte, raw []byte) []byte {
	if len(raw) == 0 {
		return AppendNil(b)
	}
	return append(b, raw...)
}

// reader walks msgpack values in a byte slice. Every length it reads is
// checked against the bytes that remain before anything is sliced, and it
// never allocates except for strings it returns.
type Reader struct {
	Buf   []byte
	Off   int // where the next value begins
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
	r := &Reader{Buf: raw, payload: true}
	if err := r.Skip(); err != nil {
		return err
	}
	if r.Off != len(raw) {
		return r.Errorf("%d bytes after the value", len(raw)-r.Off)
	}
	return nil
}

// MaxDepth bounds nesting when skipping a value, so a frame of nested arrays
// cannot exhaust the stack (PROTOCOL.md §2: every value counts as a level).
const MaxDepth = 64

func (r *Reader) Errorf(format string, args ...any) error {
	return &Error{Offset: r.Off, Reason: fmt.Sprintf(format, args...)}
}

func (r *Reader) Need(n int) error {
	if n < 0 || len(r.Buf)-r.Off < n {
		return r.Errorf("truncated: need %d more bytes, have %d", n, len(r.Buf)-r.Off)
	}
	return nil
}

func (r *Reader) Byte() (byte, error) {
	if err := r.Need(1); err != nil {
		return 0, err
	}
	c := r.Buf[r.Off]
	r.Off++
	return c, nil
}

func (r *Reader) UintN(n int) (uint64, error) {
	if err := r.Need(n); err != nil {
		return 0, err
	}
	p := r.Buf[r.Off : r.Off+n]
	r.Off += n
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

// TypeName names the msgpack type that the first byte c introduces.
func TypeName(c byte) string {
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

func (r *Reader) IsNil() bool { return r.Off < len(r.Buf) && r.Buf[r.Off] == 0xc0 }

func (r *Reader) Uint() (uint64, error) {
	start := r.Off
	c, err := r.Byte()
	if err != nil {
		return 0, err
	}
	switch {
	case c <= 0x7f:
		return uint64(c), nil
	case c >= 0xcc && c <= 0xcf:
		return r.UintN(1 << (c - 0xcc))
	case c >= 0xd0 && c <= 0xd3:
		v, err := r.UintN(1 << (c - 0xd0))
		if err != nil {
			return 0, err
		}
		if signExtend(v, 1<<(c-0xd0)) < 0 {
			r.Off = start
			return 0, r.Errorf("negative integer where an unsigned one is required")
		}
		return v, nil
	}
	r.Off = start
	return 0, r.Errorf("expected an unsigned integer, got %s", TypeName(c))
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

func (r *Reader) Int() (int64, error) {
	start := r.Off
	c, err := r.Byte()
	if err != nil {
		return 0, err
	}
	switch {
	case c <= 0x7f:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	case c >= 0xcc && c <= 0xcf:
		v, err := r.UintN(1 << (c - 0xcc))
		if err == nil && v > math.MaxInt64 {
			r.Off = start
			return 0, r.Errorf("integer %d overflows int64", v)
		}
		return int64(v), err
	case c >= 0xd0 && c <= 0xd3:
		size := 1 << (c - 0xd0)
		v, err := r.UintN(size)
		return signExtend(v, size), err
	}
	r.Off = start
	return 0, r.Errorf("expected an integer, got %s", TypeName(c))
}

func (r *Reader) Bool() (bool, error) {
	c, err := r.Byte()
	if err != nil {
		return false, err
	}
	switch c {
	case 0xc2:
		return false, nil
	case 0xc3:
		return true, nil
	}
	r.Off--
	return false, r.Errorf("expected a boolean, got %s", TypeName(c))
}

// strBytes returns the bytes of a string without copying them.
func (r *Reader) StrBytes() ([]byte, error) {
	start := r.Off
	c, err := r.Byte()
	if err != nil {
		return nil, err
	}
	var n uint64
	switch {
	case c&0xe0 == 0xa0:
		n = uint64(c & 0x1f)
	case c >= 0xd9 && c <= 0xdb:
		if n, err = r.UintN(1 << (c - 0xd9)); err != nil {
			return nil, err
		}
	default:
		r.Off = start
		return nil, r.Errorf("expected a string, got %s", TypeName(c))
	}
	if err := r.Need(int(min(n, math.MaxInt32))); err != nil {
		return nil, err
	}
	s := r.Buf[r.Off : r.Off+int(n)]
	r.Off += int(n)
	return s, nil
}

func (r *Reader) Str() (string, error) {
	b, err := r.StrBytes()
	return string(b), err
}

func (r *Reader) containerLen(fix, fixMask byte, code16 byte, what string) (int, error) {
	start := r.Off
	c, err := r.Byte()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c&0xf0 == fix && fixMask == 0xf0:
		n = uint64(c & 0x0f)
	case c == code16:
		n, err = r.UintN(2)
	case c == code16+1:
		n, err = r.UintN(4)
	default:
		r.Off = start
		return 0, r.Errorf("expected %s, got %s", what, TypeName(c))
	}
	if err != nil {
		return 0, err
	}
	// Each element takes at least one byte, so a count larger than what is
	// left is a lie; checking it here keeps callers from preallocating.
	if left := len(r.Buf) - r.Off; n > uint64(left) {
		r.Off = start
		return 0, r.Errorf("%s of %d elements in %d remaining bytes", what, n, left)
	}
	return int(n), nil
}

func (r *Reader) MapLen() (int, error)   { return r.containerLen(0x80, 0xf0, 0xde, "a map") }
func (r *Reader) ArrayLen() (int, error) { return r.containerLen(0x90, 0xf0, 0xdc, "an array") }

// raw returns the next complete value as a sub-slice, without copying.
func (r *Reader) Raw() ([]byte, error) {
	start := r.Off
	if err := r.Skip(); err != nil {
		return nil, err
	}
	return r.Buf[start:r.Off], nil
}

// checkExt checks, at the type byte of an extension value with size bytes
// of data, that a payload's extension is a timestamp.
func (r *Reader) checkExt(size uint64) error {
	if r.Off >= len(r.Buf) {
		return r.Errorf("truncated: an extension value without its type")
	}
	typ := int8(r.Buf[r.Off])
	if typ != -1 {
		return r.Errorf("extension type %d: payloads carry no extension type but the timestamp (-1)", typ)
	}
	if size != 4 && size != 8 && size != 12 {
		return r.Errorf("a timestamp of %d bytes (want 4, 8 or 12)", size)
	}
	return nil
}

func (r *Reader) Skip() error {
	if r.depth >= MaxDepth {
		return r.Errorf("values nested deeper than %d", MaxDepth)
	}
	c, err := r.Byte()
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
		length, err = r.UintN(1 << (c - 0xd9))
	case c >= 0xc4 && c <= 0xc6:
		length, err = r.UintN(1 << (c - 0xc4))
	case c >= 0xd4 && c <= 0xd8: // fixext: type byte + 1..16 bytes
		length = 1 + 1<<(c-0xd4)
		if r.payload {
			err = r.checkExt(1 << (c - 0xd4))
		}
	case c >= 0xc7 && c <= 0xc9: // ext 8/16/32: length, then type byte
		length, err = r.UintN(1 << (c - 0xc7))
		if err == nil && r.payload {
			err = r.checkExt(length)
		}
		length++
	case c == 0xdc || c == 0xdd:
		count, err = r.UintN(2 << (c - 0xdc))
	case c == 0xde || c == 0xdf:
		count, err = r.UintN(2 << (c - 0xde))
		count *= 2
	default:
		r.Off--
		return r.Errorf("invalid msgpack byte 0x%02x", c)
	}
	if err != nil {
		return err
	}
	if length > uint64(len(r.Buf)-r.Off) || count > uint64(len(r.Buf)-r.Off) {
		return r.Errorf("truncated: value claims more than the %d bytes left", len(r.Buf)-r.Off)
	}
	r.Off += int(length)
	r.depth++
	defer func() { r.depth-- }()
	for ; count > 0; count-- {
		if err := r.Skip(); err != nil {
			return err
		}
	}
	return nil
}

// ParseInt decodes raw as exactly one msgpack integer that fits an int64.
// It reports false for anything else (another type, a uint64 past int64,
// trailing bytes), which a general decoder then handles and explains.
func ParseInt(raw []byte) (int64, bool) {
	r := Reader{Buf: raw}
	v, err := r.Int()
	return v, err == nil && r.Off == len(raw)
}

// Error is a msgpack value that is not well formed, or not one a payload may
// hold: where in the bytes, and why.
type Error struct {
	Offset int
	Reason string
}

func (e *Error) Error() string {
	if e.Offset > 0 {
		return fmt.Sprintf("malformed msgpack at byte %d: %s", e.Offset, e.Reason)
	}
	return "malformed msgpack: " + e.Reason
}
