package ipc

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"github.com/arbor-go/arbor/internal/wire"
	"github.com/arbor-go/arbor/protocol"
	"github.com/vmihailenco/msgpack/v5"
)

// The integer fast path encodes exactly what msgpack's encoder does, and
// decodes what msgpack's decoder would, leaving everything else to it.
func TestScalarFastPathMatchesMsgpack(t *testing.T) {
	var values []int64
	for _, edge := range []int64{0, 1, 31, 32, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxInt64} {
		values = append(values, edge, edge-1, -edge, -edge-1)
	}
	values = append(values, math.MinInt64, -32, -33, -128, -129, -32768, -32769, math.MinInt32, math.MinInt32-1)
	var enc bytes.Buffer
	e := msgpack.NewEncoder(&enc)
	e.UseCompactInts(true)
	for _, n := range values {
		enc.Reset()
		if err := e.EncodeInt(n); err != nil {
			t.Fatal(err)
		}
		want := enc.Bytes()
		if got := wire.AppendInt(nil, n); !bytes.Equal(got, want) {
			t.Errorf("wire.AppendInt(%d) = %x, msgpack %x", n, got, want)
		}
		if got, ok := wire.ParseInt(want); !ok || got != n {
			t.Errorf("wire.ParseInt(%x) = %d, %v; want %d", want, got, ok, n)
		}
		// The non-compact forms decode too.
		enc.Reset()
		msgpack.NewEncoder(&enc).EncodeInt(n)
		if got, ok := wire.ParseInt(enc.Bytes()); !ok || got != n {
			t.Errorf("wire.ParseInt(%x) = %d, %v; want %d", enc.Bytes(), got, ok, n)
		}
	}
	for _, raw := range [][]byte{
		{}, {0xc0}, {0xca, 0, 0, 0, 0}, {0xa1, 'x'}, {0x01, 0x02}, {0xcd, 0x01},
		{0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, // past int64: the general path explains
	} {
		if n, ok := wire.ParseInt(raw); ok {
			t.Errorf("wire.ParseInt(%x) took it as %d", raw, n)
		}
	}
	// Through decodePayload, ints take the fast path and the rest the
	// general one, with the same results.
	var n int
	if err := decodePayload("f", "result", wire.AppendInt(nil, -70000), &n); err != nil || n != -70000 {
		t.Fatalf("decodePayload: %d, %v", n, err)
	}
	var de *DecodeError
	if err := decodePayload("f", "result", []byte{0xca, 0x40, 0x40, 0, 0}, &n); !errors.As(err, &de) || de.Got != "float" {
		t.Fatalf("a float into an int: %d, %v", n, err)
	}
	var out []byte
	if err := encodePayload(12345, func(raw protocol.Raw) error { out = append(out, raw...); return nil }); err != nil || !bytes.Equal(out, wire.AppendInt(nil, 12345)) {
		t.Fatalf("encodePayload(12345) = %x, %v", out, err)
	}
}
