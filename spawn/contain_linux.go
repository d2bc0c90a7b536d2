package spawn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Environment variables of the keeper. keeperEnv holds the run's cgroup
// directory ("-" for none); noCgroupsEnv, set to anything, makes Contain
// leave cgroups alone.
const (
	keeperEnv    = "ARBOR_KEEPER"
	noCgroupsEnv = "ARBOR_NO_CGROUPS"
)

// A process started as a keeper does nothing else.
func init() {
	if dir, ok := os.LookupEnv(keeperEnv); ok {
		if dir == probeMode {
			os.Exit(0) // started in a cgroup: that was the test
		}
		os.Exit(runKeeper(dir, os.Stdin))
	}
}

// probeMode, as keeperEnv, runs nothing: Contain's probe of whether a
// process can be started in a cgroup of its own.
const probeMode = "probe"

// Bounds on the waits of a cleanup: how long a killed cgroup may take to
// empty, and how long Close waits for the keeper.
const (
	cgroupDrainWait = 2 * time.Second
	keeperExitWait  = 2 * time.Second
	// orphanScan spaces the scans for orphans to reap: an orphan's zombie
	// lingers at most this long.
	orphanScan = 20 * time.Millisecond
	// At release, orphans are killed and reaped in rounds, orphanRoundGap
	// apart, until a round finds none: each generation killed hands its
	// own children to this process. orphanRounds bounds the generations.
	orphanRounds   = 50
	orphanRoundGap = time.Millisecond
)

// contained is the state of this process's Contain, if it called it.
var contained containState

type containState struct {
	mu      sync.Mutex // held across a fork and its registration, and by a scan for orphans
	active  bool
	run     string        // the run's cgroup directory; "" without cgroups
	next    int           // numbers the children's cgroups
	known   map[int]*held // children spawn started and has not reaped, by pid
	spare   []*jail       // cgroups of reaped children, for the next ones
	slots   slotFile      // without cgroups, the process groups the keeper kills
	keeper  *os.File      // the write end of the keeper's stdin
	stop    chan struct{} // ends the orphan reaper
	reaping sync.WaitGroup
}

// Contain makes this process answer for every process its children start,
// however far they stray (a shell's background jobs, setsid, double forks),
// not only for the children. Call it once, before starting any child, in a
// program that owns a tree (arbor supervise and arbor parallel do), and
// start children only through this package afterwards: another child may
// be reaped as an orphan. On Linux:
//
//   - The process becomes a child subreaper: descendants orphaned while it
//     runs come back to it. It reaps them, and Close stops those left.
//   - Where a cgroup v2 hierarchy is writable (and ARBOR_NO_CGROUPS is not
//     set), every child starts in a cgroup of its own, and everything in it
//     is killed when the child has exited: a job's descendants end with it.
//   - A keeper process (this program run again) watches this one. If this
//     one dies, even of SIGKILL, the keeper kills every child's cgroup, and
//     every child's process group, within milliseconds.
//
// Without cgroups, a descendant that left its child's process group
// survives a SIGKILL of this process (nothing then knows it is one), but
// not Close.
func Contain() (*Containment, error) {
	c := &contained
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.active {
		return nil, errors.New("spawn: Contain called twice")
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("spawn: becoming a child subreaper: %w", err)
	}
	c.known = map[int]*held{}
	if _, off := os.LookupEnv(noCgroupsEnv); !off {
		c.run = runCgroup()
	}
	self, err := os.Executable()
	if err != nil {
		return nil, c.undo(fmt.Errorf("spawn: finding this program for the keeper: %w", err))
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, c.undo(err)
	}
	keeper := exec.Command(self)
	dir := c.run
	if dir == "" {
		dir = "-"
	}
	keeper.Env = append(os.Environ(), keeperEnv+"="+dir)
	keeper.Stdin = r
	if c.run == "" {
		// Without cgroups the keeper kills the children's process groups,
		// which it reads from a file the two share: a start or a reap
		// writes there without waking the keeper.
		f, err := os.CreateTemp("", "arbor-keeper-")
		if err != nil {
			r.Close()
			w.Close()
			return nil, c.undo(err)
		}
		os.Remove(f.Name())
		c.slots = slotFile{f: f, index: map[*held]int64{}}
		keeper.ExtraFiles = []*os.File{f}
	}
	// A session of its own: the terminal's signals are not for it, and it
	// holds none of this process's output open.
	keeper.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = keeper.Start()
	r.Close()
	if err != nil {
		w.Close()
		if c.slots.f != nil {
			c.slots.f.Close()
			c.slots = slotFile{}
		}
		return nil, c.undo(fmt.Errorf("spawn: starting the keeper: %w", err))
	}
	c.known[keeper.Process.Pid] = &held{pid: keeper.Process.Pid}
	c.keeper, c.active, c.stop = w, true, make(chan struct{})
	c.reaping.Add(1)
	go func() {
		defer c.reaping.Done()
		// A scan on a timer, not on SIGCHLD: every job's exit raises one,
		// and taking each would cost a run of short jobs more than the
		// scan does.
		tick := time.NewTicker(orphanScan)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				reapOrphans(false)
			case <-c.stop:
				return
			}
		}
	}()
	var once sync.Once
	var closeErr error
	return &Containment{Cgroups: c.run != "", Keeper: keeper.Process.Pid, close: func() error {
		once.Do(func() { closeErr = release(keeper) })
		return closeErr
	}}, nil
}

