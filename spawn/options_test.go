package spawn

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/proctest"
	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/protocol"
	"github.com/hashicorp/go-hclog"
)

// optionSamples holds a non-zero value for every field of Options. A field
// added to Options without a sample here, or without a line in
// WithDefaults, fails TestWithDefaultsMergesEveryField.
var optionSamples = map[string]any{
	"Name":             "worker",
	"Parent":           protocol.ActorID{Name: "root.p", UUID: "u"},
	"Binary":           "/bin/true",
	"Args":             []string{"--flag"},
	"Env":              []string{"A=1"},
	"Dir":              "/tmp",
	"Transport":        Socketpair,
	"Functions":        ipc.MustNewTable(),
	"Logger":           hclog.NewNullLogger(),
	"LogLevel":         hclog.Debug,
	"HandshakeTimeout": time.Second,
	"GracePeriod":      time.Second,
	"KillDelay":        time.Second,
	"StopSignal":       syscall.SIGINT,
	"Output":           func(stream, line string) {},
	"Stdin":            strings.NewReader(""),
	"Stdout":           io.Discard,
	"Stderr":           io.Discard,
	"Limits":           &Limits{OpenFiles: 64},
	"Launcher":         []string{"ssh", "-T", "host"},
	"Heartbeat":        time.Second,
	"Aliases":          []string{"w"},
}

func TestWithDefaultsMergesEveryField(t *testing.T) {
	typ := reflect.TypeOf(Options{})
	for i := range typ.NumField() {
		f := typ.Field(i)
		sample, ok := optionSamples[f.Name]
		if !ok {
			t.Errorf("Options.%s has no sample in optionSamples: add one, and merge the field in WithDefaults", f.Name)
			continue
		}
		var d Options
		reflect.ValueOf(&d).Elem().Field(i).Set(reflect.ValueOf(sample))
		merged := Options{}.WithDefaults(d)
		if reflect.ValueOf(merged).Field(i).IsZero() {
			t.Errorf("WithDefaults does not take Options.%s from the defaults", f.Name)
		}
		// Set on the caller's side, the caller's value stays.
		var o Options
		reflect.ValueOf(&o).Elem().Field(i).Set(reflect.ValueOf(sample))
		if kept := o.WithDefaults(Options{}); reflect.ValueOf(kept).Field(i).IsZero() {
			t.Errorf("WithDefaults drops the caller's Options.%s", f.Name)
		}
	}
}

func TestWithDefaultsKeepsArgsWithoutBinary(t *testing.T) {
	d := Options{Binary: "/other/program", Args: []string{"--its-flag"}}
	got := Options{Args: []string{"--flag"}}.WithDefaults(d)
	if got.Binary != "" || !reflect.DeepEqual(got.Args, []string{"--flag"}) {
		t.Fatalf("Binary %q, Args %q: arguments for this program must not go to the default binary, nor be dropped", got.Binary, got.Args)
	}
	got = Options{}.WithDefaults(d)
	if got.Binary != d.Binary || !reflect.DeepEqual(got.Args, d.Args) {
		t.Fatalf("Binary %q, Args %q: want the defaults' pair", got.Binary, got.Args)
	}
}

// A negative duration other than Forever (supervisor.BrutalKill is -2)
// waits not at all: given as a GracePeriod, Stop kills at once instead of
// waiting for ever.
func TestNegativeGracePeriodKillsAtOnce(t *testing.T) {
	var out proctest.Buffer
	c, err := StartCommand(t.Context(), Options{Binary: "/bin/sh", Stdout: &out,
		Args: []string{"-c", `trap "" TERM; echo ready; while :; do sleep 1; done`}, GracePeriod: -2})
	if err != nil {
		t.Fatal(err)
	}
	proctest.Eventually(t, 5*time.Second, "the trap to be set", func() bool { return strings.Contains(out.String(), "ready") })
	within(t, 5*time.Second, "Stop with a grace period of -2", func() { c.Stop(t.Context()) })
	var ee *ExitError
	if err := c.Wait(); !errors.As(err, &ee) || ee.Signal != syscall.SIGKILL {
		t.Fatalf("got %v", err)
	}
	if Forever == -2 {
		t.Fatal("Forever must differ from supervisor.BrutalKill")
	}
}
