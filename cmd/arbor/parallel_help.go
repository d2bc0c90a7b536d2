package main

const parallelHelp = `Usage: arbor parallel [flags] [COMMAND [ARGS...]] [::: INPUTS...] [:::: FILES...]

Runs COMMAND once per input, several at a time, as GNU parallel does: the
same flags, replacement strings, input sources, output and exit status.
Without ::: or ::::, the inputs are the lines of stdin, and jobs start
while stdin is still being read (tail -f log | arbor parallel ... works).

The shell rule: each job's command line is COMMAND's words joined by
spaces, with every input put in quoted for the shell (so no input can run
as a command); the shell ($PARALLEL_SHELL, else $SHELL, else /bin/sh)
runs it. So pipes, redirects, ';' and 'exit 3' work in COMMAND, and
without COMMAND each input is itself a command. A command line that is
only plain words runs without a shell, with the same result, faster.
Each job runs in a process group of its own and is stopped whole.

Inputs:
  ::: A B C        a list of inputs; several ::: lists combine as a product
                   (every A with every B), the first varying slowest
  :::+ A B         linked to the source before it: the n-th with the n-th
  :::: FILE        the lines of FILE (- is stdin); ::::+ links a file
  -a FILE          the same as :::: FILE; repeat for more sources

Replacement strings (without any, the inputs are appended):
  {}    the input          {.}   without its extension   {/}   base name
  {//}  directory          {/.}  base name, no extension  {#}   job number
  {%}   job slot           {N}   the N-th input of the job (source N, or
                                 column N with --colsep), with the same
                                 modifiers: {2.} {1/} {1//} {1/.}
  {name}                   with --header :, the column called name
  Forms it does not know ({foo}, {}}) are left as they are.

Examples:
  arbor parallel gzip ::: *.log
  find . -name '*.png' | arbor parallel -j 4 convert {} {.}.jpg
  arbor parallel 'echo {} | tr a-z A-Z' ::: a b
  arbor parallel -k echo {1}-{2} ::: a b ::: 1 2
  arbor parallel --halt now,fail=1 --timeout 30 ./check.sh ::: a b c
  cat big.csv | arbor parallel --pipe --block 10M wc -l

Flags:
`

const parallelHelpTail = `
Exit status (as GNU parallel): 0 when every job succeeded; 1-100 the
number of jobs that failed; 101 more than 100 failed; with --halt
fail=1 or done=1 the status of the job that tripped it (128 + N for a job
killed by signal N); with a percentage, the percentage that failed; 255
for a bad command line or any other error.

Where arbor differs from GNU parallel, on purpose:
  - SIGINT and SIGTERM stop every job (its whole process group, SIGTERM,
    then SIGKILL after 350 ms) and arbor exits 130 or 143; a job never
    outlives arbor, even when arbor is killed with SIGKILL (Linux).
  - --timeout is exact; GNU parallel checks about once a second.
  - A command line up to the kernel's limit (128 KiB in one argument)
    runs; GNU parallel refuses lines past about 63 KiB.
  - A bad command line prints one line on stderr saying what is wrong
    (GNU parallel prints its usage on stdout); both exit 255.
  - -S runs each remote job under 'arbor remote-job' on the host (the
    arbor there: --remote-arbor, default arbor on its PATH), which runs
    it in a process group of its own and stops that group when the
    connection goes; GNU parallel needs perl there instead. Slots per
    host are N/host or -j; the host's CPU count is not asked. --pipe
    with remote hosts is refused.
  - --results takes a directory only (no .csv, .tsv or .json).
  - -k with --line-buffer prints each job's output whole, in order.
  - Not supported: Perl replacement strings ({= ... =}) and --plus, -i,
    --sql*, --semaphore, --tmux, --fifo, --cat, --pipepart; each is
    refused with status 255, never ignored.
  - Messages on stderr are arbor's own words.
`
