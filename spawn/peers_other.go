//go:build !linux

package spawn

import (
	"net"
	"os"
	"path/filepath"
)

// listenPeerSocket listens on a socket file in a private directory (0700):
// the actor removes it when it ends, and its parent once it has reaped it.
func listenPeerSocket(uuid string) (ln *net.UnixListener, addr, dir string, err error) {
	dir, err = os.MkdirTemp("", peerDirPrefix+"*")
	if err != nil {
		return nil, "", "", err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, "", "", err
	}
	addr = filepath.Join(dir, "peer.sock")
	if ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: addr, Net: "unix"}); err != nil {
		os.RemoveAll(dir)
		return nil, "", "", err
	}
	return ln, addr, dir, nil
}
