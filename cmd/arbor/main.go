// Command arbor runs trees of processes: parallel jobs with automatic
// teardown, and supervised programs.
//
//	arbor parallel [flags] COMMAND [ARGS...] [::: INPUTS...]
//	arbor supervise [--file Procfile|spec.json] [flags]
//	arbor ps | logs | stop | restart | reload
//	arbor schema BINARY [--json]
//	arbor version
//
// Exit status: 0 on success; for parallel, the number of failed jobs
// (at most 101); 2 for a usage error; 130 after SIGINT (143 after
// SIGTERM); 1 for any other error.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
