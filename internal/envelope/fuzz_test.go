package envelope

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/arbor-go/arbor/protocol"
)

// goldenFrames returns the frames of the golden vectors, to seed the fuzzers.
func goldenFrames(tb testing.TB) [][]byte {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.hex"))
	if err != nil {
		tb.Fatal(err)
	}
	if len(files) == 0 {
		tb.Fatalf("no golden vectors in %s", goldenDir)
	}
	var frames [][]byte
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		frame, err := parseHex(data)
		if err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		frames = append(frames, frame)
	}
	return frames
}

func FuzzDecodeMessage(f *testing.F) {
	for _, frame := range goldenFrames(f) {
		f.Add(frame[frameHeader:])
	}
	for _, bad := range [][]byte{
		{},
		{0xc1},
		{0x80},
		{0x93, 0x01, 0x02, 0x03},
		{0x81, 0xa1, 'k', 0xa6, 'l', 'a', 'u', 'n', 'c', 'h'},                        // unknown kind
		{0x82, 0xa1, 'k', 0xa4, 's', 't', 'o', 'p', 0xa3, 'c', 'i', 'd'},             // truncated
		{0x82, 0xa1, 'k', 0xa4, 's', 't', 'o', 'p', 0xa3, 'c', 'i', 'd', 0xd0, 0xff}, // negative cid
		{0x82, 0xa1, 'k', 0xa5, 'e', 'r', 'r', 'o', 'r', 0xa3, 'e', 'r', 'r', 0x80},  // error with an empty err map
		{0xdf, 0xff, 0xff, 0xff, 0xff},
		{0x81, 0xdb, 0xff, 0xff, 0xff, 0xff},
		append([]byte{0x82, 0xa1, 'k', 0xa4, 's', 't', 'o', 'p', 0xa1, 'x'}, bytes.Repeat([]byte{0x91}, 80)...),
	} {
		f.Add(bad)
	}
	// Valid but unusual shapes: fields in another order, an unknown field,
	// a nil actor, an explicit cid 0 on an error, an empty relay.
	for _, odd := range [][]byte{
		{0x83, 0xa3, 'c', 'i', 'd', 0x07, 0xa6, 'f', 'u', 't', 'u', 'r', 'e', 0x92, 0xc0, 0x80, 0xa1, 'k', 0xa4, 's', 't', 'o', 'p'},
		{0x84, 0xa1, 'k', 0xa5, 'h', 'e', 'l', 'l', 'o', 0xa3, 'v', 'e', 'r', 0x92, 0x01, 0x00,
			0xa5, 'a', 'c', 't', 'o', 'r', 0xc0, 0xa3, 'p', 'i', 'd', 0xd0, 0xff},
		{0x83, 0xa1, 'k', 0xa5, 'e', 'r', 'r', 'o', 'r', 0xa3, 'c', 'i', 'd', 0x00, 0xa3, 'e', 'r', 'r',
			0x82, 0xa5, 'r', 'e', 'l', 'a', 'y', 0x90, 0xa3, 's', 'r', 'c', 0xc0},
	} {
		f.Add(odd)
	}
	// The quick path's shapes, right and nearly right.
	yield := AppendMessage(nil, &Yield{CID: 3, Value: protocol.Raw{0x92, 0x01, 0xcd, 0x01, 0x00}})
	for _, q := range [][]byte{
		yield,
		append(yield[:len(yield):len(yield)], 0x00), // a byte after the value
		yield[:len(yield)-1],                        // the value cut short
		AppendMessage(nil, &Return{CID: 1 << 40, Value: protocol.Raw{0xc0}}),
	} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		// The quick path decodes what it takes as the general one does.
		if q := new(Decoder).quick(body); q != nil {
			g, err := new(Decoder).decode(body)
			if err != nil || !reflect.DeepEqual(q, g) {
				t.Fatalf("quick path gave %#v, the general one %#v, %v", q, g, err)
			}
		}
		m, err := DecodeMessage(body)
		if err != nil {
			switch err.(type) {
			case *MalformedError, *UnknownKindError:
			default:
				t.Fatalf("error of type %T: %v", err, err)
			}
			if m != nil {
				t.Fatalf("decoding returned both %#v and %v", m, err)
			}
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if m == nil {
			t.Fatal("no message and no error")
		}
		first := AppendMessage(nil, m)
		again, err := DecodeMessage(first)
		if err != nil {
			t.Fatalf("re-encoding of %#v does not decode: %v", m, err)
		}
		if !sameMessage(m, again) {
			t.Fatalf("re-encoding changed the message:\nfirst  %s\nsecond %s", describe(m), describe(again))
		}
		// The encoder's output is canonical: encoding it again is a fixed point.
		if second := AppendMessage(nil, again); !bytes.Equal(first, second) {
			t.Fatalf("encoding is not stable:\nfirst  %x\nsecond %x", first, second)
		}
	})
}

