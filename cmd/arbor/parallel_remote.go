package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/arbor-go/arbor/internal/shellword"
	"github.com/arbor-go/arbor/spawn"
)

// remoteCopyTimeout bounds bringing a job's --return files back, and the
// --cleanup after it.
const remoteCopyTimeout = time.Minute

// sshLogin is where jobs run: this machine (":"), or a host reached with
// ssh, as GNU parallel's -S names them.
type sshLogin struct {
	name  string   // as given, without the N/ prefix: $PARALLEL_SSHLOGIN
	slots int      // jobs at once there; 0 means -j's
	ssh   []string // the ssh command, its options and the host; nil: this machine
}

func (l *sshLogin) remote() bool { return l.ssh != nil }

// parseSSHLogin reads one sshlogin: ":" (this machine), host, user@host,
// or a whole ssh command ("ssh -p 2222 user@host"), each optionally after
// "N/" (N jobs at once there).
func parseSSHLogin(s, sshCmd string) (sshLogin, error) {
	s = strings.TrimSpace(s)
	l := sshLogin{}
	if n, rest, ok := strings.Cut(s, "/"); ok && n != "" && strings.Trim(n, "0123456789") == "" {
		slots, err := strconv.Atoi(n)
		if err != nil || slots < 1 {
			return l, usagef("parallel: -S %s: want N/host with N at least 1", s)
		}
		l.slots, s = slots, rest
	}
	l.name = s
	switch {
	case s == "":
		return l, usagef("parallel: -S: an empty sshlogin")
	case s == ":":
		return l, nil
	case strings.ContainsAny(s, " \t"):
		l.ssh = strings.Fields(s) // a whole ssh command
	default:
		l.ssh = append(strings.Fields(sshCmd), s)
	}
	return l, nil
}

// readSSHLogins reads -S's comma-separated lists and --sshloginfile's
// lines (# starts a comment).
func readSSHLogins(lists, files []string, sshCmd string) ([]sshLogin, error) {
	var words []string
	for _, s := range lists {
		words = append(words, strings.Split(s, ",")...)
	}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, usagef("parallel: --sshloginfile: %v", err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if line, _, _ := strings.Cut(sc.Text(), "#"); strings.TrimSpace(line) != "" {
				words = append(words, line)
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, usagef("parallel: --sshloginfile %s: %v", name, err)
		}
	}
	var logins []sshLogin
	for _, w := range words {
		l, err := parseSSHLogin(w, sshCmd)
		if err != nil {
			return nil, err
		}
		logins = append(logins, l)
	}
	return logins, nil
}

// remotes reads where jobs run and what crosses with them: -S,
// --sshloginfile, --transfer, --return, --cleanup, --trc, --workdir, --ssh
// and --remote-arbor. With sshlogins, -j is the slots of each one that
// does not say N/, and the run has the sum of them.
func (f *parallelFlags) remotes(c *parallelConfig) error {
	for _, name := range f.envNames {
		if name == "" || strings.ContainsAny(name, "= ") {
			return usagef("parallel: --env %q: want a variable name", name)
		}
	}
	c.envNames = f.envNames
	logins, err := readSSHLogins(f.sshLogins, f.sshLoginFiles, f.sshCmd)
	if err != nil {
		return err
	}
	c.transfer, c.returns, c.cleanup = f.transfer, f.returns, f.cleanup
	for _, r := range f.trc {
		c.transfer, c.cleanup = true, true
		c.returns = append(c.returns, r)
	}
	c.workdir, c.remoteArbor = f.workdir, f.remoteArbor
	remote := false
	for _, l := range logins {
		remote = remote || l.remote()
	}
	if !remote {
		if c.transfer || len(c.returns) > 0 || c.cleanup || c.workdir != "" {
			return usagef("parallel: --transfer, --return, --cleanup and --workdir need a remote -S host")
		}
		return nil // ':' alone: this machine, as without -S
	}
	if c.pipe {
		return usagef("parallel: --pipe with remote -S hosts is not supported yet")
	}
	total := 0
	for i := range logins {
		if logins[i].slots == 0 {
			logins[i].slots = c.jobs
		}
		total += logins[i].slots
	}
	c.logins, c.jobs = logins, total
	return nil
}

// loginFor is where the job in slot runs: the sshlogins take the slots in
// their order, each as many as it has. nil: this machine, without -S.
func (p *parallelRun) loginFor(slot int) *sshLogin {
	for i := range p.c.logins {
		l := &p.c.logins[i]
		if slot <= l.slots {
			return l
		}
		slot -= l.slots
	}
	return nil
}

// remoteWorkdir is where a job runs on its host: the login directory by
// default, the local one with --workdir ., a directory of its own under
// ~/.parallel/tmp with --workdir ... (GNU parallel's forms).
func (p *parallelRun) remoteWorkdir(j *job) string {
	switch wd := p.c.workdir; wd {
	case "":
		return ""
	case ".":
		cwd, _ := os.Getwd()
		return cwd
	case "...":
		host, _ := os.Hostname()
		return fmt.Sprintf(".parallel/tmp/%s-%d-%d", host, os.Getpid(), j.seq)
	default:
		return wd
	}
}

