package envelope

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"math"
)

// DefaultMaxFrame is the default maximum size of one frame's body.
const DefaultMaxFrame = 16 << 20

// frameHeader is the size of the length prefix of every frame.
const frameHeader = 4

// eagerAlloc is the largest body allocated in one piece when its length is
// read; larger bodies grow as their bytes arrive, so a peer that announces
// 16 MiB and sends nothing costs nothing.
const eagerAlloc = 64 << 10

// AppendFrame appends m as one frame (4-byte big-endian length, then the
// msgpack body) to b. If the body is larger than max it returns b unchanged
// and a *FrameTooLargeError; max <= 0 means DefaultMaxFrame, and a max
// beyond what the 4-byte length can say is capped there.
func AppendFrame(b []byte, m Message, max int) ([]byte, error) {
	if max <= 0 {
		max = DefaultMaxFrame
	}
	max = int(min(uint64(max), math.MaxUint32))
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	b = m.appendFields(b)
	size := len(b) - start - frameHeader
	if size > max {
		return b[:start], &FrameTooLargeError{Size: uint64(size), Max: max}
	}
	binary.BigEndian.PutUint32(b[start:], uint32(size))
	return b, nil
}

// FrameReader reads frames from a byte stream.
type FrameReader struct {
	r    *bufio.Reader
	max  int
	slab []byte // small bodies are cut from here, saving an allocation each
	hdr  [frameHeader]byte
}

// Bodies up to slabBody bytes share slabs of slabSize bytes.
const (
	slabSize = 32 << 10
	slabBody = 1 << 10
)

// NewFrameReader reads frames from r, refusing bodies over max bytes
// (max <= 0 means DefaultMaxFrame).
func NewFrameReader(r io.Reader, max int) *FrameReader {
	if max <= 0 {
		max = DefaultMaxFrame
	}
	return &FrameReader{r: bufio.NewReaderSize(r, 64<<10), max: max}
}

// Next returns the next frame's body. The body is never overwritten by
// later frames, so callers may keep slices of it. At a clean end of stream between frames it returns io.EOF;
// inside a frame, a *TruncatedFrameError; for a length over the maximum, a
// *FrameTooLargeError, before reading or allocating the body.
func (fr *FrameReader) Next() ([]byte, error) {
	hdr := fr.hdr[:] // a local array would escape through io.ReadFull
	n, err := io.ReadFull(fr.r, hdr)
	if err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, &TruncatedFrameError{Want: frameHeader, Got: n}
		}
		return nil, err
	}
	size := binary.BigEndian.Uint32(hdr)
	if uint64(size) > uint64(fr.max) {
		return nil, &FrameTooLargeError{Size: uint64(size), Max: fr.max, Incoming: true}
	}
	if size <= slabBody {
		if len(fr.slab) < int(size) {
			fr.slab = make([]byte, slabSize)
		}
		body := fr.slab[:size:size] // capped, so appending to it cannot spill into the next body
		if n, err := io.ReadFull(fr.r, body); err != nil {
			return nil, truncated(err, int(size), n)
		}
		fr.slab = fr.slab[size:]
		return body, nil
	}
	if size <= eagerAlloc {
		body := make([]byte, size)
		if n, err := io.ReadFull(fr.r, body); err != nil {
			return nil, truncated(err, int(size), n)
		}
		return body, nil
	}
	body := make([]byte, 0, eagerAlloc)
	for len(body) < int(size) {
		if len(body) == cap(body) {
			body = append(body, make([]byte, min(cap(body), int(size)-len(body)))...)[:len(body)]
		}
		n, err := fr.r.Read(body[len(body):min(cap(body), int(size))])
		body = body[:len(body)+n]
		if err != nil && len(body) < int(size) {
			return nil, truncated(err, int(size), len(body))
		}
	}
	return body, nil
}

func truncated(err error, want, got int) error {
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return &TruncatedFrameError{Want: want, Got: got}
	}
	return err
}

// ReadMessage reads and decodes one frame.
func (fr *FrameReader) ReadMessage() (Message, error) {
	body, err := fr.Next()
	if err != nil {
		return nil, err
	}
	return DecodeMessage(body)
}
