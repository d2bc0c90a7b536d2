// Package supervisor keeps a set of children running by Erlang/OTP's
// rules, and gives up, loudly and in order, when they say so.
//
// A Supervisor is a Service: Serve runs it in the caller's goroutine until
// its ctx ends (it then stops every child, in reverse start order, and
// returns nil) or its restart intensity is exceeded (it stops every child
// the same way and returns an *IntensityError, which a parent supervisor
// sees as its child failing). Supervisors nest, and one can run inside an
// actor process.
//
// Children are Services: plain programs (Command), functions run in actor
// processes (Actor), nested supervisors, or any type with Serve. Each has a
// restart type — Permanent, Transient or Temporary — and the supervisor's
// Strategy — OneForOne, OneForAll or RestForOne — says which children a
// failure restarts. Restarts of a child wait an exponential backoff with
// jitter, reset once the child has stayed up long enough, so a
// crash-looping child never busy-loops.
//
// Main serves a supervisor for a program's main function: SIGINT or
// SIGTERM stop the tree in order and set the exit status, as nursery.Main
// does for a nursery.
//
// # Ownership
//
// One goroutine, the one that called Serve, owns the supervisor's state;
// each child runs in a goroutine of its own, and Serve returns only when
// all of them have returned. Every lifecycle fact goes to Spec.Events and
// to the logger.
package supervisor
