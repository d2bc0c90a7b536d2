package ipc

import "github.com/arbor-go/arbor/protocol"

// Integers are the commonest small payloads (a stream of counts, a call
// that returns a number). They skip msgpack's reflection and the codec
// pool, encoded and decoded here byte for byte as msgpack does it with
// compact integers (TestScalarFastPathMatchesMsgpack).

// appendInt appends n as msgpack's encoder with UseCompactInts does.
func appendInt(b []byte, n int64) []byte {
	if n >= 0 {
		return appendUint(b, uint64(n))
	}
	switch {
	case n >= -32:
		return append(b, byte(n))
	case n >= -1<<7:
		return append(b, 0xd0, byte(n))
	case n >= -1<<15:
		return append(b, 0xd1, byte(n>>8), byte(n))
	case n >= -1<<31:
		return append(b, 0xd2, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, 0xd3, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendUint(b []byte, n uint64) []byte {
	switch {
	case n <= 0x7f:
		return append(b, byte(n))
	case n <= 0xff:
		return append(b, 0xcc, byte(n))
	case n <= 0xffff:
		return append(b, 0xcd, byte(n>>8), byte(n))
	case n <= 0xffffffff:
		return append(b, 0xce, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, 0xcf, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// decodeInt decodes raw as one msgpack integer that fits an int64. It
// reports false for anything else (another type, a uint64 past int64,
// trailing bytes), which the general decoder then handles and explains.
func decodeInt(raw protocol.Raw) (int64, bool) {
	if len(raw) == 0 {
		return 0, false
	}
	c, rest := raw[0], raw[1:]
	be := func(n int) (uint64, bool) {
		if len(rest) != n {
			return 0, false
		}
		var u uint64
		for _, x := range rest {
			u = u<<8 | uint64(x)
		}
		return u, true
	}
	switch {
	case c <= 0x7f:
		return int64(c), len(rest) == 0
	case c >= 0xe0:
		return int64(int8(c)), len(rest) == 0
	}
	var size int
	signed := false
	switch c {
	case 0xcc, 0xcd, 0xce, 0xcf:
		size = 1 << (c - 0xcc)
	case 0xd0, 0xd1, 0xd2, 0xd3:
		size, signed = 1<<(c-0xd0), true
	default:
		return 0, false
	}
	u, ok := be(size)
	if !ok {
		return 0, false
	}
	if !signed {
		return int64(u), u <= 1<<63-1
	}
	shift := 64 - 8*size
	return int64(u<<shift) >> shift, true
}
