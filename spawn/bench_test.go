package spawn

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arbor-go/arbor/ipc"
)

// Benchmarks measure each figure against a baseline in the same run, in
// alternating rounds so that the machine's slow spells fall on both.

// bareStart runs this test binary as a plain child that answers one line
// over a pipe: what starting a process costs before arbor adds anything.
func bareStart(b *testing.B) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = withMode("bare")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		b.Fatalf("bare child said %q, %v", line, err)
	}
	stdin.Close()
	cmd.Wait()
}

// arborStart starts an actor, calls a trivial function, and stops it.
func arborStart(b *testing.B) *Actor {
	a, err := Start(context.Background(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := echo.Call(context.Background(), a.Channel(), "x"); err != nil {
		b.Fatal(err)
	}
	return a
}

func alternate(b *testing.B, rounds int, op, baseline func()) (opPer, basePer time.Duration) {
	var opT, baseT time.Duration
	for range rounds {
		b.StopTimer()
		t := time.Now()
		baseline()
		baseT += time.Since(t)
		b.StartTimer()
		t = time.Now()
		op()
		opT += time.Since(t)
	}
	return opT / time.Duration(rounds), baseT / time.Duration(rounds)
}

// BenchmarkSpawnToFirstResult: start an actor and get the result of a
// trivial call, against a bare fork/exec of the same binary that answers a
// line over a pipe. Stopping the actor is not timed; the bare child's exit
// is (it is quick: its stdin closes).
func BenchmarkSpawnToFirstResult(b *testing.B) {
	var actors []*Actor
	per, base := alternate(b, b.N, func() { actors = append(actors, arborStart(b)) }, func() { bareStart(b) })
	b.StopTimer()
	for _, a := range actors {
		a.Stop(context.Background())
	}
	b.ReportMetric(float64(per.Microseconds()), "us/spawn")
	b.ReportMetric(float64(base.Microseconds()), "baseline-us/spawn")
	b.ReportMetric(float64(per)/float64(base), "x-baseline")
}

// BenchmarkSpawn100Concurrent: 100 actors started at once, until all have
// answered, against 100 bare children started at once.
func BenchmarkSpawn100Concurrent(b *testing.B) {
	const n = 100
	parallel := func(f func(i int)) {
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() { defer wg.Done(); f(i) }()
		}
		wg.Wait()
	}
	var all []*Actor
	per, base := alternate(b, b.N, func() {
		actors := make([]*Actor, n)
		parallel(func(i int) { actors[i] = arborStart(b) })
		all = append(all, actors...)
	}, func() { parallel(func(int) { bareStart(b) }) })
	b.StopTimer()
	var wg sync.WaitGroup
	for _, a := range all {
		wg.Add(1)
		go func() { defer wg.Done(); a.Stop(context.Background()) }()
	}
	wg.Wait()
	b.ReportMetric(float64(per.Milliseconds()), "ms/100")
	b.ReportMetric(float64(base.Milliseconds()), "baseline-ms/100")
	b.ReportMetric(float64(per)/float64(base), "x-baseline")
}

func rssKiB(b *testing.B, pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Skip("no /proc")
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kib, _ := strconv.Atoi(strings.Fields(line)[1])
			return kib
		}
	}
	return 0
}

// BenchmarkIdleChildRSS: the resident memory of an idle actor after one
// call, against a bare child of the same binary.
func BenchmarkIdleChildRSS(b *testing.B) {
	var sum, baseSum int
	for range b.N {
		a := arborStart(b)
		time.Sleep(50 * time.Millisecond) // let the child settle: RSS is what it holds idle
		sum += rssKiB(b, a.PID())
		a.Stop(context.Background())

		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = withMode("bare")
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		cmd.Start()
		bufio.NewReader(stdout).ReadString('\n')
		time.Sleep(50 * time.Millisecond)
		baseSum += rssKiB(b, cmd.Process.Pid)
		stdin.Close()
		cmd.Wait()
	}
	b.ReportMetric(float64(sum)/float64(b.N)/1024, "MiB")
	b.ReportMetric(float64(baseSum)/float64(b.N)/1024, "baseline-MiB")
}