// undo leaves the subreaper role after Contain failed; it is called with
// contained.mu held.
func (c *containState) undo(err error) error {
	unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	if c.run != "" {
		os.Remove(c.run)
		c.run = ""
	}
	return err
}

// release is Close: stop the orphans, end the keeper, remove the cgroups.
func release(keeper *exec.Cmd) error {
	c := &contained
	close(c.stop)
	c.reaping.Wait()
	// Orphans can have children of their own, which come back to this
	// process when their parent is killed: go round until none is left.
	for range orphanRounds {
		if !reapOrphans(true) {
			break
		}
		time.Sleep(orphanRoundGap)
	}
	c.mu.Lock()
	run := c.run
	c.keeper.Close() // the keeper finds nothing left and exits
	c.active = false
	spare := c.spare
	c.spare = nil
	c.mu.Unlock()
	for _, j := range spare {
		j.remove()
	}
	done := make(chan error, 1)
	go func() { done <- keeper.Wait() }()
	select {
	case <-done:
	case <-time.After(keeperExitWait):
		keeper.Process.Kill()
		<-done
	}
	c.mu.Lock()
	delete(c.known, keeper.Process.Pid)
	if c.slots.f != nil {
		c.slots.f.Close()
		c.slots = slotFile{}
	}
	c.mu.Unlock()
	unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	if run != "" {
		killCgroup(run)
		removeCgroups(run)
	}
	return nil
}

// reapOrphans reaps the children of this process that spawn did not start
// (descendants orphaned to it) once they have exited; with kill, it kills
// them first. It reports whether it found any.
func reapOrphans(kill bool) bool {
	c := &contained
	found := false
	// The list is read unlocked; each pid is checked under the lock, which
	// a fork holds until its child is registered.
	for _, pid := range ownChildren() {
		c.mu.Lock()
		_, ok := c.known[pid]
		c.mu.Unlock()
		if ok {
			continue
		}
		found = true
		if kill {
			unix.Kill(pid, unix.SIGKILL)
			if pgid, err := unix.Getpgid(pid); err == nil && pgid == pid {
				unix.Kill(-pid, unix.SIGKILL)
			}
			var st unix.WaitStatus
			unix.Wait4(pid, &st, 0, nil)
			continue
		}
		var st unix.WaitStatus
		unix.Wait4(pid, &st, unix.WNOHANG, nil)
	}
	return found
}

