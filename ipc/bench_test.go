package ipc

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
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
	if strings.HasPrefix(mode, "pipes-") {
		pipesPeer(strings.TrimPrefix(mode, "pipes-"))
	}
	if mode == "raw" {
		floorEcho(3, 3) // the inherited socket
	}
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
	case "rawbatch":
		rawBatchEcho(conn)
	case "rawstream":
		rawSink(conn)
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

// rawBatchEcho echoes whatever arrives, as it arrives.
func rawBatchEcho(c io.ReadWriter) {
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
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

// sinkBatch is how many ints rawSink decodes between acknowledgements.
const sinkBatch = 10000

// rawSink decodes msgpack ints and answers one byte for every sinkBatch of
// them, until the stream ends.
func rawSink(c io.ReadWriter) {
	dec := msgpack.NewDecoder(bufio.NewReaderSize(c, 64<<10))
	for {
		for range sinkBatch {
			if _, err := dec.DecodeInt(); err != nil {
				return
			}
		}
		if _, err := c.Write([]byte{1}); err != nil {
			return
		}
	}
}

// pipesPeer serves on the inherited pipes 3 (in) and 4 (out). Its "raw"
// mode is the floor: blocking read and write on the descriptors
// themselves, no poller, no goroutine hand-off.
func pipesPeer(mode string) {
	if mode == "raw" {
		floorEcho(3, 4)
	}
	syscall.SetNonblock(3, true)
	syscall.SetNonblock(4, true)
	conn := &pipes{r: os.NewFile(3, "in"), w: os.NewFile(4, "out")}
	ch, err := Open(context.Background(), conn, Options{Functions: testFuncs})
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench peer:", err)
		os.Exit(2)
	}
	<-ch.Done()
	ch.Close()
	os.Exit(0)
}

// floorEcho is the child's end of the floor: it echoes 8-byte messages
// from in to out with blocking system calls, then exits when in ends.
func floorEcho(in, out int) {
	var buf [8]byte
	for {
		if n, err := syscall.Read(in, buf[:]); err != nil || n == 0 {
			os.Exit(0)
		}
		if _, err := syscall.Write(out, buf[:]); err != nil {
			os.Exit(0)
		}
	}
}

// blockingPipes is the parent's end of the floor: blocking system calls on
// two pipes.
type blockingPipes struct{ r, w int }

func (p *blockingPipes) Read(b []byte) (int, error)  { return syscall.Read(p.r, b) }
func (p *blockingPipes) Write(b []byte) (int, error) { return syscall.Write(p.w, b) }
func (p *blockingPipes) Close() error {
	if p.w != p.r {
		syscall.Close(p.w)
	}
	return syscall.Close(p.r)
}

// startBenchPeer runs this test binary again as the far end in mode, with
// files as its descriptors 3, 4, ..., which it then closes here.
func startBenchPeer(b testing.TB, mode string, files ...*os.File) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchPeerEnv+"="+mode, "GOMAXPROCS=1")
	cmd.ExtraFiles = files
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	for _, f := range files {
		f.Close()
	}
	return cmd
}

// stopBenchPeer closes conn at the end of the test and reaps the far end,
// killing it if it has not gone in 5 s.
func stopBenchPeer(b testing.TB, conn io.Closer, cmd *exec.Cmd) {
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
}

// xpipePeer starts the far end in a child process over two pipes, as
// spawn's default transport does. For "raw", both ends use blocking
// system calls; otherwise this end is a pollable pipe pair for a Channel.
func xpipePeer(b *testing.B, mode string) io.ReadWriteCloser {
	childIn, toChild, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	fromChild, childOut, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd := startBenchPeer(b, "pipes-"+mode, childIn, childOut)
	var conn io.ReadWriteCloser = &pipes{r: fromChild, w: toChild}
	if mode == "raw" {
		// Fd puts the descriptors in blocking mode: the floor's system
		// calls block on them; the Files stay open until Close.
		raw := &blockingPipes{r: int(fromChild.Fd()), w: int(toChild.Fd())}
		conn = &keptPipes{blockingPipes: raw, files: []*os.File{fromChild, toChild}}
	}
	stopBenchPeer(b, conn, cmd)
	return conn
}

// keptPipes is blockingPipes over descriptors that Files own.
type keptPipes struct {
	*blockingPipes
	files []*os.File
}

func (k *keptPipes) Close() error {
	for _, f := range k.files {
		f.Close()
	}
	return nil
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
		case "rawbatch":
			rawBatchEcho(there)
		case "rawstream":
			rawSink(there)
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
	conn, _ := xprocPeerCmd(b, mode)
	return conn
}

// xprocPeerCmd is xprocPeer that also returns the child process.
func xprocPeerCmd(b testing.TB, mode string) (io.ReadWriteCloser, *exec.Cmd) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		b.Fatal(err)
	}
	syscall.CloseOnExec(fds[0])
	theirs := os.NewFile(uintptr(fds[1]), "theirs")
	cmd := startBenchPeer(b, mode, theirs)
	var conn io.ReadWriteCloser
	if mode == "raw" {
		conn = &blockingPipes{r: fds[0], w: fds[0]} // the floor on this end too
	} else {
		f := os.NewFile(uintptr(fds[0]), "ours")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		conn = c
	}
	stopBenchPeer(b, conn, cmd)
	return conn, cmd
}

