//go:build unix && !linux

package spawn

// waitExited returns false at once where waitid(WNOWAIT) is not available:
// the reap that follows waits instead, and group signals stop at the reap.
func waitExited(pid int) bool { return false }
