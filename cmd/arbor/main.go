// Command arbor runs trees of processes: parallel jobs with automatic
// teardown, and supervised programs.
//
//	arbor parallel [flags] COMMAND [ARGS...] [::: INPUTS...]
//	arbor supervise FILE
//	arbor ps | stop NAME | restart NAME | reload | logs [-f] [NAME]
//	arbor schema BINARY [--json]
//	arbor version
//
// Exit status: 0 on success; for parallel, as GNU parallel (the number of
// failed jobs, at most 101; 255 for a bad command line); 2 for a usage
// error; 129 after SIGHUP, 130 after SIGINT, 143 after SIGTERM; 1 for any
// other error. 'arbor help' says the rest.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