func openBench(b *testing.B, conn io.ReadWriteCloser) *Channel {
	ch, err := Open(context.Background(), conn, Options{Initiator: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ch.Close() })
	return ch
}

// interleave measures op and its baseline in alternating rounds, so that
// the machine's slow and fast spells (frequent on small VMs, where waking
// another process's thread varies from 5 to 50 µs) fall on both alike. It
// runs op n times in all and returns the time per op of each.
func interleave(b *testing.B, n int, op, baseline func(k int)) (per, basePer seconds) {
	const rounds = 10
	var opTime, baseTime time.Duration
	done := 0
	for r := range rounds {
		k := (n - done) / (rounds - r)
		if k == 0 {
			continue
		}
		b.StopTimer()
		start := time.Now()
		baseline(k)
		baseTime += time.Since(start)
		b.StartTimer()
		start = time.Now()
		op(k)
		opTime += time.Since(start)
		done += k
	}
	return seconds(opTime.Seconds() / float64(n)), seconds(baseTime.Seconds() / float64(n))
}

// seconds is a duration kept in floating point, since a baseline op can take
// less than a nanosecond per item.
type seconds float64

func (s seconds) Seconds() float64 { return float64(s) }

func pingPong(raw io.ReadWriter, k int) {
	var buf [8]byte
	for range k {
		raw.Write(buf[:])
		io.ReadFull(raw, buf[:])
	}
}

// BenchmarkCallRoundTrip: one unary call at a time, against a raw 8-byte
// ping-pong over the same kind of connection. "xpipe" is spawn's default
// transport, and its baseline the floor: the child blocks in read and
// write on its inherited pipes, the parent in blocking system calls.
func BenchmarkCallRoundTrip(b *testing.B) {
	setups := append(benchSetups[:len(benchSetups):len(benchSetups)], benchSetup{"xpipe", xpipePeer})
	for _, setup := range setups {
		b.Run(setup.name, func(b *testing.B) {
			raw := setup.peer(b, "raw")
			ch := openBench(b, setup.peer(b, "serve"))
			ctx := context.Background()
			b.ResetTimer()
			per, base := interleave(b, b.N, func(k int) {
				for i := range k {
					if _, err := add.Call(ctx, ch, addArgs{i, 1}); err != nil {
						b.Fatal(err)
					}
				}
			}, func(k int) { pingPong(raw, k) })
			b.ReportAllocs()
			b.ReportMetric(base.Seconds()*1e9, "baseline-ns/op")
			b.ReportMetric(per.Seconds()/base.Seconds(), "x-baseline")
		})
	}
}

// BenchmarkStreamThroughput: small items through a stream with flow control,
// against encoding the same ints with msgpack straight onto the socket and
// decoding them on the other side.
func BenchmarkStreamThroughput(b *testing.B) {
	for _, setup := range benchSetups {
		b.Run(setup.name, func(b *testing.B) {
			raw := setup.peer(b, "rawstream")
			w := bufio.NewWriterSize(raw, 64<<10)
			enc := msgpack.NewEncoder(w)
			var ack [1]byte
			ch := openBench(b, setup.peer(b, "serve"))
			n := max(b.N, 10*sinkBatch)
			b.ResetTimer()
			per, base := interleave(b, n, func(k int) {
				s, err := count.Open(context.Background(), ch, k)
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
				if got != k {
					b.Fatalf("got %d items, want %d", got, k)
				}
			}, func(k int) {
				// The sink acknowledges every sinkBatch items; send whole
				// batches so each round ends on an acknowledgement.
				batches := max(k/sinkBatch, 1)
				for i := range batches * sinkBatch {
					enc.EncodeInt(int64(i))
				}
				w.Flush()
				for range batches {
					io.ReadFull(raw, ack[:])
				}
			})
			b.ReportMetric(1/per.Seconds(), "items/s")
			b.ReportMetric(1/base.Seconds(), "baseline-items/s")
			b.ReportMetric(base.Seconds()/per.Seconds(), "x-baseline")
		})
	}
}

// BenchmarkConcurrentCalls: 1000 callers with one call outstanding each
// over one channel, against raw ping-pongs one at a time.
func BenchmarkConcurrentCalls(b *testing.B) {
	const callers = 1000
	for _, setup := range benchSetups {
		b.Run(setup.name, func(b *testing.B) {
			raw := setup.peer(b, "rawbatch")
			ch := openBench(b, setup.peer(b, "serve"))
			ctx := context.Background()
			n := max(b.N, 10*callers)
			b.ResetTimer()
			per, base := interleave(b, n, func(k int) {
				var wg sync.WaitGroup
				for g := range callers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := g; i < k; i += callers {
							if _, err := add.Call(ctx, ch, addArgs{i, 1}); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
			}, func(k int) {
				// The same number of 8-byte requests, 1000 in flight at a
				// time, written and echoed in whole batches.
				batch := make([]byte, 8*callers)
				for done := 0; done < k; done += callers {
					raw.Write(batch)
					io.ReadFull(raw, batch)
				}
			})
			b.ReportMetric(1/per.Seconds(), "calls/s")
			b.ReportMetric(1/base.Seconds(), "baseline-msgs/s")
			b.ReportMetric(base.Seconds()/per.Seconds(), "x-baseline")
		})
	}
}
