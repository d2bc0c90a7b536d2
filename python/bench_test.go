package interop

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os/exec"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/pyenv"
	"github.com/arbor-go/arbor/nursery"
)

// echoFrames is the floor for a call to Python: a Python process that
// reads a length-prefixed frame with blocking reads and writes it back,
// with no decoding at all.
const echoFrames = `
import os
r, w = 0, 1
def exactly(n):
    b = b""
    while len(b) < n:
        c = os.read(r, n - len(b))
        if not c:
            raise SystemExit(0)
        b += c
    return b
while True:
    h = exactly(4)
    os.write(w, h + exactly(int.from_bytes(h, "big")))
`

// produceFrames is the floor for a stream from Python: msgpack-encoded
// ints in frames, written in 64 KiB batches with blocking writes.
const produceFrames = `
import os, sys, msgpack
n = int(sys.argv[1])
buf = bytearray()
for i in range(n):
    body = b"\x82\xa1v" + msgpack.packb(i)
    buf += len(body).to_bytes(4, "big") + body
    if len(buf) >= 65536:
        os.write(1, buf); buf = bytearray()
os.write(1, buf)
`

func floorProcess(b *testing.B, py string, args ...string) (*exec.Cmd, io.WriteCloser, io.ReadCloser) {
	cmd := exec.Command(py, args...)
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	return cmd, in, out
}

// BenchmarkCallPython measures a Go call to a Python actor's func against a
// Python process echoing raw frames over pipes, in the same run.
func BenchmarkCallPython(b *testing.B) {
	py := pyenv.Require(b)
	cmd, in, out := floorProcess(b, py, "-c", echoFrames)
	frame := []byte{0, 0, 0, 16}
	frame = append(frame, make([]byte, 16)...) // the size of a small call
	reply := make([]byte, len(frame))
	begin := time.Now()
	for range b.N {
		if _, err := in.Write(frame); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(out, reply); err != nil {
			b.Fatal(err)
		}
	}
	floor := time.Since(begin) / time.Duration(b.N)
	in.Close()
	cmd.Wait()

	ctx := context.Background()
	var per time.Duration
	err := nursery.Open(ctx, func(ctx context.Context, n *nursery.Nursery) error {
		ch := startWorker(&testing.T{}, n, "py", nil).Channel()
		if _, err := square.Call(ctx, ch, 1); err != nil {
			return err
		}
		begin := time.Now()
		for i := range b.N {
			if _, err := square.Call(ctx, ch, i); err != nil {
				return err
			}
		}
		per = time.Since(begin) / time.Duration(b.N)
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(per.Nanoseconds())/1e3, "us/call")
	b.ReportMetric(float64(floor.Nanoseconds())/1e3, "floor-us/call")
	b.ReportMetric(float64(per)/float64(floor), "x-floor")
}

// BenchmarkStreamFromPython measures a stream of b.N small ints from a
// Python actor against a Python process writing the same frames raw.
func BenchmarkStreamFromPython(b *testing.B) {
	py := pyenv.Require(b)
	items := b.N
	cmd, in, out := floorProcess(b, py, "-c", produceFrames, fmt.Sprint(items))
	in.Close()
	begin := time.Now()
	var head [4]byte
	body := make([]byte, 64)
	for got := 0; got < items; got++ {
		if _, err := io.ReadFull(out, head[:]); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(out, body[:binary.BigEndian.Uint32(head[:])]); err != nil {
			b.Fatal(err)
		}
	}
	floor := float64(items) / time.Since(begin).Seconds()
	cmd.Wait()

	var rate float64
	err := nursery.Open(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
		ch := startWorker(&testing.T{}, n, "py", nil).Channel()
		s, err := count.Open(ctx, ch, items)
		if err != nil {
			return err
		}
		begin := time.Now()
		got := 0
		for _, err := range s.All() {
			if err != nil {
				return err
			}
			got++
		}
		if got != items {
			return fmt.Errorf("%d items of %d", got, items)
		}
		rate = float64(got) / time.Since(begin).Seconds()
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(rate/1e3, "k-items/s")
	b.ReportMetric(floor/1e3, "floor-k-items/s")
	b.ReportMetric(rate/floor, "x-floor")
}
