//go:build unix && !linux

package spawn

import (
	"errors"
	"os/exec"
	"syscall"
)

// Only Linux has a parent-death signal; elsewhere the channel's end is the
// lifeline.
func platformAttrs(attr *syscall.SysProcAttr) {}

func startCommand(cmd *exec.Cmd, limits *Limits) (*held, error) {
	if limits != nil && *limits != (Limits{}) {
		return nil, errors.New("resource limits are supported on Linux only")
	}
	return containStart(cmd, cmd.Start)
}
func releaseCommand() {}

// CheckLimits reports whether l can be enforced here: resource limits are
// Linux's.
func CheckLimits(l *Limits) error {
	if l != nil && *l != (Limits{}) {
		return errors.New("resource limits are supported on Linux only")
	}
	return nil
}