// ownChildren lists the children of this process's main thread: the
// orphans that came back to it (Linux hands them to the reaper's first
// living thread, and the main thread lives as long as the process). The
// children spawn forks are its forking thread's.
func ownChildren() []int {
	b, err := os.ReadFile(childrenFile)
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

var childrenFile = fmt.Sprintf("/proc/self/task/%d/children", os.Getpid())

// jail is a child's cgroup, with descriptors kept open so that starting
// a child in it and killing what it holds cost a system call each.
type jail struct {
	dir      string
	dirFD    int // for clone into the cgroup
	killFD   int // cgroup.kill, or -1 where the kernel has none
	eventsFD int // cgroup.events, or -1
	// killed: a kill was written. Such a cgroup is not reused: on the
	// kernels tried (6.18) a child cloned into a cgroup that was once
	// killed is killed too.
	killed bool
}

// newJail makes a cgroup for a child under the run's.
func (c *containState) newJail() (*jail, error) {
	c.next++
	dir := filepath.Join(c.run, "c"+strconv.Itoa(c.next))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the child's cgroup: %w", err)
	}
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		os.Remove(dir)
		return nil, fmt.Errorf("opening the child's cgroup: %w", err)
	}
	kill, err := unix.Open(filepath.Join(dir, "cgroup.kill"), unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		kill = -1
	}
	events, err := unix.Open(filepath.Join(dir, "cgroup.events"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		events = -1
	}
	return &jail{dir: dir, dirFD: fd, killFD: kill, eventsFD: events}, nil
}

// empty reports whether no process is left in the jail.
func (j *jail) empty() bool {
	if j.eventsFD < 0 {
		return false
	}
	var buf [128]byte
	n, err := unix.Pread(j.eventsFD, buf[:], 0)
	return err == nil && bytes.Contains(buf[:n], []byte("populated 0"))
}

// kill kills everything in the jail, without waiting for it to die.
func (j *jail) kill() {
	j.killed = true
	if j.killFD < 0 || func() error { _, err := unix.Write(j.killFD, []byte("1")); return err }() != nil {
		killCgroup(j.dir) // an old kernel: one process at a time
	}
}

// remove closes the jail's descriptors and removes its cgroup once empty.
func (j *jail) remove() {
	unix.Close(j.dirFD)
	if j.killFD >= 0 {
		unix.Close(j.killFD)
	}
	if j.eventsFD >= 0 {
		unix.Close(j.eventsFD)
	}
	killCgroup(j.dir)
	os.Remove(j.dir)
}

// held is one child started under Contain: what its owner hands back when
// it has exited and been reaped. A pid alone would not do: it can be
// reused by a new child between the reap and the owner's call.
type held struct {
	pid int
	j   *jail // its cgroup, or nil
}

// containStart starts cmd with start: in a cgroup of its own when the
// process is contained with cgroups, and registered so that the orphan
// reaper leaves it to its owner and, without cgroups, the keeper knows its
// process group.
func containStart(cmd *exec.Cmd, limits *Limits, start func() error) (*held, error) {
	c := &contained
	c.mu.Lock()
	defer c.mu.Unlock()
	if limits.cgroupLimits() {
		if err := c.limitable(limits); err != nil {
			return nil, err
		}
	}
	if !c.active {
		return nil, start()
	}
	var j *jail
	if limits.cgroupLimits() {
		// A cgroup of its own, with the limits, never reused.
		var err error
		if j, err = c.newJail(); err != nil {
			return nil, err
		}
		j.killed = true // not to be reused
		if err := setCgroupLimits(j.dir, limits); err != nil {
			j.remove()
			return nil, err
		}
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, j.dirFD
	} else if c.run != "" {
		if n := len(c.spare); n > 0 {
			j, c.spare = c.spare[n-1], c.spare[:n-1]
		} else {
			var err error
			if j, err = c.newJail(); err != nil {
				return nil, err
			}
		}
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, j.dirFD
	}
	if err := start(); err != nil {
		if j != nil && !j.killed {
			c.spare = append(c.spare, j)
		} else if j != nil {
			j.remove()
		}
		return nil, err
	}
	h := &held{pid: cmd.Process.Pid, j: j}
	c.known[h.pid] = h
	if j == nil {
		c.slots.add(h)
	}
	return h, nil
}

