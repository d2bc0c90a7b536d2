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

func main() {
	spawn.Main(functions) // as an arbor actor, serve and never return
	serveFloor()
	servePlugin()

	rounds := flag.Int("rounds", 5, "rounds of each measurement; each reports its median")
	calls := flag.Int("calls", 20000, "calls per round of the round trip")
	items := flag.Int("items", 1_000_000, "items per round of the stream")
	outstanding := flag.Int("outstanding", 1000, "callers with one call outstanding each")
	starts := flag.Int("starts", 20, "starts per round")
	flag.Parse()

	var t table
	for _, s := range systems {
		t.systems = append(t.systems, s.name)
	}
	must := func(err error) {
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	}

	// Start to first call, and the idle child's resident memory.
	startRow := t.row("start to first call", "ms", false)
	rssRow := t.row("idle child RSS", "MiB", false)
	for range *rounds {
		for i, s := range systems {
			var total time.Duration
			for range *starts {
				begin := time.Now()
				p, err := s.start()
				must(err)
				_, err = p.inc(1)
				must(err)
				total += time.Since(begin)
				if kib, err := rssKiB(p.pid()); err == nil {
					rssRow.add(i, float64(kib)/1024)
				}
				must(ignoreExit(p.close()))
			}
			startRow.add(i, total.Seconds()*1e3/float64(*starts))
		}
	}

	peers := make([]peer, len(systems))
	for i, s := range systems {
		p, err := s.start()
		must(err)
		peers[i] = p
		defer p.close()
	}

	// One call at a time.
	rtRow := t.row("call round trip", "µs", false)
	for range *rounds {
		for i, p := range peers {
			begin := time.Now()
			for n := range *calls {
				v, err := p.inc(n)
				must(err)
				if v != n+1 {
					must(fmt.Errorf("%s: inc(%d) = %d", systems[i].name, n, v))
				}
			}
			rtRow.add(i, time.Since(begin).Seconds()*1e6/float64(*calls))
		}
	}

	// Many calls outstanding on one connection.
	ccRow := t.row(fmt.Sprintf("%d outstanding calls", *outstanding), "k calls/s", true)
	for range *rounds {
		for i, p := range peers {
			if !systems[i].concurrent {
				continue
			}
			per := max(*calls / *outstanding, 1) * 5
			begin := time.Now()
			var wg sync.WaitGroup
			errs := make(chan error, *outstanding)
			for g := range *outstanding {
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
			for err := range errs {
				must(err)
			}
			ccRow.add(i, float64(per**outstanding)/time.Since(begin).Seconds()/1e3)
		}
	}

	// A stream of small ints.
	floor, err := startFloorStream(*items)
	must(err)
	defer floor.close()
	streamers := append([]peer{floor}, peers[1:]...)
	stRow := t.row("stream of small ints", "M items/s", true)
	for range *rounds {
		for i, p := range streamers {
			begin := time.Now()
			got, err := p.stream(*items)
			if errors.Is(err, errUnsupported) {
				continue
			}
			must(err)
			if got != *items {
				must(fmt.Errorf("%s: %d items of %d", systems[i].name, got, *items))
			}
			stRow.add(i, float64(got)/time.Since(begin).Seconds()/1e6)
		}
	}

	t.print(os.Stdout, *rounds)
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