// remoteOptions makes opts run the job on l: ssh runs remoteCommand. The
// local process is ssh, in a group of its own with the parent-death
// signal: whatever ends it closes the connection, which ends the job.
func (p *parallelRun) remoteOptions(opts *spawn.Options, l *sshLogin, j *job, workdir string) {
	opts.Binary, opts.Args = l.ssh[0], p.remoteCommand(l, j, workdir)
}

// remoteCommand is what ssh runs for a job on l: arbor's remote-job there,
// which runs the job in a process group of its own in workdir and stops
// it when the connection goes (its parent, the ssh session, ends), with
// the job's environment variables set. Every word is quoted for the
// remote user's shell, which ssh hands the command to as one line.
func (p *parallelRun) remoteCommand(l *sshLogin, j *job, workdir string) []string {
	// exec: remote-job takes the place of the login shell, so that the
	// session's end orphans remote-job itself, which it watches for.
	words := []string{"exec", "env", "PARALLEL_SEQ=" + strconv.Itoa(j.seq), "PARALLEL_JOBSLOT=" + strconv.Itoa(j.slot), "PARALLEL_SSHLOGIN=" + l.name}
	for _, name := range p.c.envNames {
		if v, ok := os.LookupEnv(name); ok {
			words = append(words, name+"="+v)
		}
	}
	// The command line as the host's sh reads it: j.argv was resolved
	// here (this machine's PATH and $SHELL), which the host may not have.
	words = append(words, p.c.remoteArbor, "remote-job", "--workdir", workdir, "--", "sh", "-c", j.command)
	argv := append([]string(nil), l.ssh[1:]...)
	for _, w := range words {
		argv = append(argv, shellword.Quote(w))
	}
	return argv
}

// onHost runs a shell script on l (with args as $1, $2, ...), stdin from
// in, stdout to out; it waits for it and returns its error with its
// stderr.
func onHost(ctx context.Context, l *sshLogin, in io.Reader, out io.Writer, script string, args ...string) error {
	argv := append([]string(nil), l.ssh[1:]...)
	for _, w := range append([]string{"sh", "-c", script, "sh"}, args...) {
		argv = append(argv, shellword.Quote(w))
	}
	cmd := exec.CommandContext(ctx, l.ssh[0], argv...)
	cmd.Stdin, cmd.Stdout = in, out
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v: %s", l.name, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// transferred lists the job's inputs that name local files: --transfer
// sends those.
func transferred(j *job) []string {
	var files []string
	for _, rec := range j.records {
		for _, v := range rec {
			if fi, err := os.Stat(v); err == nil && fi.Mode().IsRegular() {
				files = append(files, v)
			}
		}
	}
	return files
}

// inWorkdir is where path, as the job names it, is on the host.
func inWorkdir(workdir, path string) string {
	if workdir == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(workdir, path)
}

// sendInputs copies the job's input files to its host (--transfer).
func (p *parallelRun) sendInputs(ctx context.Context, l *sshLogin, j *job, workdir string) error {
	for _, file := range transferred(j) {
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		dest := inWorkdir(workdir, file)
		err = onHost(ctx, l, f, nil, `mkdir -p "$(dirname "$1")" && cat > "$1"`, dest)
		f.Close()
		if err != nil {
			return fmt.Errorf("--transfer %s: %w", file, err)
		}
	}
	return nil
}

// bringBack copies the job's --return files from its host and, with
// --cleanup, removes what was sent and brought back there. A file that
// cannot be brought back is reported on stderr, as GNU parallel's rsync
// does, without failing the job.
func (p *parallelRun) bringBack(ctx context.Context, l *sshLogin, j *job, workdir string) {
	var remove []string
	if p.c.transfer {
		for _, file := range transferred(j) {
			remove = append(remove, inWorkdir(workdir, file))
		}
	}
	for _, ret := range p.c.returns {
		var b strings.Builder
		(&template{words: [][]token{parseWord(ret, p.c.replace, nil, false)}}).render(&b, j.records, j.seq, j.slot)
		file := b.String()
		remote := inWorkdir(workdir, file)
		if err := p.fetch(ctx, l, remote, file); err != nil {
			p.outMu.Lock()
			fmt.Fprintf(p.stderr, "arbor parallel: --return %s: %v\n", file, err)
			p.outMu.Unlock()
			continue // --cleanup leaves it there: it is the only copy
		}
		remove = append(remove, remote)
	}
	if !p.c.cleanup {
		return
	}
	script := `rm -f -- "$@"`
	if p.c.workdir == "..." {
		script += `; rmdir -p "$WD" 2>/dev/null; true`
		script = `WD=$1; shift; ` + script
		remove = append([]string{workdir}, remove...)
	}
	if err := onHost(ctx, l, nil, nil, script, remove...); err != nil {
		p.outMu.Lock()
		fmt.Fprintf(p.stderr, "arbor parallel: --cleanup: %v\n", err)
		p.outMu.Unlock()
	}
}

// fetch copies remote on l to local, through a temporary file beside it.
func (p *parallelRun) fetch(ctx context.Context, l *sshLogin, remote, local string) error {
	if dir := filepath.Dir(local); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(local), ".arbor-return-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	err = onHost(ctx, l, nil, tmp, `cat -- "$1"`, remote)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), local)
}
