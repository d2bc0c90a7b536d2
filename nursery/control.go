package nursery

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/arbor-go/arbor/internal/control"
	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/protocol"
	"github.com/arbor-go/arbor/spawn"
)

// WithControl makes the nursery serve arbor's control socket while it is
// open, as arbor supervise does, so that `arbor ps` (and `arbor ps --tree`)
// lists this tree: every actor the tree's registry knows (spawn.List),
// with its pid and host; `arbor stop NAME` stops one (spawn.StopActor).
// app names the socket and the tree in arbor ps. Open fails if the socket
// cannot be served.
func WithControl(app string) Option {
	return func(n *Nursery) { n.controlApp = app }
}

// serveControl starts the control socket of a nursery opened WithControl:
// in arbor's control directory, named after the app and this process.
func (n *Nursery) serveControl() (*control.Server, error) {
	app := strings.Map(func(r rune) rune {
		if r == '/' || r == os.PathSeparator {
			return '-'
		}
		return r
	}, n.controlApp)
	path := filepath.Join(control.Dir(), fmt.Sprintf("%s-%d.sock", app, os.Getpid()))
	self, _ := os.Executable()
	ps := func(ctx context.Context, _ struct{}) ([]control.PsEntry, error) {
		list, err := spawn.List(ctx, "")
		out := make([]control.PsEntry, 0, len(list))
		for _, e := range list {
			out = append(out, control.PsEntry{Name: e.Name, PID: e.PID, Host: e.Host, State: "running"})
		}
		return out, err
	}
	stop := func(ctx context.Context, name string) (struct{}, error) {
		return struct{}{}, spawn.StopActor(ctx, name)
	}
	table := ipc.MustNewTable(
		control.Info.Implement(func(context.Context, struct{}) (control.AppInfo, error) {
			return control.AppInfo{Name: n.controlApp, Spec: self}, nil
		}),
		control.Ps.Implement(ps),
		control.Stop.Implement(stop),
	)
	return control.Serve(path, protocol.ActorID{Name: n.controlApp, UUID: protocol.NewUUID()}, table, func(string) {})
}