// sameMessage compares two messages, treating an absent payload as the msgpack
// nil it travels as.
func sameMessage(a, b Message) bool {
	return reflect.DeepEqual(normalizeRaw(a), normalizeRaw(b))
}

// describe shows a message with its boxed error, which %#v shows as a
// pointer.
func describe(m Message) string {
	if e, ok := m.(*Error); ok && e.Err != nil {
		return fmt.Sprintf("&Error{CID:%d, Err:%#v}", e.CID, *e.Err)
	}
	return fmt.Sprintf("%#v", m)
}

func normalizeRaw(m Message) Message {
	fix := func(r protocol.Raw) protocol.Raw {
		if len(r) == 0 {
			return protocol.Raw{0xc0}
		}
		return r
	}
	switch m := m.(type) {
	case *Start:
		c := *m
		c.Args = fix(c.Args)
		return &c
	case *Started:
		c := *m
		c.Value = fix(c.Value)
		return &c
	case *Yield:
		c := *m
		c.Value = fix(c.Value)
		return &c
	case *Return:
		c := *m
		c.Value = fix(c.Value)
		return &c
	}
	return m
}

func FuzzFrameReader(f *testing.F) {
	frames := goldenFrames(f)
	for _, frame := range frames {
		f.Add(frame, uint16(64))
	}
	f.Add(bytes.Join(frames, nil), uint16(1024))
	for _, bad := range [][]byte{
		{},
		{0x00, 0x00},
		{0x00, 0x00, 0x00, 0x00},             // an empty body
		{0x00, 0x00, 0x00, 0x05, 0x01, 0x02}, // truncated body
		{0xff, 0xff, 0xff, 0xff},             // over any maximum
		{0x00, 0x01, 0x00, 0x01, 0x01, 0x02, 0x03}, // over 64 KiB, truncated
		{0x00, 0x00, 0x00, 0x01, 0xc0, 0x00, 0x00, 0x00, 0x41},
	} {
		f.Add(bad, uint16(64))
	}
	f.Fuzz(func(t *testing.T, stream []byte, maxFrame uint16) {
		// A small maximum from the input, and a large one that lets a
		// frame announce more than the reader allocates up front.
		checkFrameStream(t, stream, 1+int(maxFrame%1024))
		checkFrameStream(t, stream, 1<<20)
	})
}

// checkFrameStream reads stream to its end and checks that every frame is
// exactly the bytes the stream holds at that point, within max, and that the
// reading ends with io.EOF or a typed error that matches the input.
func checkFrameStream(t *testing.T, stream []byte, max int) {
	fr := NewFrameReader(bytes.NewReader(stream), max)
	off := 0
	// Every frame takes at least its 4-byte header, so the loop ends.
	for range len(stream)/frameHeader + 2 {
		body, err := fr.Next()
		left := len(stream) - off
		if err == nil {
			if left < frameHeader {
				t.Fatalf("frame read from %d bytes", left)
			}
			size := int(binary.BigEndian.Uint32(stream[off:]))
			if len(body) != size || size > max {
				t.Fatalf("body of %d bytes for a header announcing %d (max %d)", len(body), size, max)
			}
			if !bytes.Equal(body, stream[off+frameHeader:off+frameHeader+size]) {
				t.Fatalf("body at offset %d differs from the stream", off)
			}
			off += frameHeader + size
			continue
		}
		var truncated *TruncatedFrameError
		var tooLarge *FrameTooLargeError
		switch {
		case err == io.EOF:
			if left != 0 {
				t.Fatalf("io.EOF with %d bytes left", left)
			}
		case errors.As(err, &truncated):
			if left < frameHeader {
				if truncated.Want != frameHeader || truncated.Got != left {
					t.Fatalf("%v with %d header bytes left", err, left)
				}
			} else if size := int(binary.BigEndian.Uint32(stream[off:])); truncated.Want != size ||
				truncated.Got != left-frameHeader || truncated.Got >= size {
				t.Fatalf("%v for a %d-byte frame with %d bytes left", err, size, left)
			}
		case errors.As(err, &tooLarge):
			if left < frameHeader || !tooLarge.Incoming || tooLarge.Max != max ||
				tooLarge.Size != uint64(binary.BigEndian.Uint32(stream[off:])) || tooLarge.Size <= uint64(max) {
				t.Fatalf("%v with max %d", err, max)
			}
		default:
			t.Fatalf("error of type %T: %v", err, err)
		}
		return
	}
	t.Fatalf("the reader did not end on %d bytes", len(stream))
}
