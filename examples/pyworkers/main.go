// Command pyworkers runs a pool of Python workers as arbor actors: each
// streams the primes of its share of a range back to this Go parent, which
// checks them against its own count. With -fail, one worker is given an
// empty range: its Python ValueError arrives as a RemoteError with the
// Python traceback, the other workers' streams are cancelled, and the whole
// tree is torn down.
//
//	go run ./examples/pyworkers [-workers 4] [-limit 200000] [-fail]
//
// It needs Python 3 with msgpack (Debian: apt-get install python3-msgpack);
// -python or $ARBOR_PYTHON names the interpreter.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/nursery"
	"github.com/arbor-go/arbor/protocol"
	"github.com/arbor-go/arbor/spawn"
)

type span struct {
	Lo int `msgpack:"lo"`
	Hi int `msgpack:"hi"`
}

// primes is what worker.py serves.
var primes = ipc.NewStream[span, int]("primes", nil)

func main() {
	python := flag.String("python", envOr("ARBOR_PYTHON", "python3"), "the Python interpreter")
	worker := flag.String("worker", besideThisFile("worker.py"), "the Python worker script")
	workers := flag.Int("workers", 4, "Python workers in the pool")
	limit := flag.Int("limit", 200000, "count the primes below this")
	fail := flag.Bool("fail", false, "give the last worker an empty range, so that it fails")
	flag.Parse()

	os.Exit(nursery.Main(func(ctx context.Context, root *nursery.Nursery) error {
		counts := make([]int, *workers)
		// The pool is a nursery of its own: it returns once every worker's
		// stream has ended, and has stopped the workers.
		err := nursery.Open(ctx, func(ctx context.Context, n *nursery.Nursery) error {
			return startPool(n, *python, *worker, *limit, *fail, counts)
		})
		if err != nil {
			return err
		}
		total := 0
		for _, c := range counts {
			total += c
		}
		if want := countPrimes(*limit); total != want {
			return fmt.Errorf("the workers found %d primes below %d, want %d", total, *limit, want)
		}
		fmt.Printf("%d Python workers found the %d primes below %d: %v\n", *workers, total, *limit, counts)
		return nil
	}))
}

// startPool starts one worker for each of counts, and has each stream its
// share of the primes below limit, counting them.
func startPool(n *nursery.Nursery, python, worker string, limit int, fail bool, counts []int) error {
	workers := len(counts)
	for i := range workers {
		w, err := n.StartActor(spawn.Options{
			Name: fmt.Sprint("py-", i), Binary: python, Args: []string{worker},
		})
		if err != nil {
			return err
		}
		share := span{Lo: i * limit / workers, Hi: (i + 1) * limit / workers}
		if fail && i == workers-1 {
			share.Hi = share.Lo
		}
		n.Go(func(ctx context.Context) error {
			s, err := primes.Open(ctx, w.Channel(), share)
			if err != nil {
				return err
			}
			for p, err := range s.All() {
				if err != nil {
					return explain(err)
				}
				if p < share.Lo || p >= share.Hi {
					return fmt.Errorf("%s sent %d, outside %d..%d", w.ID().Name, p, share.Lo, share.Hi)
				}
				counts[i]++
			}
			return nil
		})
	}
	return nil
}

// explain prints where a Python exception came from before the nursery
// reports it.
func explain(err error) error {
	var re *protocol.RemoteError
	if errors.As(err, &re) && re.Stack != "" {
		fmt.Fprintf(os.Stderr, "%s raised %s: %s\n%s\n", re.Source.Name, re.Type, re.Message, re.Stack)
	}
	return err
}

func countPrimes(limit int) int {
	composite := make([]bool, limit)
	n := 0
	for i := 2; i < limit; i++ {
		if !composite[i] {
			n++
			for j := i * i; j < limit; j += i {
				composite[j] = true
			}
		}
	}
	return n
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// besideThisFile finds a file next to this source file, for go run and the
// example's test; a deployed binary is given -worker.
func besideThisFile(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), name)
}
