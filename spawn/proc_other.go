//go:build unix && !linux

package spawn

import (
	"os/exec"
	"syscall"
)

// Only Linux has a parent-death signal; elsewhere the channel's end is the
// lifeline.
func platformAttrs(attr *syscall.SysProcAttr) {}

func startCommand(cmd *exec.Cmd) error { return containStart(cmd, cmd.Start) }
func releaseCommand()                  {}
