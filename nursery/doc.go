// Package nursery is structured concurrency across processes: a scope that
// owns a set of actor processes, so that a Go program fans work out to
// processes as safely as it fans out to goroutines with errgroup.
//
// Open runs a body with a new Nursery and returns only when every actor
// started in it has exited. When the body returns nil, Open waits for the
// results of the functions run with RunInActor, then stops the daemon
// actors started with StartActor, gracefully. Any failure — the body's
// error, a run-in-actor function's error, an actor that crashed — cancels
// everything at once: the body's ctx, every call in flight, every actor.
// Open then returns an *Error that lists the failures, each naming its
// actor; the cancellations a failure caused are not failures and are not
// listed, but an error that is not a cancellation is, even when a
// function returned it while being cancelled.
//
// Work on the parent's side goes in Go; OpenStreamInActor runs a stream in
// an actor that lives as long as the stream; WithLimit bounds how many
// actors run at once.
//
// Code running inside an actor can open its own nursery with the ctx of
// the call it serves, so trees of any depth form across processes: an
// error relays up with the actors it crossed in its path, and cancellation
// flows down.
//
// # Ownership
//
// The nursery owns every actor started in it and the goroutines that start,
// watch and stop them; Open returns only after all of them have finished.
// Main wraps Open for a program's main function: SIGINT or SIGTERM cancel
// the tree gracefully and set the exit status. NotifyContext is the signal
// handling under it, for a program that wants the same on a ctx of its own
// (the arbor CLI, supervisor.Main).
package nursery
