package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/proctest"
)

// supervise starts arbor supervise on a spec and returns its running
// command and its output.
func supervise(t *testing.T, name, content string) (*exec.Cmd, *proctest.Buffer, *proctest.Buffer) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, name)
	os.WriteFile(file, []byte(content), 0o600)
	// A control socket of the test's own, so runs in parallel never meet
	// and nothing is left in the shared per-user directory.
	cmd := exec.Command(arborBin, "supervise", "--control", filepath.Join(dir, "ctl.sock"), file)
	out, errOut := &proctest.Buffer{}, &proctest.Buffer{}
	cmd.Stdout, cmd.Stderr = out, errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, out, errOut
}

// superviseIn runs arbor supervise in dir with args; the test's cleanup
// kills it if the test has not stopped it.
func superviseIn(t *testing.T, dir string, args ...string) (*exec.Cmd, *proctest.Buffer, *proctest.Buffer) {
	t.Helper()
	cmd := exec.Command(arborBin, append([]string{"supervise"}, args...)...)
	cmd.Dir = dir
	out, errOut := &proctest.Buffer{}, &proctest.Buffer{}
	cmd.Stdout, cmd.Stderr = out, errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, out, errOut
}

// hasLine reports whether out has a line a child named name printed as
// text: "15:04:05 name   | text".
func hasLine(out, name, text string) bool {
	re := regexp.MustCompile(`(?m)^(\d\d:\d\d:\d\d )?` + regexp.QuoteMeta(name) + ` *\| ` + regexp.QuoteMeta(text) + `$`)
	return re.MatchString(out)
}

func interruptAndWait(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	cmd.Process.Signal(syscall.SIGINT)
	var err error
	proctest.Within(t, 20*time.Second, "supervise to stop", func() { err = cmd.Wait() })
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	return 0
}

func TestSuperviseProcfile(t *testing.T) {
	cmd, out, errOut := supervise(t, "Procfile", "# the app\nweb: echo web up; exec sleep 30\n\nworker: echo worker up; exec sleep 30\n")
	proctest.Eventually(t, 10*time.Second, "both children up", func() bool {
		return hasLine(out.String(), "web", "web up") && hasLine(out.String(), "worker", "worker up")
	})
	if code := interruptAndWait(t, cmd); code != 130 {
		t.Fatalf("status %d, want 130\n%s", code, errOut)
	}
	log := errOut.String()
	if w, k := strings.Index(log, "stopped worker"), strings.Index(log, "stopped web"); w < 0 || k < 0 || w > k {
		t.Fatalf("children not stopped in reverse start order:\n%s", log)
	}
}

func TestSuperviseJSON(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "crashed")
	spec := fmt.Sprintf(`{
  "name": "app", "strategy": "one-for-one", "max_restarts": 5, "period": "10s",
  "children": [
    {"name": "once", "command": ["sh", "-c", "echo one-shot; exit 0"], "restart": "transient"},
    {"name": "jobs", "group": {"strategy": "rest-for-one", "children": [
      {"name": "flaky", "command": ["sh", "-c", "if [ -e %s ]; then echo steady; exec sleep 30; fi; touch %s; exit 3"], "shutdown": "2s"},
      {"name": "after", "command": ["sh", "-c", "echo after up; exec sleep 30"], "env": {"MODE": "test"}, "stop_signal": "term"}
    ]}}
  ]
}`, marker, marker)
	cmd, out, errOut := supervise(t, "app.json", spec)
	proctest.Eventually(t, 15*time.Second, "the flaky child to come back", func() bool {
		return hasLine(out.String(), "jobs.flaky", "steady")
	})
	if code := interruptAndWait(t, cmd); code != 130 {
		t.Fatalf("status %d\n%s", code, errOut)
	}
	log := errOut.String()
	for _, want := range []string{"app: started once", "app: exited once", "jobs: exited flaky", "jobs: restarting flaky", "jobs: stopped after"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if strings.Contains(log, "restarting once") {
		t.Error("a transient child that exited normally was restarted")
	}
	if t.Failed() {
		t.Logf("stderr:\n%s\nstdout:\n%s", log, out)
	}
}

