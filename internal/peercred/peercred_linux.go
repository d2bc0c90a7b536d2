// Package peercred reads who is at the other end of a unix socket.
package peercred

import (
	"net"

	"golang.org/x/sys/unix"
)

// Of returns the pid and uid of the process at the other end of conn, as
// the kernel recorded them when the connection was made (SO_PEERCRED).
func Of(conn net.Conn) (pid, uid int, ok bool) {
	uc, isUnix := conn.(*net.UnixConn)
	if !isUnix {
		return 0, 0, false
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, 0, false
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || credErr != nil {
		return 0, 0, false
	}
	return int(cred.Pid), int(cred.Uid), true
}
