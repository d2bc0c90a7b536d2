package ipc

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Benchmarks run each measurement against a baseline in the same run and
// report the ratio ("x-baseline"). Each runs in two set-ups: both ends in
// this process ("inproc"), and the far end in a child process — this test
// binary run again — over an inherited socketpair ("xproc"), which is how
// arbor actors talk.

const benchPeerEnv = "ARBOR_IPC_BENCH_PEER"

// benchPeer runs in the child process: it serves on fd 3 in the mode the
// parent asked for and exits when the parent goes away.
func benchPeer(mode string) {
	f := os.NewFile(3, "peer")
	conn, err := net.FileConn(f)
	f.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench peer:", err)
		os.Exit(2)
	}
	switch mode {
	case "raw":
		rawEcho(conn)
	case "rawstream":
		rawSink(conn, 0)
	default:
		ch, err := Open(context.Background(), conn, Options{Functions: testFuncs})
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench peer:", err)
			os.Exit(2)
		}
		<-ch.Done()
		ch.Close()
	}
	os.Exit(0)
}

// rawEcho answers every 8-byte message with the same 8 bytes.
func rawEcho(c io.ReadWriter) {
	var buf [8]byte
	for {
		if _, err := io.ReadFull(c, buf[:]); err != nil {
			return
		}
		if _, err := c.Write(buf[:]); err != nil {
			return
		}
	}
}

// rawSink decodes msgpack ints until n have arrived (or forever for n=0)
// and answers with one byte at the end.
func rawSink(c io.ReadWriter, n int) {
	dec := msgpack.NewDecoder(bufio.NewReaderSize(c, 64<<10))
	for i := 0; n == 0 || i < n; i++ {
		if _, err := dec.DecodeInt(); err != nil {
			return
		}
	}
	c.Write([]byte{1})
}

type benchSetup struct {
	name string
	// peer returns this end of a connection whose far end runs mode.
	peer func(b *testing.B, mode string) io.ReadWriteCloser
}

var benchSetups = []benchSetup{
	{"inproc", inprocPeer},
	{"xproc", xprocPeer},
}

func inprocPeer(b *testing.B, mode string) io.ReadWriteCloser {
	here, there := socketPair(b)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		switch mode {
		case "raw":
			rawEcho(there)
		case "rawstream":
			rawSink(there, 0)
		default:
			ch, err := Open(context.Background(), there, Options{Functions: testFuncs})
			if err != nil {
				return
			}
			<-ch.Done()
			ch.Close()
			return
		}
		there.Close()
	}()
	b.Cleanup(func() {
		here.Close()
		wg.Wait()
	})
	return here
}

func xprocPeer(b *testing.B, mode string) io.ReadWriteCloser {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		b.Fatal(err)
	}
	syscall.CloseOnExec(fds[0])
	theirs := os.NewFile(uintptr(fds[1]), "theirs")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchPeerEnv+"="+mode, "GOMAXPROCS=1")
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	theirs.Close()
	f := os.NewFile(uintptr(fds[0]), "ours")
	conn, err := net.FileConn(f)
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		conn.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return conn
}

func openBench(b *testing.B, conn io.ReadWriteCloser) *Channel {
	ch, err := Open(context.Background(), conn, Options{Initiator: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ch.Close() })
	return ch
}

// timeBaseline runs op n times and returns the time per op.
func timeBaseline(n int, op func()) time.Duration {
	start := time.Now()
	for range n {
		op()
	}
	return time.Since(start) / time.Duration(n)
}

// BenchmarkCallRoundTrip: one unary call at a time, against a raw 8-byte
// ping-pong over the same kind of socket.
func BenchmarkCallRoundTrip(b *testing.B) {
	for _, setup := range benchSetups {
		b.Run(setup.name, func(b *testing.B) {
			raw := setup.peer(b, "raw")
			var buf [8]byte
			base := timeBaseline(max(b.N, 5000), func() {
				raw.Write(buf[:])
				io.ReadFull(raw, buf[:])
			})
			ch := openBench(b, setup.peer(b, "serve"))
			ctx := context.Background()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if _, err := add.Call(ctx, ch, addArgs{i, 1}); err != nil {
					b.Fatal(err)
				}
			}
			per := time.Since(start) / time.Duration(b.N)
			b.ReportMetric(float64(base.Nanoseconds()), "baseline-ns/op")
			b.ReportMetric(float64(per)/float64(base), "x-baseline")
		})
	}
}

// BenchmarkStreamThroughput: small items through a stream with flow control,
// against encoding the same ints with msgpack straight onto the socket and
// decoding them on the other side.
func BenchmarkStreamThroughput(b *testing.B) {
	for _, setup := range benchSetups {
		b.Run(setup.name, func(b *testing.B) {
			n := max(b.N, 100000)
			raw := setup.peer(b, "rawstream")
			w := bufio.NewWriterSize(raw, 64<<10)
			enc := msgpack.NewEncoder(w)
			start := time.Now()
			for i := range n {
				enc.EncodeInt(int64(i))
			}
			w.Flush()
			raw.(interface{ CloseWrite() error }).CloseWrite()
			io.ReadAll(raw)
			baseRate := float64(n) / time.Since(start).Seconds()

			ch := openBench(b, setup.peer(b, "serve"))
			b.ResetTimer()
			start = time.Now()
			s, err := count.Open(context.Background(), ch, b.N)
			if err != nil {
				b.Fatal(err)
			}
			got := 0
			for _, err := range s.All() {
				if err != nil {
					b.Fatal(err)
				}
				got++
			}
			if got != b.N {
				b.Fatalf("got %d items, want %d", got, b.N)
			}
			rate := float64(b.N) / time.Since(start).Seconds()
			b.ReportMetric(rate, "items/s")
			b.ReportMetric(baseRate, "baseline-items/s")
			b.ReportMetric(rate/baseRate, "x-baseline")
		})
	}
}

// BenchmarkConcurrentCalls: 1000 callers with one call outstanding each
// over one channel; the baseline is the same load of raw ping-pongs over
// one socket, serialised by a mutex.
func BenchmarkConcurrentCalls(b *testing.B) {
	const callers = 1000
	for _, setup := range benchSetups {
		b.Run(setup.name, func(b *testing.B) {
			ch := openBench(b, setup.peer(b, "serve"))
			ctx := context.Background()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for g := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := g; i < b.N; i += callers {
						if _, err := add.Call(ctx, ch, addArgs{i, 1}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			rate := float64(b.N) / time.Since(start).Seconds()
			b.StopTimer()
			raw := setup.peer(b, "raw")
			var buf [8]byte
			base := timeBaseline(max(b.N/10, 2000), func() {
				raw.Write(buf[:])
				io.ReadFull(raw, buf[:])
			})
			b.ReportMetric(rate, "calls/s")
			b.ReportMetric(1/base.Seconds(), "baseline-pingpongs/s")
			b.ReportMetric(rate*base.Seconds(), "x-baseline")
		})
	}
}
