package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/arbor-go/arbor/spawn"
	"github.com/spf13/pflag"
)

// remoteJobHelp is arbor remote-job's help. It is what arbor parallel -S
// runs on the hosts, not meant to be typed.
const remoteJobHelp = `Usage: arbor remote-job [--workdir DIR] -- COMMAND [ARG...]

Runs COMMAND for arbor parallel on a remote host (-S): in a process group
of its own, in DIR (made if missing), with this process's stdin, stdout and
stderr. When the connection that started it goes (its parent, the ssh
session, ends) or it gets SIGTERM, SIGINT or SIGHUP, COMMAND's whole group
is stopped: SIGTERM, then SIGKILL. It exits with COMMAND's status, 128 + N
after signal N, 127 when COMMAND cannot be run (126: not allowed).
`

// parentPoll is how often remote-job looks whether its parent is gone.
const parentPoll = 100 * time.Millisecond

func runRemoteJob(args []string, stderr io.Writer) int {
	fs := pflag.NewFlagSet("remote-job", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	workdir := fs.String("workdir", "", "")
	help := fs.BoolP("help", "h", false, "")
	if err := fs.Parse(args); err != nil || *help || fs.NArg() == 0 {
		fmt.Fprint(stderr, remoteJobHelp)
		if *help {
			return 0
		}
		return exitUsage
	}
	if *workdir != "" {
		err := os.MkdirAll(*workdir, 0o755)
		if err == nil {
			err = os.Chdir(*workdir)
		}
		if err != nil {
			fmt.Fprintf(stderr, "arbor remote-job: --workdir: %v\n", err)
			return 127
		}
	}
	parent := os.Getppid()
	argv := fs.Args()
	a, err := spawn.StartCommand(context.Background(), spawn.Options{Name: "job", Binary: argv[0], Args: argv[1:],
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, GracePeriod: jobStopGrace})
	if err != nil {
		fmt.Fprintf(stderr, "arbor remote-job: %v\n", err)
		if errors.Is(err, os.ErrPermission) {
			return 126
		}
		return 127
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(signals)
	poll := time.NewTicker(parentPoll)
	defer poll.Stop()
	for stopped := false; ; {
		select {
		case <-a.Done():
			var exit *spawn.ExitError
			if err := a.Wait(); errors.As(err, &exit) {
				if exit.Signal != 0 {
					return 128 + int(exit.Signal)
				}
				return exit.Code
			}
			return 0
		case <-signals:
		case <-poll.C:
			if os.Getppid() == parent {
				continue
			}
		}
		if !stopped { // the connection went, or a signal came: stop the job's group
			stopped = true
			go a.Stop(context.Background())
		}
	}
}
