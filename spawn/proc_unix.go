//go:build unix

package spawn

import (
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// prepareCommand puts the child in a process group of its own, plus what
// the platform adds (the parent-death signal on Linux).
func prepareCommand(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	platformAttrs(cmd.SysProcAttr)
}

// signalGroup sends sig to the process group led by pid. The caller makes
// sure the leader has not been reaped, so the group id cannot have been
// reused.
func signalGroup(pid int, sig syscall.Signal) error {
	return unix.Kill(-pid, sig)
}

// socketpair returns a connected pair of unix stream sockets, close-on-exec.
func socketpair() (a, b *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		return nil, nil, err
	}
	unix.CloseOnExec(fds[0])
	unix.CloseOnExec(fds[1])
	return os.NewFile(uintptr(fds[0]), "arbor-parent"), os.NewFile(uintptr(fds[1]), "arbor-child"), nil
}

// takeStdio moves the process's stdin and stdout out of the way for the
// stdio transport: it returns duplicates of them for the protocol, then
// points stdin at /dev/null and stdout at stderr, so that anything the
// actor's code prints goes to the log instead of corrupting the protocol.
func takeStdio() (in, out *os.File, err error) {
	inFD, err := unix.Dup(0)
	if err != nil {
		return nil, nil, err
	}
	outFD, err := unix.Dup(1)
	if err != nil {
		unix.Close(inFD)
		return nil, nil, err
	}
	unix.CloseOnExec(inFD)
	unix.CloseOnExec(outFD)
	// Pollable, so that closing them interrupts a read in progress.
	unix.SetNonblock(inFD, true)
	unix.SetNonblock(outFD, true)
	devnull, err := os.Open(os.DevNull)
	if err == nil {
		err = unix.Dup2(int(devnull.Fd()), 0)
		devnull.Close()
	}
	if err == nil {
		err = unix.Dup2(2, 1)
	}
	if err != nil {
		unix.Close(inFD)
		unix.Close(outFD)
		return nil, nil, err
	}
	return os.NewFile(uintptr(inFD), "arbor-stdin"), os.NewFile(uintptr(outFD), "arbor-stdout"), nil
}
