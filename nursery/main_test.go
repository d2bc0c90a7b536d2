package nursery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/proctest"
	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/protocol"
	"github.com/arbor-go/arbor/spawn"
	"go.uber.org/goleak"
)

// The test binary is every actor these tests start.

type DiskFullError struct{ Disk string }

func (e *DiskFullError) Error() string { return "disk " + e.Disk + " is full" }

var (
	square = ipc.NewFunc("test.square", func(ctx context.Context, x int) (int, error) { return x * x, nil })
	fail   = ipc.NewFunc("test.fail", func(ctx context.Context, disk string) (int, error) {
		return 0, &DiskFullError{Disk: disk}
	})
	endless = ipc.NewStream("test.endless", func(ctx context.Context, _ struct{}, out *ipc.Yielder[int]) error {
		for i := 0; ; i++ {
			if err := out.Send(i); err != nil {
				return err
			}
		}
	})
	// watch blocks until cancelled and reports that it saw the cancellation
	// by returning it.
	watch = ipc.NewFunc("test.watch", func(ctx context.Context, _ struct{}) (string, error) {
		<-ctx.Done()
		return "", context.Cause(ctx)
	})
	// wedged says it is stuck, then ignores cancellation and SIGTERM
	// inside a blocking system call.
	wedged = ipc.NewStream("test.wedged", func(ctx context.Context, _ struct{}, out *ipc.Yielder[string]) error {
		signal.Ignore(syscall.SIGTERM)
		r, _, _ := os.Pipe()
		if err := out.Send("stuck"); err != nil {
			return err
		}
		var b [1]byte
		syscall.Read(int(r.Fd()), b[:]) // never returns
		return nil
	})
	// pingpong answers each number with its double.
	pingpong = ipc.NewContext("test.pingpong", func(ctx context.Context, greeting string, s *ipc.Session[string, int, int]) (int, error) {
		if err := s.Started(greeting + " ready"); err != nil {
			return 0, err
		}
		n := 0
		for {
			v, err := s.Recv()
			if err == io.EOF {
				return n, nil
			}
			if err != nil {
				return n, err
			}
			n++
			if err := s.Send(2 * v); err != nil {
				return n, err
			}
		}
	})
	selfCancel = ipc.NewFunc("test.selfCancel", func(ctx context.Context, _ struct{}) (int, error) {
		ctx, cancel := context.WithCancel(ctx)
		cancel()
		return 0, ctx.Err()
	})
	// holdWedged starts a wedged grandchild in a nursery of its own,
	// reports the grandchild's pid once it is stuck, and waits.
	holdWedged = ipc.NewStream("test.holdWedged", func(ctx context.Context, ms int, out *ipc.Yielder[int]) error {
		d := time.Duration(ms) * time.Millisecond
		return Open(ctx, func(ctx context.Context, n *Nursery) error {
			g, err := n.StartActor(spawn.Options{Name: "wedged"})
			if err != nil {
				return err
			}
			s, err := wedged.Open(ctx, g.Channel(), struct{}{})
			if err != nil {
				return err
			}
			if _, err := s.Recv(); err != nil {
				return err
			}
			if err := out.Send(g.PID()); err != nil {
				return err
			}
			<-ctx.Done()
			return ctx.Err()
		}, WithDefaults(spawn.Options{GracePeriod: d, KillDelay: d}))
	})
	// noteCancel marks file+".up" once it runs, waits for its cancellation
	// and writes its cause to file.
	noteCancel = ipc.NewFunc("test.noteCancel", func(ctx context.Context, file string) (int, error) {
		if err := os.WriteFile(file+".up", nil, 0o600); err != nil {
			return 0, err
		}
		<-ctx.Done()
		if err := os.WriteFile(file, []byte(context.Cause(ctx).Error()), 0o600); err != nil {
			return 0, err
		}
		return 0, ctx.Err()
	})
	// noteCanceller marks file+".up" once it runs, waits for its
	// cancellation and writes the name of its canceller to file.
	noteCanceller = ipc.NewFunc("test.noteCanceller", func(ctx context.Context, file string) (int, error) {
		if err := os.WriteFile(file+".up", nil, 0o600); err != nil {
			return 0, err
		}
		<-ctx.Done()
		if err := os.WriteFile(file, []byte(ipc.Canceller(ctx).Name), 0o600); err != nil {
			return 0, err
		}
		return 0, ctx.Err()
	})
	// relayCancel calls noteCanceller in an actor of its own, so that a
	// cancellation of relayCancel reaches a grandchild of its caller.
	relayCancel = ipc.NewFunc("test.relayCancel", func(ctx context.Context, file string) (int, error) {
		err := Open(ctx, func(ctx context.Context, n *Nursery) error {
			a, err := n.StartActor(spawn.Options{Name: "leaf"})
			if err != nil {
				return err
			}
			_, err = noteCanceller.Call(ctx, a.Channel(), file)
			return err
		})
		return 0, err
	})
	// noteCancelCtx is a context function that notes its cancellation.
	noteCancelCtx = ipc.NewContext("test.noteCancelCtx", func(ctx context.Context, file string, s *ipc.Session[string, int, int]) (int, error) {
		if err := s.Started("open"); err != nil {
			return 0, err
		}
		_, err := s.Recv() // no item comes: it ends with the cancellation
		os.WriteFile(file, []byte(context.Cause(ctx).Error()), 0o600)
		return 0, err
	})
	// slowForever yields an item every 20 ms until Send fails, then notes
	// that in file.
	slowForever = ipc.NewStream("test.slowForever", func(ctx context.Context, file string, out *ipc.Yielder[int]) error {
		for i := 0; ; i++ {
			if err := out.Send(i); err != nil {
				os.WriteFile(file, []byte(err.Error()), 0o600)
				return err
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	nap = ipc.NewFunc("test.nap", func(ctx context.Context, ms int) (int, error) {
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
			return ms, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	})
	// stubborn marks in file that it runs, and when cancelled fails with
	// an error of its own 300 ms later.
	stubborn = ipc.NewFunc("test.stubborn", func(ctx context.Context, file string) (int, error) {
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			return 0, err
		}
		<-ctx.Done()
		time.Sleep(300 * time.Millisecond)
		return 0, errors.New("stubborn: my own failure, after the cancellation")
	})
	// failOnceUp fails as soon as file exists.
	failOnceUp = ipc.NewFunc("test.failOnceUp", func(ctx context.Context, file string) (int, error) {
		for {
			if _, err := os.Stat(file); err == nil {
				return 0, errors.New("the first failure")
			}
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(time.Millisecond):
			}
		}
	})
	brokenStream = ipc.NewStream("test.brokenStream", func(ctx context.Context, _ struct{}, out *ipc.Yielder[int]) error {
		if err := out.Send(1); err != nil {
			return err
		}
		return errors.New("the stream failed")
	})
	// failTogether marks its name in a directory and fails once its
	// partner has marked its own, whatever its ctx says: two leaves that
	// fail at the same moment.
	failTogether = ipc.NewFunc("test.failTogether", func(ctx context.Context, a [3]string) (int, error) {
		dir, me, partner := a[0], a[1], a[2]
		if err := os.WriteFile(filepath.Join(dir, me), nil, 0o600); err != nil {
			return 0, err
		}
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if _, err := os.Stat(filepath.Join(dir, partner)); err == nil {
				break
			}
		}
		return 0, &DiskFullError{Disk: me}
	})
	// pairFails runs two failTogether leaves in a nursery of its own.
	pairFails = ipc.NewFunc("test.pairFails", func(ctx context.Context, dir string) (int, error) {
		return 0, Open(ctx, func(ctx context.Context, n *Nursery) error {
			for _, p := range [][2]string{{"a", "b"}, {"b", "a"}} {
				if _, err := RunInActor(n, failTogether, [3]string{dir, p[0], p[1]}, spawn.Options{Name: p[0]}); err != nil {
					return err
				}
			}
			return nil
		})
	})
	// sentinel fails with a wrapped registered sentinel.
	sentinel = ipc.NewFunc("test.sentinel", func(ctx context.Context, path string) (int, error) {
		f, err := os.Open(path)
		if err != nil {
			return 0, fmt.Errorf("loading the config: %w", err)
		}
		f.Close()
		return 0, fmt.Errorf("reading: %w", io.EOF)
	})
	childArgs = ipc.NewFunc("test.args", func(ctx context.Context, _ struct{}) ([]string, error) {
		return os.Args[1:], nil
	})
	exitNow = ipc.NewFunc("test.exitNow", func(ctx context.Context, code int) (int, error) {
		os.Exit(code)
		return 0, nil
	})
	numbers = ipc.NewStream("test.numbers", func(ctx context.Context, a [2]int, out *ipc.Yielder[int]) error {
		for i := a[0]; i < a[1]; i++ {
			if err := out.Send(i); err != nil {
				return err
			}
		}
		return nil
	})
	// merge starts two producers in a nursery of its own and passes on
	// their items, tagged with their source.
	merge = ipc.NewStream("test.merge", func(ctx context.Context, count int, out *ipc.Yielder[[2]int]) error {
		return Open(ctx, func(ctx context.Context, n *Nursery) error {
			items := make(chan [2]int)
			errs := make(chan error, 2)
			for src := range 2 {
				p, err := n.StartActor(spawn.Options{Name: "producer-" + strconv.Itoa(src)})
				if err != nil {
					return err
				}
				go func() {
					s, err := numbers.Open(ctx, p.Channel(), [2]int{0, count})
					if err != nil {
						errs <- err
						return
					}
					for v, err := range s.All() {
						if err != nil {
							errs <- err
							return
						}
						select {
						case items <- [2]int{src, v}:
						case <-ctx.Done():
							errs <- ctx.Err()
							return
						}
					}
					errs <- nil
				}()
			}
			for done := 0; done < 2; {
				select {
				case it := <-items:
					if err := out.Send(it); err != nil {
						return err
					}
				case err := <-errs:
					if err != nil {
						return err
					}
					done++
				}
			}
			return nil
		})
	})
)

type treeArgs struct {
	Depth, Breadth int
	Path, Failing  string
	// Dir, if set, is where each leaf marks that it is up (a file named by
	// its path), and where the failing leaf waits for a file named "go"
	// before it fails: benchmarks time the teardown alone.
	Dir string
}

// tree runs a subtree: at depth 0 it is a leaf, and the leaf whose path is
// Failing fails; otherwise it runs Breadth children one level down, in a
// nursery of its own. (Declared in init: it calls itself.)
var tree *ipc.Func[treeArgs, int]

var functions *ipc.Table

func init() {
	protocol.RegisterError[*DiskFullError]("nursery_test.DiskFull")
	tree = ipc.NewFunc("test.tree", runTree)
	functions = ipc.MustNewTable(square, fail, endless, watch, wedged, holdWedged, tree, pingpong, selfCancel, numbers, merge, exitNow, noteCancel, noteCancelCtx, noteCanceller, relayCancel, childArgs, slowForever, nap, stubborn, failOnceUp, brokenStream, failTogether, pairFails, sentinel)
}

func runTree(ctx context.Context, a treeArgs) (int, error) {
	if a.Depth == 0 {
		if a.Dir != "" {
			os.WriteFile(filepath.Join(a.Dir, a.Path), nil, 0o600)
			for a.Path == a.Failing {
				if _, err := os.Stat(filepath.Join(a.Dir, "go")); err == nil {
					break
				}
				select {
				case <-ctx.Done():
					return 0, ctx.Err()
				case <-time.After(time.Millisecond):
				}
			}
		}
		if a.Path == a.Failing {
			return 0, errors.New("leaf " + a.Path + " failed")
		}
		<-ctx.Done()
		return 0, ctx.Err()
	}
	err := Open(ctx, func(ctx context.Context, n *Nursery) error {
		for i := range a.Breadth {
			child := treeArgs{Depth: a.Depth - 1, Breadth: a.Breadth, Path: a.Path + "." + strconv.Itoa(i), Failing: a.Failing, Dir: a.Dir}
			if _, err := RunInActor(n, tree, child, spawn.Options{Name: "n" + strconv.Itoa(i)}); err != nil {
				return err
			}
		}
		return nil
	})
	return 0, err
}

const benchModeEnv = "ARBOR_NURSERY_BENCH"

func TestMain(m *testing.M) {
	if os.Getenv("GORACE") == "" {
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	if os.Getenv(benchModeEnv) == "bare" {
		// A baseline child: start, answer a line, wait for stdin to end.
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
	spawn.Main(functions)
	goleak.VerifyTestMain(m)
}

var (
	noChildrenLeft = proctest.NoChildrenLeft
	within         = proctest.Within
	alive          = proctest.Alive
)

func describe(err error) string {
	if err == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%T: %v", err, err)
}

// ipcFunc declares a call-only function with other types than the served one.
func ipcFunc[A, R any](name string) *ipc.Func[A, R] { return ipc.NewFunc[A, R](name, nil) }

// The first signal NotifyContext watches cancels its ctx with a
// *SignalError that names it and is a cancellation.
func TestNotifyContextCancelsWithTheSignal(t *testing.T) {
	ctx, stop := NotifyContext(context.Background(), syscall.SIGUSR1)
	defer stop()
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("SIGUSR1 did not cancel ctx")
	}
	cause := context.Cause(ctx)
	var se *SignalError
	if !errors.As(cause, &se) || se.Signal != syscall.SIGUSR1 || !errors.Is(cause, context.Canceled) {
		t.Fatalf("cause %s, want a *SignalError for SIGUSR1 that is context.Canceled", describe(cause))
	}
	if got, want := cause.Error(), "received "+syscall.SIGUSR1.String(); got != want {
		t.Fatalf("message %q, want %q", got, want)
	}
}

// stop cancels without a cause, waits for the watching goroutine (the leak
// check in TestMain sees none left) and may be called twice.
func TestNotifyContextStop(t *testing.T) {
	ctx, stop := NotifyContext(context.Background(), syscall.SIGUSR1)
	stop()
	if err := context.Cause(ctx); err != context.Canceled {
		t.Fatalf("cause after stop: %s, want context.Canceled", describe(err))
	}
	stop()
}
