package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/arbor-go/arbor/internal/exampletest"
)

func TestInterrupt(t *testing.T) {
	cmd := exampletest.Command(exampletest.Build(t))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "streaming from 10 actors") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the example said %q", lines.Text())
	}
	var pids []int
	fields := strings.Fields(strings.TrimSuffix(strings.SplitN(lines.Text(), "pids ", 2)[1], "; press Ctrl-C to stop"))
	for _, f := range fields {
		p, _ := strconv.Atoi(f)
		pids = append(pids, p)
	}
	if len(pids) != 10 {
		t.Fatalf("pids %v", pids)
	}
	// The line comes once every stream has delivered: interrupt now.
	cmd.Process.Signal(syscall.SIGINT)
	for lines.Scan() {
		t.Log(lines.Text())
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 130 {
		t.Fatalf("exit: %v, want status 130", err)
	}
	for _, p := range pids {
		if _, err := os.Stat("/proc/" + strconv.Itoa(p)); err == nil {
			t.Errorf("actor %d outlived the interrupted root", p)
		}
	}
}