func TestSuperviseMalformedSpecs(t *testing.T) {
	tests := []struct {
		name, content, want string
	}{
		{"Procfile", "web: ./web\nworker ./worker\n", "line 2: want NAME: COMMAND"},
		{"Procfile", "web: a\nweb: b\n", `line 2: "web" is already the name on line 1`},
		{"Procfile", "# nothing\n", "no NAME: COMMAND lines"},
		{"spec.json", `{"children": [{"name": "a", "command": ["true"], "restart": "sometimes"}]}`, `children[0].restart: "sometimes" is not permanent`},
		{"spec.json", `{"children": [{"name": "g", "group": {"strategy": "all-for-none", "children": [{"name": "x", "command": ["true"]}]}}]}`, `children[0].group.strategy: "all-for-none"`},
		{"spec.json", `{"children": [{"name": "a"}]}`, "children[0]: give either a command or a group"},
		{"spec.json", "{\"children\": [\n  {\"name\": \"a\", \"command\": [\"true\"],}]}", "line 2, column"},
		{"spec.json", `{"children": [{"name": "a", "command": ["true"]}, {"name": "b", "command": "true"}]}`, "children[1].command: want an array, got a string"},
		{"spec.json", `{"children": [{"name": "a", "command": ["true"], "stop_signal": "TERMINATE"}]}`, `children[0].stop_signal: "SIGTERMINATE" is not one of`},
		{"spec.json", `{"children": [{"name": "g", "group": {"children": [{"name": "x", "command": ["true"], "restrat": "permanent"}]}}]}`, `children[0].group.children[0].restrat: unknown field "restrat"`},
		{"spec.json", `{"children": [{"name": "a", "command": ["true"], "normal_exit": [0, "1"]}]}`, "children[0].normal_exit[1]: want a whole number, got a string"},
		{"spec.json", `{"children": [{"name": "a", "command": ["true"], "shutdown": "soon"}]}`, `children[0].shutdown: "soon" is not a positive duration`},
		{"spec.json", `{"childs": []}`, `childs: unknown field "childs"`},
		{"spec.json", `{"children": [{"name": "a", "command": ["true"], "ready": {"tcp": "x:1", "http": "http://x"}}]}`, "children[0].ready: give exactly one of tcp, http and command"},
		{"spec.json", `{"children": [{"name": "a", "command": ["true"], "depends_on": ["db"]}]}`, `children[0].depends_on: "db" is not another child`},
		{"spec.json", `{"children": [{"name": "a", "command": ["true"], "depends_on": ["b"]}, {"name": "b", "command": ["true"], "depends_on": ["a"]}]}`, "children[0].depends_on: depends on itself through the others (a cycle)"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), tt.name)
			os.WriteFile(file, []byte(tt.content), 0o600)
			_, errOut, code := arbor(t, "", "supervise", file)
			if code != 1 || !strings.Contains(errOut, tt.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Fatalf("status %d, stderr %q; want one line saying %q", code, errOut, tt.want)
			}
		})
	}
}

func TestPsStopRestart(t *testing.T) {
	control := filepath.Join(t.TempDir(), "ctl", "app.sock")
	file := filepath.Join(t.TempDir(), "Procfile")
	os.WriteFile(file, []byte("web: echo web up; exec sleep 30\nworker: echo worker up; exec sleep 30\n"), 0o600)
	cmd := exec.Command(arborBin, "supervise", "--control", control, file)
	out, errOut := &proctest.Buffer{}, &proctest.Buffer{}
	cmd.Stdout, cmd.Stderr = out, errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer interruptAndWait(t, cmd)
	proctest.Eventually(t, 10*time.Second, "both children up", func() bool {
		return hasLine(out.String(), "web", "web up") && hasLine(out.String(), "worker", "worker up")
	})
	ps := func() map[string][2]string { // name -> {pid, state}
		t.Helper()
		text, stderr, code := arbor(t, "", "ps", "--control", control)
		if code != 0 {
			t.Fatalf("ps: status %d: %s", code, stderr)
		}
		rows := map[string][2]string{}
		for _, line := range strings.Split(strings.TrimSpace(text), "\n")[1:] {
			f := strings.Fields(line)
			rows[f[0]] = [2]string{f[1], f[2]}
		}
		return rows
	}
	before := ps()
	if before["web"][1] != "RUNNING" || before["worker"][1] != "RUNNING" {
		t.Fatalf("ps: %v", before)
	}
	if _, stderr, code := arbor(t, "", "restart", "--control", control, "web"); code != 0 {
		t.Fatalf("restart: %d %s", code, stderr)
	}
	if after := ps(); after["web"][0] == before["web"][0] {
		t.Fatalf("web kept its pid %s across a restart", before["web"][0])
	}
	if _, stderr, code := arbor(t, "", "stop", "--control", control, "worker"); code != 0 {
		t.Fatalf("stop: %d %s", code, stderr)
	}
	if after := ps(); after["worker"] != [2]string{"-", "STOPPED"} {
		t.Fatalf("worker after stop: %v", after["worker"])
	}
	text, _, code := arbor(t, "", "ps", "--json", "--control", control)
	if code != 0 || !strings.Contains(text, `"name": "web"`) || !strings.Contains(text, `"state": "stopped"`) {
		t.Fatalf("ps --json: %d\n%s", code, text)
	}
	if _, stderr, code := arbor(t, "", "stop", "--control", control, "nobody"); code != 1 || !strings.Contains(stderr, `no such child: "nobody"`) {
		t.Fatalf("stop nobody: %d %q", code, stderr)
	}
	if code := interruptAndWait(t, cmd); code != 130 {
		t.Fatalf("supervise: status %d\n%s", code, errOut)
	}
	if _, err := os.Stat(control); !os.IsNotExist(err) {
		t.Fatalf("control socket left behind: %v", err)
	}
}

