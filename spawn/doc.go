// Package spawn starts actor processes and owns each one to its end.
//
// # Parent side
//
// Start re-executes the current binary (or runs another arbor binary) as a
// child actor, connects an ipc.Channel to it and returns an *Actor: its
// channel for calls, its pid and id, Wait and Stop. The Actor owns the child
// process, the goroutine that reaps it, the goroutines that forward its
// stdout and stderr into the parent's hclog logger, and the channel; Wait
// and Stop return only when all of them have finished.
//
// # Child side
//
// A binary that serves actors calls Main at the top of main. In an ordinary
// process Main returns at once. In a process started by Start, Main runs the
// actor — serving the function table it was given until its parent asks it
// to stop or goes away — and then exits the process; it never returns.
//
// # The tree
//
// The root process holds a registry of every living actor of its tree:
// Find, WaitFor and List work from any process of it. Dial opens a channel
// to any actor by name: straight to its process on one machine, or, where
// no socket reaches it (across a launcher, on another host, in another
// network namespace), relayed through the actors between the two, with
// every error that comes back naming them. StopActor stops one by name.
// Listen lets a process that something else started (a scheduler's job)
// join the tree over mutual TLS.
//
// # Hygiene
//
// Every child is the leader of its own process group, so a terminal's Ctrl-C
// reaches only the root and signals from Stop reach the child's helpers
// too. On Linux each child gets SIGKILL when its parent dies (the
// parent-death signal, set from one OS thread that lives as long as any
// child does, because Linux sends it when the forking thread exits); on
// every OS the end of the channel is the lifeline, and a child whose parent
// is gone stops within a second. Every child is reaped; process-group
// signals are sent only while the group leader is unreaped, so a recycled
// process id is never signalled, and Go signals single processes through a
// pidfd where the kernel has them.
//
// # Stopping
//
// Stop asks the child over the protocol to stop (its running functions see
// their ctx cancelled and may return), waits GracePeriod, sends StopSignal
// to the child's process group, waits KillDelay, then sends SIGKILL.
package spawn