// limitable checks that cgroup limits can be enforced, and enables the
// controllers they need for the run's children. It is called with mu held.
func (c *containState) limitable(l *Limits) error {
	need := neededControllers(l)
	if !c.active || c.run == "" {
		return fmt.Errorf("limits %s need spawn.Contain with a writable cgroup v2, which this process does not have (%s)",
			strings.Join(need, ", "), c.why())
	}
	b, _ := os.ReadFile(filepath.Join(c.run, "cgroup.controllers"))
	have := strings.Fields(string(b))
	var missing []string
	for _, n := range need {
		if !slices.Contains(have, n) {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("limits need the cgroup v2 controllers %s, which %s does not have (it has: %q); "+
			"the controllers must be enabled in the subtree_control of arbor's own cgroup, which cgroup v2 allows in the root cgroup or one that holds no process",
			strings.Join(missing, ", "), c.run, strings.Join(have, " "))
	}
	var enable []string
	for _, n := range need {
		enable = append(enable, "+"+n)
	}
	if err := os.WriteFile(filepath.Join(c.run, "cgroup.subtree_control"), []byte(strings.Join(enable, " ")), 0); err != nil {
		return fmt.Errorf("enabling the cgroup controllers %s in %s: %w", strings.Join(need, ", "), c.run, err)
	}
	return nil
}

// why says why there are no cgroups.
func (c *containState) why() string {
	switch {
	case !c.active:
		return "Contain was not called"
	case os.Getenv(noCgroupsEnv) != "":
		return noCgroupsEnv + " is set"
	}
	return "no cgroup v2 could be created here"
}

// containExited kills what a child that has exited left in its cgroup.
func containExited(h *held) {
	if h == nil || h.j == nil {
		return
	}
	c := &contained
	c.mu.Lock()
	defer c.mu.Unlock()
	if !h.j.empty() {
		h.j.kill()
	}
}

// maxSpareCgroups bounds the cgroups of reaped children kept for the next
// ones: making and removing one for every child of a run of short jobs
// would cost more than the job.
const maxSpareCgroups = 64

// containReaped forgets a child its owner has reaped; its cgroup, if
// empty, is kept for the next child.
func containReaped(h *held) {
	if h == nil {
		return
	}
	c := &contained
	c.mu.Lock()
	if c.known[h.pid] == h { // not a new child that took the pid since
		delete(c.known, h.pid)
	}
	if h.j == nil && c.active {
		c.slots.remove(h)
	}
	j := h.j
	// A jail the child left empty is reused; one that held more, and was
	// killed, is removed (remove waits for it to empty).
	keep := j != nil && c.active && len(c.spare) < maxSpareCgroups && !j.killed && j.empty()
	if keep {
		c.spare = append(c.spare, j)
	}
	c.mu.Unlock()
	if j != nil && !keep {
		j.remove()
	}
}

// runCgroup creates the cgroup of this run's children, under this
// process's own cgroup v2, and checks that a process can be started in a
// child of it. It returns "" when there is no writable cgroup v2.
func runCgroup() string {
	own, mount := ownCgroup(), cgroup2Mount()
	if own == "" || mount == "" {
		return ""
	}
	dir := filepath.Join(mount, own, fmt.Sprintf("arbor-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return ""
	}
	// Probe: start a process into a child cgroup (the keeper, told to
	// exit at once). Where that fails, cgroups are not for us.
	probe := filepath.Join(dir, "probe")
	ok := false
	if os.Mkdir(probe, 0o755) == nil {
		if fd, err := unix.Open(probe, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
			if self, err := os.Executable(); err == nil {
				cmd := exec.Command(self)
				cmd.Env = append(os.Environ(), keeperEnv+"="+probeMode)
				cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
				ok = cmd.Run() == nil // stdin is /dev/null: the keeper exits at once
			}
			unix.Close(fd)
		}
		os.Remove(probe)
	}
	if !ok {
		os.Remove(dir)
		return ""
	}
	return dir
}

// ownCgroup is this process's cgroup v2 path ("/..."), or "".
func ownCgroup() string {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if path, ok := strings.CutPrefix(line, "0::"); ok {
			return path
		}
	}
	return ""
}

// cgroup2Mount is where the cgroup v2 hierarchy is mounted, or "".
func cgroup2Mount() string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok || !strings.HasPrefix(post, "cgroup2 ") {
			continue
		}
		if f := strings.Fields(pre); len(f) >= 5 {
			return f[4]
		}
	}
	return ""
}

