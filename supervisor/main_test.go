package supervisor

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/proctest"
	"github.com/arbor-go/arbor/spawn"
)

// mainModeEnv makes the test binary a program whose main is supervisor.Main.
const mainModeEnv = "ARBOR_TEST_SUPERVISOR_MAIN"

func runMainMode(mode string) int {
	switch mode {
	case "serve": // a child that writes its pid to $PID_FILE, then sleeps
		return Main(New(Spec{Name: "app"}, Child{Name: "sleeper", Restart: Permanent,
			Service: Command(spawn.Options{Binary: "/bin/sh", Args: []string{"-c", `echo $$ > "$PID_FILE.tmp" && mv "$PID_FILE.tmp" "$PID_FILE" && exec sleep 60`}})}))
	case "give-up":
		return Main(New(Spec{Name: "app", MaxRestarts: 1, Period: time.Minute, MinBackoff: time.Millisecond},
			Child{Name: "crasher", Restart: Permanent, Service: Command(spawn.Options{Binary: "/bin/sh", Args: []string{"-c", "exit 3"}})}))
	}
	return 2
}

func mainCommand(t *testing.T, mode string, env ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(append(os.Environ(), mainModeEnv+"="+mode), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	return cmd, &stderr
}

// TestMainStopsTheTreeOnSIGTERM: supervisor.Main stops its children when
// the process gets SIGTERM and exits 143, leaving no process behind.
func TestMainStopsTheTreeOnSIGTERM(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	cmd, stderr := mainCommand(t, "serve", "PID_FILE="+pidFile)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var child int
	deadline := time.Now().Add(20 * time.Second)
	for child == 0 {
		if b, err := os.ReadFile(pidFile); err == nil {
			child, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		} else if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the supervised child did not start:\n%s", stderr)
		} else {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 143 {
		t.Fatalf("supervisor.Main after SIGTERM: %v, want exit status 143\n%s", err, stderr)
	}
	proctest.Gone(t, "the supervised child", child)
}

// TestMainGivesUpWithStatus1: a supervisor that gives up makes Main print
// why and return 1.
func TestMainGivesUpWithStatus1(t *testing.T) {
	cmd, stderr := mainCommand(t, "give-up")
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("supervisor.Main giving up: %v, want exit status 1\n%s", err, stderr)
	}
	if !strings.Contains(stderr.String(), "crasher") {
		t.Errorf("stderr does not say which child made it give up:\n%s", stderr)
	}
}