// rawChild runs the raw-echo helper over a socketpair (socket) or two
// pipes, and returns the parent's ends.
func rawChild(b *testing.B, socket bool) (io.Reader, io.Writer, func()) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = withMode("raw-echo")
	var r io.Reader
	var w io.Writer
	var closers []io.Closer
	if socket {
		p, c, err := socketpair()
		if err != nil {
			b.Fatal(err)
		}
		cmd.ExtraFiles = []*os.File{c, c}
		r, w = p, p
		closers = append(closers, p)
		defer c.Close()
	} else {
		cr, pw, _ := os.Pipe()
		pr, cw, _ := os.Pipe()
		cmd.ExtraFiles = []*os.File{cr, cw}
		r, w = pr, pw
		closers = append(closers, pr, pw)
		defer cr.Close()
		defer cw.Close()
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	return r, w, func() {
		for _, c := range closers {
			c.Close()
		}
		cmd.Wait()
	}
}

// BenchmarkTransportRoundTrip: a call's round trip to an actor over each
// inherited transport, against a raw 8-byte ping-pong with a child over the
// same kind of descriptor. It decides the default private channel.
func BenchmarkTransportRoundTrip(b *testing.B) {
	for _, tr := range []Transport{Socketpair, Pipes} {
		b.Run(tr.String(), func(b *testing.B) {
			a, err := Start(context.Background(), Options{Transport: tr})
			if err != nil {
				b.Fatal(err)
			}
			defer a.Stop(context.Background())
			r, w, stop := rawChild(b, tr == Socketpair)
			defer stop()
			ctx := context.Background()
			var buf [8]byte
			const chunk = 200
			rounds := max(b.N/chunk, 1)
			per, base := alternate(b, rounds, func() {
				for range chunk {
					echo.Call(ctx, a.Channel(), "x")
				}
			}, func() {
				for range chunk {
					w.Write(buf[:])
					io.ReadFull(r, buf[:])
				}
			})
			b.ReportMetric(float64(per.Nanoseconds())/chunk, "ns/call")
			b.ReportMetric(float64(base.Nanoseconds())/chunk, "baseline-ns/pingpong")
			b.ReportMetric(float64(per)/float64(base), "x-baseline")
		})
	}
}

