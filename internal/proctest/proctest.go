// Package proctest holds the waits and process checks that arbor's tests
// share: bounded waits instead of sleeps, and /proc-based checks that no
// process is left behind.
package proctest

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Within fails the test if f does not return within d.
func Within(t testing.TB, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not finish within %v", what, d)
	}
}

// Eventually polls cond until it holds or d passes: for state that has no
// event to wait on.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// stat returns the fields of /proc/pid/stat after the command name.
func stat(pid string) ([]string, bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return nil, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, false
	}
	return strings.Fields(s[i+1:]), true
}

// Alive reports whether pid names a process that has not exited. A zombie
// has exited: it only waits to be reaped.
func Alive(pid int) bool {
	f, ok := stat(strconv.Itoa(pid))
	return ok && len(f) > 0 && f[0] != "Z"
}

// Children lists the processes whose parent is this one, zombies included.
// It skips the test where there is no /proc.
func Children(t testing.TB) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("no /proc:", err)
	}
	self := strconv.Itoa(os.Getpid())
	var out []int
	for _, e := range entries {
		if f, ok := stat(e.Name()); ok && len(f) > 1 && f[1] == self {
			p, _ := strconv.Atoi(e.Name())
			out = append(out, p)
		}
	}
	return out
}

// NoChildrenLeft fails the test if a child process of this one remains
// (reaping may lag an exit by a moment, so it waits up to 2s).
func NoChildrenLeft(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		left := Children(t)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("child processes left behind: %v", left)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Gone fails the test unless every one of pids has exited within 2s.
func Gone(t testing.TB, what string, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		var left []int
		for _, p := range pids {
			if Alive(p) {
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still alive after 2s: %v", what, fmt.Sprint(left))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Buffer is a bytes.Buffer that a process's output and a test can share.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
