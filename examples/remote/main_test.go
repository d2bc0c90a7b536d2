package main

import (
	"strings"
	"testing"

	"github.com/arbor-go/arbor/internal/exampletest"
	"github.com/arbor-go/arbor/internal/sshtest"
)

// TestRemote runs the example through env, a launcher that stays here.
func TestRemote(t *testing.T) {
	out := exampletest.Run(t)
	exampletest.Expect(t, out, "root.near runs on", "root.far runs on",
		`streamed 100 squares from root.far through "env": sum 338350`, "the tree was torn down")
}

// TestRemoteFails: the far actor fails half way; the tree comes down.
func TestRemoteFails(t *testing.T) {
	out := exampletest.Run(t, "-fail")
	exampletest.Expect(t, out, `the far actor failed: "square 51: the far disk is full" in root.far; the tree was torn down`)
}

// TestRemoteOverSSH runs the far actor through a real sshd.
func TestRemoteOverSSH(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	bin := exampletest.Build(t)
	launcher := strings.Join(srv.Launcher("GORACE=atexit_sleep_ms=0"), " ")
	out, err := exampletest.Command(bin, "-launcher", launcher, "-binary", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("over ssh: %v\n%s", err, out)
	}
	exampletest.Expect(t, string(out), "root.far runs on", "streamed 100 squares from root.far through \"ssh", "the tree was torn down")
}