// BenchmarkPeerCall measures a call from the root to an actor on the
// actor's peer socket (Dial), beside the same call on the actor's channel
// from its parent (pipes), and the floor: 8-byte ping-pong with a child
// blocking in read and write on a socketpair.
func BenchmarkPeerCall(b *testing.B) {
	ctx := context.Background()
	a, err := Start(ctx, Options{Name: "peer"})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Stop(ctx)
	peer, err := Dial(ctx, "root.peer", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer peer.Close()
	r, w, stop := rawChild(b, true)
	defer stop()
	var buf [8]byte
	const chunk = 200
	rounds := max(b.N/chunk, 1)
	per, base := alternate(b, rounds, func() {
		for range chunk {
			echo.Call(ctx, peer, "x")
		}
	}, func() {
		for range chunk {
			w.Write(buf[:])
			io.ReadFull(r, buf[:])
		}
	})
	parent, _ := alternate(b, rounds, func() {
		for range chunk {
			echo.Call(ctx, a.Channel(), "x")
		}
	}, func() {})
	b.ReportMetric(float64(per.Nanoseconds())/chunk, "ns/peer-call")
	b.ReportMetric(float64(parent.Nanoseconds())/chunk, "ns/parent-call")
	b.ReportMetric(float64(base.Nanoseconds())/chunk, "baseline-ns/pingpong")
	b.ReportMetric(float64(per)/float64(base), "x-baseline")
}

// BenchmarkRelayCall: a call relayed through one actor (root → mid → far,
// as Dial goes where no socket reaches), beside a direct call to far on its
// peer socket, in one run; the floor is an 8-byte ping-pong through a
// middle process that copies with blocking reads and writes (as the relay
// launcher does) to a child echoing on its stdio.
func BenchmarkRelayCall(b *testing.B) {
	ctx := context.Background()
	relayed, direct := relayAndDirect(b)
	w, r := throughACopier(b, "raw-echo-stdio")
	var buf [8]byte
	const chunk = 200
	rounds := max(b.N/chunk, 1)
	per, base := alternate(b, rounds, func() {
		for range chunk {
			echo.Call(ctx, relayed, "x")
		}
	}, func() {
		for range chunk {
			w.Write(buf[:])
			io.ReadFull(r, buf[:])
		}
	})
	straight, _ := alternate(b, rounds, func() {
		for range chunk {
			echo.Call(ctx, direct, "x")
		}
	}, func() {})
	b.ReportMetric(float64(per.Nanoseconds())/chunk, "ns/relayed-call")
	b.ReportMetric(float64(straight.Nanoseconds())/chunk, "ns/direct-call")
	b.ReportMetric(float64(base.Nanoseconds())/chunk, "baseline-ns/relayed-pingpong")
	b.ReportMetric(float64(per)/float64(base), "x-baseline")
}

// BenchmarkRelayStream: a stream of small ints from an actor relayed
// through one actor (root → mid → far), beside the same stream on a direct
// connection to far, in one run; the floor is as many 8-byte messages'
// bytes sent through a middle process copying with blocking I/O to a child
// that copies them back in bulk, written and read at once.
func BenchmarkRelayStream(b *testing.B) {
	ctx := context.Background()
	relayed, direct := relayAndDirect(b)
	w, r := throughACopier(b, "raw-copy-stdio")

	const items = 20000
	stream := func(ch *ipc.Channel) {
		s, err := count.Open(ctx, ch, items)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for _, err := range s.All() {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != items {
			b.Fatalf("%d of %d items", n, items)
		}
	}
	echoes := func() {
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, 8*items)
			w.Write(buf)
		}()
		io.ReadFull(r, make([]byte, 8*items))
		<-done
	}
	rounds := max(b.N, 1)
	per, base := alternate(b, rounds, func() { stream(relayed) }, echoes)
	straight, _ := alternate(b, rounds, func() { stream(direct) }, func() {})
	rate := func(d time.Duration) float64 { return items / d.Seconds() }
	b.ReportMetric(rate(per), "items/s-relayed")
	b.ReportMetric(rate(straight), "items/s-direct")
	b.ReportMetric(rate(base), "baseline-msgs/s")
	b.ReportMetric(float64(per)/float64(base), "x-baseline")
}

// relayAndDirect starts root.mid and root.mid.far below it, and dials far
// twice: relayed through mid (forced: far has a socket) and directly. All
// of it ends with the benchmark.
func relayAndDirect(b *testing.B) (relayed, direct *ipc.Channel) {
	ctx := context.Background()
	mid, err := Start(ctx, Options{Name: "mid"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { mid.Stop(ctx) })
	kept, err := sprout.Open(ctx, mid.Channel(), struct {
		Name     string
		Launched bool
	}{"far", false})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { kept.Close() })
	if _, err := kept.Recv(); err != nil {
		b.Fatal(err)
	}
	e, err := Find(ctx, "root.mid.far")
	if err != nil {
		b.Fatal(err)
	}
	if relayed, err = dialRelay(ctx, e, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { relayed.Close() })
	if direct, err = DialEntry(ctx, e, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { direct.Close() })
	return relayed, direct
}

// throughACopier starts the floor of a relay: the test launcher, which
// copies with blocking reads and writes, running a child in mode farMode
// on its stdio; what is written to w comes back on r. It ends with the
// benchmark.
func throughACopier(b *testing.B, farMode string) (io.WriteCloser, io.Reader) {
	cmd := exec.Command(os.Args[0], os.Args[0], "-test.run=^$")
	cmd.Env = append(withMode("relay"), farModeEnv+"="+farMode)
	w, _ := cmd.StdinPipe()
	r, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { w.Close(); cmd.Wait() })
	return w, r
}
