// Command lumos runs the nodes of a lumos shield mesh (control nodes and
// shields) and manages the cluster through its HTTP API.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, let a second one end the process at once.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// run executes the command line args and returns the exit status. Errors
// are printed as one line on stderr; usage errors add a pointer to --help.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, env func(string) string) int {
	return execute(ctx, newRootCmd(stdout, stderr, env), args, stdin, stderr)
}

// execute runs root with args and returns the exit status.
func execute(ctx context.Context, root *cobra.Command, args []string, stdin io.Reader, stderr io.Writer) int {
	root.SetArgs(args)
	root.SetIn(stdin)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "lumos: %s\n", oneLine(err.Error()))
	var ue *usageError
	if errors.As(err, &ue) || isCobraUsageError(err) {
		path := "lumos"
		if cmd != nil {
			path = cmd.CommandPath()
		}
		fmt.Fprintf(stderr, "run '%s --help' for usage\n", path)
		return exitUsage
	}
	return exitError
}

// isCobraUsageError recognises the few usage errors cobra reports itself
// (outside flag parsing and argument validation, which are marked).
func isCobraUsageError(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "unknown command ") ||
		strings.HasPrefix(msg, "required flag(s) ") ||
		strings.HasPrefix(msg, "if any flags in the group ") ||
		strings.HasPrefix(msg, "at least one of the flags in the group ")
}

// oneLine collapses line breaks and runs of whitespace into single spaces.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
