package supervisor

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/proctest"
	"github.com/arbor-go/arbor/spawn"
	"github.com/hashicorp/go-hclog"
)

// A child's name is written once, in Child.Name, and its output reaches the
// supervisor's logger without a logger in its spawn.Options (issue 13,
// item 8). Before, the process was named after the binary and its output
// went to a logger that discards everything.
func TestChildTakesItsNameAndLoggerFromTheSupervisor(t *testing.T) {
	var out proctest.Buffer
	exited := make(chan struct{}, 1)
	s := New(Spec{Name: "app", Logger: hclog.New(&hclog.LoggerOptions{Output: &out, Level: hclog.Info}),
		Events: func(e Event) {
			if e.Kind == Exited {
				exited <- struct{}{}
			}
		}},
		Child{Name: "greeter", Restart: Temporary,
			Service: Command(spawn.Options{Binary: "/bin/sh", Args: []string{"-c", "echo hello from the child"}})})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the child did not exit")
	}
	cancel()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	var line string
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.Contains(l, "hello from the child") {
			line = l
		}
	}
	if line == "" || !strings.Contains(line, "greeter") {
		t.Fatalf("the child's line, under its name, is not in the supervisor's log (%q):\n%s", line, out.String())
	}
}
