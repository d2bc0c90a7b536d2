// Command bench compares arbor with hashicorp/go-plugin (net/rpc and
// gRPC) and with the floor (blocking system calls on two pipes), in one
// run, the systems interleaved round by round so that a slow spell of the
// machine falls on all of them alike. It prints one Markdown table; in its
// last column, above 1 means arbor does better than the best go-plugin:
//
//	cd bench && go run . [-rounds 5] [-calls 20000]
//
// It is a module of its own so that go-plugin and gRPC never become
// dependencies of arbor.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/arbor-go/arbor/spawn"
)

// config holds the command's flags.
type config struct {
	rounds, calls, items, outstanding, starts int
}

func main() {
	spawn.Main(functions) // as an arbor actor, serve and never return
	serveFloor()
	servePlugin()

	var c config
	flag.IntVar(&c.rounds, "rounds", 5, "rounds of each measurement; each reports its median")
	flag.IntVar(&c.calls, "calls", 20000, "calls per round of the round trip")
	flag.IntVar(&c.items, "items", 1_000_000, "items per round of the stream")
	flag.IntVar(&c.outstanding, "outstanding", 1000, "callers with one call outstanding each")
	flag.IntVar(&c.starts, "starts", 20, "starts per round")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// run measures every row of the table and prints it.
func run(c config) error {
	var t table
	for _, s := range systems {
		t.systems = append(t.systems, s.name)
	}
	if err := measureStarts(&t, c); err != nil {
		return err
	}
	peers := make([]peer, 0, len(systems))
	defer func() {
		for _, p := range peers {
			p.close()
		}
	}()
	for _, s := range systems {
		p, err := s.start()
		if err != nil {
			return err
		}
		peers = append(peers, p)
	}
	if err := measureRoundTrip(&t, c, peers); err != nil {
		return err
	}
	if err := measureOutstanding(&t, c, peers); err != nil {
		return err
	}
	if err := measureStream(&t, c, peers); err != nil {
		return err
	}
	t.print(os.Stdout, c.rounds)
	return nil
}

// measureStarts times start to first call, and reads the idle child's
// resident memory.
func measureStarts(t *table, c config) error {
	startRow := t.row("start to first call", "ms", false)
	rssRow := t.row("idle child RSS", "MiB", false)
	for range c.rounds {
		for i, s := range systems {
			var total time.Duration
			for range c.starts {
				begin := time.Now()
				p, err := s.start()
				if err != nil {
					return err
				}
				_, err = p.inc(1)
				total += time.Since(begin)
				if kib, rerr := rssKiB(p.pid()); rerr == nil {
					rssRow.add(i, float64(kib)/1024)
				}
				if err := errors.Join(err, ignoreExit(p.close())); err != nil {
					return err
				}
			}
			startRow.add(i, total.Seconds()*1e3/float64(c.starts))
		}
	}
	return nil
}

// measureRoundTrip times one call at a time.
func measureRoundTrip(t *table, c config, peers []peer) error {
	rtRow := t.row("call round trip", "µs", false)
	for range c.rounds {
		for i, p := range peers {
			begin := time.Now()
			for n := range c.calls {
				v, err := p.inc(n)
				if err != nil {
					return err
				}
				if v != n+1 {
					return fmt.Errorf("%s: inc(%d) = %d", systems[i].name, n, v)
				}
			}
			rtRow.add(i, time.Since(begin).Seconds()*1e6/float64(c.calls))
		}
	}
	return nil
}

// measureOutstanding times many calls outstanding on one connection.
func measureOutstanding(t *table, c config, peers []peer) error {
	ccRow := t.row(fmt.Sprintf("%d outstanding calls", c.outstanding), "k calls/s", true)
	per := max(c.calls/c.outstanding, 1) * 5
	for range c.rounds {
		for i, p := range peers {
			if !systems[i].concurrent {
				continue
			}
			begin := time.Now()
			var wg sync.WaitGroup
			errs := make(chan error, c.outstanding)
			for g := range c.outstanding {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for n := range per {
						if v, err := p.inc(g + n); err != nil || v != g+n+1 {
							errs <- fmt.Errorf("%s: inc: %d, %v", systems[i].name, v, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			if err := <-errs; err != nil {
				return err
			}
			ccRow.add(i, float64(per*c.outstanding)/time.Since(begin).Seconds()/1e3)
		}
	}
	return nil
}

// measureStream times a stream of small ints; the floor's column is a
// stream over raw pipes.
func measureStream(t *table, c config, peers []peer) error {
	floor, err := startFloorStream(c.items)
	if err != nil {
		return err
	}
	defer floor.close()
	streamers := append([]peer{floor}, peers[1:]...)
	stRow := t.row("stream of small ints", "M items/s", true)
	for range c.rounds {
		for i, p := range streamers {
			begin := time.Now()
			got, err := p.stream(c.items)
			if errors.Is(err, errUnsupported) {
				continue
			}
			if err != nil {
				return err
			}
			if got != c.items {
				return fmt.Errorf("%s: %d items of %d", systems[i].name, got, c.items)
			}
			stRow.add(i, float64(got)/time.Since(begin).Seconds()/1e6)
		}
	}
	return nil
}

// ignoreExit ignores how a stopped child exited: only starting and calling
// are measured.
func ignoreExit(error) error { return nil }

type table struct {
	systems []string
	rows    []*row
}

type row struct {
	name, unit     string
	higherIsBetter bool
	samples        [][]float64
}

func (t *table) row(name, unit string, higherIsBetter bool) *row {
	r := &row{name: name, unit: unit, higherIsBetter: higherIsBetter, samples: make([][]float64, len(t.systems))}
	t.rows = append(t.rows, r)
	return r
}

func (r *row) add(system int, v float64) { r.samples[system] = append(r.samples[system], v) }

// median returns the median sample of a system, and false if it has none.
func (r *row) median(system int) (float64, bool) {
	s := append([]float64(nil), r.samples[system]...)
	if len(s) == 0 {
		return 0, false
	}
	sort.Float64s(s)
	return s[len(s)/2], true
}

func (t *table) print(w *os.File, rounds int) {
	fmt.Fprintf(w, "| measured (median of %d rounds) |", rounds)
	for _, s := range t.systems {
		fmt.Fprintf(w, " %s |", s)
	}
	fmt.Fprintln(w, " arbor ÷ floor | arbor's edge on the best go-plugin |")
	fmt.Fprint(w, "|---|")
	for range t.systems {
		fmt.Fprint(w, "---:|")
	}
	fmt.Fprintln(w, "---:|---:|")
	for _, r := range t.rows {
		fmt.Fprintf(w, "| %s (%s) |", r.name, r.unit)
		for i := range t.systems {
			if v, ok := r.median(i); ok {
				fmt.Fprintf(w, " %s |", format(v))
			} else {
				fmt.Fprint(w, " — |")
			}
		}
		arbor, _ := r.median(1)
		if floor, ok := r.median(0); ok && floor > 0 {
			fmt.Fprintf(w, " %.2f× |", arbor/floor)
		} else {
			fmt.Fprint(w, " — |")
		}
		best, found := 0.0, false
		for i := 2; i < len(t.systems); i++ {
			if v, ok := r.median(i); ok && (!found || r.higherIsBetter == (v > best)) {
				best, found = v, true
			}
		}
		switch {
		case !found || best == 0 || arbor == 0:
			fmt.Fprint(w, " — |")
		case r.higherIsBetter:
			fmt.Fprintf(w, " %.2f× |", arbor/best)
		default:
			fmt.Fprintf(w, " %.2f× |", best/arbor)
		}
		fmt.Fprintln(w)
	}
}

func format(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}
