// Package control is arbor's control socket, shared by arbor supervise, by
// a nursery opened WithControl, and by the CLI commands that talk to them
// (arbor ps, stop, restart, reload, logs): the functions the socket serves,
// what they carry, where the sockets live, and the server.
package control

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/arbor-go/arbor/internal/peercred"
	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/protocol"
)

// PsEntry is one child in arbor ps.
type PsEntry struct {
	App      string  `json:"app" msgpack:"-"`  // filled in by arbor ps
	Spec     string  `json:"spec" msgpack:"-"` // the app's spec file: apps of the same name are told apart by it
	Name     string  `json:"name" msgpack:"name"`
	PID      int     `json:"pid" msgpack:"pid"`
	State    string  `json:"state" msgpack:"state"`
	Restarts int     `json:"restarts" msgpack:"restarts"`
	Uptime   float64 `json:"uptime_seconds" msgpack:"uptime_seconds"`
	LastExit string  `json:"last_exit,omitempty" msgpack:"last_exit"`
	Host     string  `json:"host,omitempty" msgpack:"host"`
}

// AppInfo says which app a control socket belongs to.
type AppInfo struct {
	Name string `msgpack:"name"`
	Spec string `msgpack:"spec"` // the spec file's absolute path, or the program's for a library tree
}

// The control functions.
var (
	Info    = ipc.NewFunc[struct{}, AppInfo]("arborctl.info", nil)
	Ps      = ipc.NewFunc[struct{}, []PsEntry]("arborctl.ps", nil)
	Stop    = ipc.NewFunc[string, struct{}]("arborctl.stop", nil)
	Restart = ipc.NewFunc[string, struct{}]("arborctl.restart", nil)
	Reload  = ipc.NewFunc[struct{}, string]("arborctl.reload", nil)
)

// Dir is the per-user directory of the default control sockets:
// $XDG_RUNTIME_DIR/arbor where the login session provides one (private by
// its rules), else $TMPDIR/arborctl-UID, which Serve checks is this user's
// and closed to others.
func Dir() string {
	if run := os.Getenv("XDG_RUNTIME_DIR"); run != "" {
		return filepath.Join(run, "arbor")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("arborctl-%d", os.Getuid()))
}

// privateDir makes sure dir exists, is a directory of this user's (not a
// link) and is closed to everyone else: the default control directory,
// whose name others can guess and create first.
func privateDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	case ok && int(st.Uid) != os.Getuid():
		return fmt.Errorf("%s belongs to user %d, not to this user (%d): refusing to use it", dir, st.Uid, os.Getuid())
	case fi.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("%s is open to other users (mode %v): refusing to use it", dir, fi.Mode().Perm())
	}
	return nil
}

// Server serves control functions on a unix socket.
type Server struct {
	warn  func(string)
	ln    net.Listener
	path  string
	self  protocol.ActorID
	table *ipc.Table
	wg    sync.WaitGroup
	mu    sync.Mutex
	chans map[*ipc.Channel]bool
}

// Serve listens on path and serves table there, to this user's processes
// (and root's) only, as actor self, until Close. warn receives what it
// refuses.
func Serve(path string, self protocol.ActorID, table *ipc.Table, warn func(string)) (*Server, error) {
	dir := filepath.Dir(path)
	if dir == Dir() {
		if err := privateDir(dir); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		// A directory given with --control is the user's to set up: it is
		// created if missing, never chmodded.
		return nil, err
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s is in use by another arbor process", path)
	}
	os.Remove(path) // a socket left by a run that was killed
	// The socket is created closed to others (umask), not chmodded after:
	// nobody else can connect in between.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, err
	}
	s := &Server{warn: warn, ln: ln, path: path, self: self, table: table, chans: map[*ipc.Channel]bool{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		// Only this user (or root) may drive it, whatever the socket's
		// mode has become.
		if _, uid, ok := peercred.Of(conn); ok && uid != os.Getuid() && uid != 0 {
			s.warn("refused a control connection from user " + strconv.Itoa(uid))
			conn.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			ch, err := ipc.Open(ctx, conn, ipc.Options{Actor: s.self, Functions: s.table})
			cancel()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.chans[ch] = true
			s.mu.Unlock()
			<-ch.Done()
			ch.Close()
			s.mu.Lock()
			delete(s.chans, ch)
			s.mu.Unlock()
		}()
	}
}

// Close stops serving, ends every control connection and removes the
// socket.
func (s *Server) Close() {
	s.ln.Close()
	s.mu.Lock()
	var open []*ipc.Channel
	for ch := range s.chans {
		open = append(open, ch)
	}
	s.mu.Unlock()
	for _, ch := range open {
		ch.Close() // its goroutine sees Done and finishes
	}
	s.wg.Wait()
	os.Remove(s.path)
}