func TestControlWithoutSupervise(t *testing.T) {
	_, errOut, code := arbor(t, "", "ps", "--control", filepath.Join(t.TempDir(), "none.sock"))
	if code != 1 || !strings.Contains(errOut, "not running") {
		t.Fatalf("ps with nothing listening: status %d, %q", code, errOut)
	}
	if _, errOut, code := arbor(t, "", "stop"); code != 2 || !strings.Contains(errOut, "want exactly one child NAME") {
		t.Fatalf("stop without a NAME: status %d, %q", code, errOut)
	}
}

// The foreman conventions: .env, PORT per process and instance, a
// formation, and aligned, timestamped prefixes (issue 11).
func TestProcfileConventions(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, ".env"), []byte("# settings\nGREETING=\"hello there\"\nexport MODE=dev # inline comment\nQUOTE='a $b'\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "Procfile"), []byte("web: echo \"web $PORT $GREETING $MODE $QUOTE\"; exec sleep 30\nworker: echo \"worker $PORT\"; exec sleep 30\nidle: exec sleep 30\n"), 0o600)
	cmd, out, errOut := superviseIn(t, dir, "--control", filepath.Join(dir, "ctl.sock"), "--formation", "web=2,idle=0", "Procfile")
	proctest.Eventually(t, 15*time.Second, "three processes up", func() bool {
		o := out.String()
		return hasLine(o, "web.1", "web 5000 hello there dev a $b") && hasLine(o, "web.2", "web 5001 hello there dev a $b") &&
			hasLine(o, "worker", "worker 5100")
	})
	if !regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d worker \| worker 5100$`).MatchString(out.String()) {
		t.Errorf("prefixes are not timestamped and aligned to web.1's width:\n%s", out)
	}
	if strings.Contains(errOut.String(), "started idle") {
		t.Error("idle=0 started idle")
	}
	if code := interruptAndWait(t, cmd); code != 130 {
		t.Fatalf("status %d\n%s", code, errOut)
	}
	for _, tt := range []struct {
		args      []string
		env, want string
	}{
		{[]string{"--formation", "nobody=2"}, "", `"nobody" is not a process`},
		{[]string{"--formation", "web"}, "", "want NAME=COUNT"},
		{nil, "GOOD=1\nnot a pair\n", ".env: line 2: want KEY=VALUE"},
		{nil, "KEY=\"open\n", "no closing quote"},
	} {
		d := t.TempDir()
		os.WriteFile(filepath.Join(d, "Procfile"), []byte("web: true\n"), 0o600)
		if tt.env != "" {
			os.WriteFile(filepath.Join(d, ".env"), []byte(tt.env), 0o600)
		}
		_, stderr, code := arbor(t, "", append(append([]string{"supervise"}, tt.args...), filepath.Join(d, "Procfile"))...)
		if code == 0 || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v %q: status %d, %q; want %q", tt.args, tt.env, code, stderr, tt.want)
		}
	}
}

// Readiness and order in the spec: web waits for a TCP server that starts
// listening late, worker for web's HTTP answer; ps shows STARTING, READY
// and WAITING meanwhile, and they stop in reverse (issue 11).
func TestSpecReadinessOrder(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 (the late TCP server) is not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	gate := filepath.Join(dir, "go")
	spec := fmt.Sprintf(`{"children": [
  {"name": "worker", "command": ["sh", "-c", "echo worker up; exec sleep 30"], "depends_on": ["web"]},
  {"name": "web", "command": ["sh", "-c", "echo web up; exec sleep 30"], "depends_on": ["db"],
   "ready": {"command": ["test", "-e", %q], "interval": "20ms"}},
  {"name": "db", "command": ["sh", "-c", "while [ ! -e %s.db ]; do sleep 0.05; done; exec %s -m http.server %d --bind 127.0.0.1"],
   "ready": {"tcp": "127.0.0.1:%d", "interval": "20ms"}}
]}`, gate, gate, python, port, port)
	os.WriteFile(filepath.Join(dir, "app.json"), []byte(spec), 0o600)
	control := filepath.Join(dir, "ctl.sock")
	cmd, out, errOut := superviseIn(t, dir, "--control", control, "app.json")
	states := func() string {
		text, _, code := arbor(t, "", "ps", "--control", control)
		if code != 0 {
			return ""
		}
		var s []string
		for _, line := range strings.Split(strings.TrimSpace(text), "\n")[1:] {
			f := strings.Fields(line)
			s = append(s, f[0]+"="+f[2])
		}
		return strings.Join(s, " ")
	}
	proctest.Eventually(t, 15*time.Second, "db starting, the others waiting", func() bool {
		return states() == "db=STARTING web=WAITING worker=WAITING"
	})
	os.WriteFile(gate+".db", nil, 0o600) // db starts listening
	proctest.Eventually(t, 15*time.Second, "db ready, web starting", func() bool {
		return states() == "db=READY web=STARTING worker=WAITING"
	})
	os.WriteFile(gate, nil, 0o600) // web says it is ready
	proctest.Eventually(t, 15*time.Second, "worker running", func() bool {
		return states() == "db=READY web=READY worker=RUNNING" && hasLine(out.String(), "worker", "worker up")
	})
	if code := interruptAndWait(t, cmd); code != 130 {
		t.Fatalf("status %d\n%s", code, errOut)
	}
	log := errOut.String()
	if w, web, db := strings.Index(log, "stopped worker"), strings.Index(log, "stopped web"), strings.Index(log, "stopped db"); w < 0 || w > web || web > db {
		t.Fatalf("not stopped in reverse dependency order:\n%s", log)
	}
}

// arbor logs prints the kept lines of every child or of one (a group's
// name takes its instances), -n the last ones, -f the new ones as they
// come; --log-dir keeps a file per process (issue 11, logs).
func TestLogs(t *testing.T) {
	dir := t.TempDir()
	logDir := filepath.Join(dir, "logs")
	control := filepath.Join(dir, "ctl.sock")
	os.WriteFile(filepath.Join(dir, "Procfile"), []byte("web: for i in 1 2 3; do echo web line $i; done; exec sleep 30\nworker: echo worker line; while [ ! -e more ]; do sleep 0.02; done; echo worker later; exec sleep 30\n"), 0o600)
	cmd, out, errOut := superviseIn(t, dir, "--control", control, "--log-dir", logDir, "--formation", "web=2", "Procfile")
	proctest.Eventually(t, 15*time.Second, "every first line", func() bool {
		o := out.String()
		return hasLine(o, "web.1", "web line 3") && hasLine(o, "web.2", "web line 3") && hasLine(o, "worker", "worker line")
	})
	all, stderr, code := arbor(t, "", "logs", "--control", control)
	if code != 0 || strings.Count(all, "\n") != 7 || !hasLine(all, "worker", "worker line") {
		t.Fatalf("arbor logs: %d %q\n%s", code, stderr, all)
	}
	web, _, _ := arbor(t, "", "logs", "--control", control, "web")
	if strings.Count(web, "\n") != 6 || strings.Contains(web, "worker") {
		t.Fatalf("arbor logs web:\n%s", web)
	}
	last, _, _ := arbor(t, "", "logs", "--control", control, "-n", "1", "web.2")
	if !hasLine(last, "web.2", "web line 3") || strings.Count(last, "\n") != 1 {
		t.Fatalf("arbor logs -n 1 web.2:\n%s", last)
	}
	// Follow: the history, then a line printed later.
	follow := exec.Command(arborBin, "logs", "-f", "--control", control, "worker")
	fout := &proctest.Buffer{}
	follow.Stdout = fout
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	proctest.Eventually(t, 10*time.Second, "the history", func() bool { return hasLine(fout.String(), "worker", "worker line") })
	os.WriteFile(filepath.Join(dir, "more"), nil, 0o600)
	proctest.Eventually(t, 10*time.Second, "the new line", func() bool { return hasLine(fout.String(), "worker", "worker later") })
	follow.Process.Signal(os.Interrupt)
	follow.Wait()
	if code := interruptAndWait(t, cmd); code != 130 {
		t.Fatalf("status %d\n%s", code, errOut)
	}
	b, err := os.ReadFile(filepath.Join(logDir, "web.2.log"))
	if err != nil || strings.Count(string(b), "web line") != 3 {
		t.Fatalf("web.2.log: %v\n%s", err, b)
	}
}