// killCgroup kills every process in the cgroup dir and below, and waits,
// a bounded time, until it is empty.
func killCgroup(dir string) {
	if !populated(dir) {
		return
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0); err != nil {
		// Kernels before 5.14: kill what the cgroup lists, until nothing is.
		for range 10 {
			pids := cgroupProcs(dir)
			if len(pids) == 0 {
				break
			}
			for _, pid := range pids {
				unix.Kill(pid, unix.SIGKILL)
			}
		}
	}
	deadline := time.Now().Add(cgroupDrainWait)
	for populated(dir) && time.Now().Before(deadline) {
		time.Sleep(200 * time.Microsecond)
	}
}

// populated reports whether the cgroup dir, or one below it, has a process.
func populated(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
	if err != nil {
		return false
	}
	return bytes.Contains(b, []byte("populated 1"))
}

// cgroupProcs lists the processes of the cgroup dir and below it.
func cgroupProcs(dir string) []int {
	var pids []int
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.Name() != "cgroup.procs" {
			return nil
		}
		b, _ := os.ReadFile(path)
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids
}

// removeCgroups removes the cgroup dir and those below it, deepest first.
func removeCgroups(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			removeCgroups(filepath.Join(dir, e.Name()))
		}
	}
	os.Remove(dir)
}

// slotFile lists the process groups of the children, one 4-byte slot
// each (0 when free), in a file the keeper reads when the owner is gone.
type slotFile struct {
	f     *os.File
	index map[*held]int64 // child to slot (not pid: a pid can be reused before its child is forgotten)
	free  []int64
	next  int64
}

func (s *slotFile) add(h *held) {
	if s.f == nil {
		return
	}
	var slot int64
	if n := len(s.free); n > 0 {
		slot, s.free = s.free[n-1], s.free[:n-1]
	} else {
		slot, s.next = s.next, s.next+1
	}
	s.index[h] = slot
	s.f.WriteAt(binary.LittleEndian.AppendUint32(nil, uint32(h.pid)), slot*4)
}

func (s *slotFile) remove(h *held) {
	slot, ok := s.index[h]
	if s.f == nil || !ok {
		return
	}
	delete(s.index, h)
	s.free = append(s.free, slot)
	s.f.WriteAt(make([]byte, 4), slot*4)
}

// runKeeper is the keeper's whole life: it waits for its stdin to end, when
// the owner is done or dead, then kills the run's cgroup (dir), or without
// one ("-") the process groups listed in the slot file on descriptor 3,
// and removes the cgroups.
func runKeeper(dir string, in *os.File) int {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	io.Copy(io.Discard, in)
	if dir != "-" {
		killCgroup(dir)
		removeCgroups(dir)
		return 0
	}
	slots, err := io.ReadAll(os.NewFile(3, "arbor-keeper-slots"))
	if err != nil {
		return 1
	}
	for i := 0; i+4 <= len(slots); i += 4 {
		if pid := int(binary.LittleEndian.Uint32(slots[i:])); pid > 0 {
			unix.Kill(-pid, unix.SIGKILL)
		}
	}
	return 0
}
