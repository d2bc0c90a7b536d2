package spawn

import "net"

// listenPeerSocket listens on an abstract unix socket (Linux): nothing on
// disk, so an actor killed with SIGKILL leaves nothing behind. Any process
// on the machine could connect; the tree's secret keeps it out.
func listenPeerSocket(uuid string) (ln *net.UnixListener, addr, dir string, err error) {
	addr = "@" + peerDirPrefix + uuid
	ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: addr, Net: "unix"})
	return ln, addr, "", err
}
