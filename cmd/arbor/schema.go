package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/protocol"
	"github.com/arbor-go/arbor/spawn"
	"github.com/spf13/pflag"
)

const schemaHelp = `Usage: arbor schema BINARY [--json]

Starts BINARY as an arbor actor, asks it for the functions it serves, and
prints their names, kinds and types.

Examples:
  arbor schema ./worker
  arbor schema --json ./worker | jq '.[].name'

Flags:
`

func runSchema(ctx context.Context, args []string, stdout io.Writer) error {
	fs := pflag.NewFlagSet("schema", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "print JSON")
	help := fs.BoolP("help", "h", false, "print this help")
	if err := fs.Parse(args); err != nil {
		return usagef("schema: %v", err)
	}
	if *help {
		fmt.Fprint(stdout, schemaHelp+fs.FlagUsages())
		return errHelp
	}
	if fs.NArg() != 1 {
		return usagef("schema: want exactly one BINARY")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	a, err := spawn.Start(ctx, spawn.Options{Name: "schema", Binary: fs.Arg(0)})
	if err != nil {
		return err
	}
	defer a.Stop(context.WithoutCancel(ctx))
	schemas, err := ipc.RemoteSchemas(ctx, a.Channel())
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, schemas)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FUNCTION\tKIND\tSIGNATURE")
	for _, s := range schemas {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, s.Kind, signature(s))
	}
	return tw.Flush()
}

// printJSON writes v as indented JSON, for the --json flags.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// signature renders a schema as Go-like types.
func signature(s protocol.Schema) string {
	var b strings.Builder
	fmt.Fprintf(&b, "(%s)", typeName(s.Args))
	if s.Started != nil {
		fmt.Fprintf(&b, " started %s", typeName(s.Started))
	}
	if s.Send != nil {
		fmt.Fprintf(&b, " receives %s", typeName(s.Send))
	}
	if s.Yield != nil {
		fmt.Fprintf(&b, " yields %s", typeName(s.Yield))
	}
	if s.Result != nil {
		fmt.Fprintf(&b, " -> %s", typeName(s.Result))
	}
	return b.String()
}

func typeName(t *protocol.TypeSchema) string {
	if t == nil {
		return "nil"
	}
	if t.GoType != "" {
		return t.GoType
	}
	return t.Type
}
