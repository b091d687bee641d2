package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/lumos-mesh/lumos/api"
)

// Defaults and environment variables of the command line.
const (
	defaultAddr    = "http://127.0.0.1:7070"
	defaultTimeout = 30 * time.Second

	envAddr       = "LUMOS_ADDR"
	envAdminToken = "LUMOS_ADMIN_TOKEN"

	outputTable = "table"
	outputJSON  = "json"
)

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// cli holds what every command shares: where output goes, the environment,
// the global flags and the hooks tests replace.
type cli struct {
	stdout io.Writer
	stderr io.Writer
	env    func(string) string

	// Global flags.
	addr    string
	output  string
	timeout time.Duration
	stale   bool

	// isTerminal reports whether r is an interactive terminal; confirmation
	// prompts are only offered when stdin is one.
	isTerminal func(r io.Reader) bool
	// now and loc render times; fixed in tests.
	now func() time.Time
	loc *time.Location

	// apiClient is the client of the running command, made on first use and
	// closed when the command ends.
	apiClient *api.Client
}

// newRootCmd builds the whole command tree. Output goes to stdout and
// stderr; env looks up environment variables (os.Getenv in production).
func newRootCmd(stdout, stderr io.Writer, env func(string) string) *cobra.Command {
	return newCLI(stdout, stderr, env).rootCmd()
}

func newCLI(stdout, stderr io.Writer, env func(string) string) *cli {
	if env == nil {
		env = func(string) string { return "" }
	}
	return &cli{
		stdout:     stdout,
		stderr:     stderr,
		env:        env,
		isTerminal: isTerminal,
		now:        time.Now,
		loc:        time.Local,
	}
}

const rootLong = `lumos runs and manages a self-hosted shield mesh.

Control nodes keep the cluster state in a replicated log and answer the HTTP
API; shields run HAProxy in front of your origins and receive their
configuration through that log. When a domain's primary shield dies, the
leader moves its DNS record to the first healthy secondary within seconds,
and back when the primary recovers.

The management commands (status, server, domain, events, plan) talk to the
HTTP API of any control node:

  --addr URL          the API address; default $LUMOS_ADDR, else ` + defaultAddr + `
  LUMOS_ADMIN_TOKEN   the admin token. It is read from the environment only
                      (there is deliberately no flag for it), so it never
                      lands in shell history or process listings.

Exit status: 0 on success, 1 on error, 2 on a usage error (bad flag or
argument). Errors are one line on stderr, prefixed with "lumos: ".`

const rootExample = `  # A one-machine mesh to try things out
  lumos dev

  # Manage a cluster from your workstation
  export LUMOS_ADDR=https://ctl-1.example.net:7070
  export LUMOS_ADMIN_TOKEN=...        # from the control node's admin token file
  lumos status
  lumos server add "edge fra 1"
  lumos domain add example.com --origin 10.0.0.5:80
  lumos domain assign example.com "edge fra 1" "edge ams 1"`

func (c *cli) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "lumos",
		Short:         "Self-hosted shield mesh with DNS failover in seconds",
		Long:          rootLong,
		Example:       rootExample,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          unknownSubcommand,
		RunE:          showHelp,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return c.resolveGlobals(cmd)
		},
	}
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageErr(err)
	})

	pf := root.PersistentFlags()
	pf.StringVar(&c.addr, "addr", "", "control node API `URL` (default $"+envAddr+", else "+defaultAddr+")")
	pf.StringVarP(&c.output, "output", "o", outputTable, "output format: `table|json`")
	pf.DurationVar(&c.timeout, "timeout", defaultTimeout, "time limit for each API request")
	pf.BoolVar(&c.stale, "stale", false, "read the contacted node's own copy of the state instead of the leader's")

	root.AddCommand(
		c.statusCmd(),
		c.serverCmd(),
		c.domainCmd(),
		c.eventsCmd(),
		c.planCmd(),
		c.keygenCmd(),
	)
	addNodeCommands(root)
	markUsageErrors(root)
	c.closeClientAfterRun(root)
	return root
}

// closeClientAfterRun makes every command in the tree drop the API
// connections it opened when it returns.
func (c *cli) closeClientAfterRun(cmd *cobra.Command) {
	if run := cmd.RunE; run != nil {
		cmd.RunE = func(cmd *cobra.Command, args []string) error {
			defer c.closeClient()
			return run(cmd, args)
		}
	}
	for _, sub := range cmd.Commands() {
		c.closeClientAfterRun(sub)
	}
}

func (c *cli) closeClient() {
	if c.apiClient != nil {
		c.apiClient.CloseIdleConnections()
		c.apiClient = nil
	}
}

// resolveGlobals validates the global flags and fills in defaults from the
// environment.
func (c *cli) resolveGlobals(cmd *cobra.Command) error {
	switch strings.ToLower(strings.TrimSpace(c.output)) {
	case outputTable, "":
		c.output = outputTable
	case outputJSON:
		c.output = outputJSON
	default:
		return usageErr(fmt.Errorf("invalid --output %q: use table or json", c.output))
	}
	if c.timeout <= 0 {
		return usageErr(fmt.Errorf("invalid --timeout %s: must be positive", c.timeout))
	}
	if f := cmd.Flags().Lookup("addr"); f == nil || !f.Changed {
		c.addr = strings.TrimSpace(c.env(envAddr))
	}
	c.addr = strings.TrimSpace(c.addr)
	if c.addr == "" {
		c.addr = defaultAddr
	}
	if !strings.Contains(c.addr, "://") {
		c.addr = "http://" + c.addr
	}
	c.addr = strings.TrimRight(c.addr, "/")
	return nil
}

// client returns the API client for --addr with the admin token from the
// environment. A command makes one and uses it for all its requests.
func (c *cli) client() (*api.Client, error) {
	if c.apiClient != nil {
		return c.apiClient, nil
	}
	cl, err := api.NewClient(c.addr, strings.TrimSpace(c.env(envAdminToken)))
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), api.ErrBadAddr.Error()+": ")
		return nil, usageErr(fmt.Errorf("bad API address: %s", msg))
	}
	cl.SetTimeout(c.timeout)
	cl.SetStale(c.stale)
	c.apiClient = cl
	return cl, nil
}

// call makes one API exchange: f runs with the command's client under a
// context bounded by --timeout, and its error becomes the reason shown to
// the user.
func call[T any](c *cli, cmd *cobra.Command, f func(ctx context.Context, cl *api.Client) (T, error)) (T, error) {
	var zero T
	cl, err := c.client()
	if err != nil {
		return zero, err
	}
	ctx, cancel := context.WithTimeout(cmdCtx(cmd), c.timeout)
	defer cancel()
	v, err := f(ctx, cl)
	if err != nil {
		return zero, c.apiErr(err)
	}
	return v, nil
}

// cmdCtx is the context the running command was given.
func cmdCtx(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

// apiErr turns an error from the API client into the one-line reason shown
// to the user, adding a hint where one helps.
func (c *cli) apiErr(err error) error {
	if err == nil {
		return nil
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		switch {
		case ae.StatusCode == 401 && strings.TrimSpace(c.env(envAdminToken)) == "" && !strings.Contains(ae.Message, envAdminToken):
			return fmt.Errorf("%s (set %s to the cluster's admin token)", ae.Error(), envAdminToken)
		case ae.StatusCode == 0 && errors.Is(err, context.DeadlineExceeded):
			return fmt.Errorf("%s (waited --timeout %s)", ae.Error(), c.timeout)
		}
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("no answer from %s within --timeout %s: check --addr or %s", c.addr, c.timeout, envAddr)
	}
	if errors.Is(err, context.Canceled) {
		return errors.New("interrupted")
	}
	return err
}

// usageError marks a mistake in how a command was invoked: main prints a
// pointer to --help after it and exits with status 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErr(err error) error {
	if err == nil {
		return nil
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return err
	}
	return &usageError{err: err}
}

// markUsageErrors makes every argument validator in the tree report its
// failures as usage errors.
func markUsageErrors(cmd *cobra.Command) {
	if orig := cmd.Args; orig != nil {
		cmd.Args = func(cmd *cobra.Command, args []string) error {
			return usageErr(orig(cmd, args))
		}
	}
	for _, sub := range cmd.Commands() {
		markUsageErrors(sub)
	}
}

// showHelp is the action of commands that only group subcommands.
func showHelp(cmd *cobra.Command, args []string) error {
	return cmd.Help()
}

// unknownSubcommand rejects arguments to a command that only groups
// subcommands, suggesting the closest one.
func unknownSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %q?)", s[0])
	}
	return errors.New(msg)
}

// groupCmd returns a command that only holds subcommands.
func groupCmd(use, short, long, example string) *cobra.Command {
	return &cobra.Command{
		Use:     use,
		Short:   short,
		Long:    long,
		Example: example,
		Args:    unknownSubcommand,
		RunE:    showHelp,
	}
}

// exactArgs accepts exactly the named positional arguments.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < len(names) {
			return missingArgs(names[len(args):])
		}
		if len(args) > len(names) {
			return fmt.Errorf("too many arguments (%d, want %d: %s); quote a value that contains spaces",
				len(args), len(names), strings.Join(names, " "))
		}
		for i, a := range args {
			if strings.TrimSpace(a) == "" {
				return fmt.Errorf("%s is empty", names[i])
			}
		}
		return nil
	}
}

// minArgs accepts the named positional arguments followed by any number of
// further ones, which take the last name.
func minArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < len(names) {
			return missingArgs(names[len(args):])
		}
		for i, a := range args {
			if strings.TrimSpace(a) == "" {
				n := names[len(names)-1]
				if i < len(names) {
					n = names[i]
				}
				return fmt.Errorf("%s is empty", n)
			}
		}
		return nil
	}
}

func missingArgs(names []string) error {
	if len(names) == 1 {
		return fmt.Errorf("missing argument %s", names[0])
	}
	return fmt.Errorf("missing arguments %s", strings.Join(names, " "))
}

// noArgs accepts no positional arguments.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%q takes no arguments (got %q)", cmd.CommandPath(), args[0])
	}
	return nil
}

// target is the object of a destructive command.
type target struct {
	ref     string // the object as the user named it
	refusal string // the action, object named, refused without --yes: `remove domain "x"`
	what    string // the action, named in the errors once asked: "remove domain"
	// describe looks the object up to ask about it.
	describe func(ctx context.Context, cl *api.Client) (prompt, error)
}

// prompt is the question about a destructive action, and the exact object
// it then acts on.
type prompt struct {
	question string
	ref      string // canonical reference of the object described
}

// confirmTarget asks the user to approve a destructive action on t and
// returns the reference to act on. With --yes that is t.ref, and nothing is
// asked. Otherwise stdin must be a terminal, and nothing is sent when it is
// not; the object is looked up so the question can describe it, and the
// action then uses the reference of what was described.
func (c *cli) confirmTarget(cmd *cobra.Command, yes bool, t target) (string, error) {
	// A bad --addr is reported before anything else.
	if _, err := c.client(); err != nil {
		return "", err
	}
	if yes {
		return t.ref, nil
	}
	if !c.isTerminal(cmd.InOrStdin()) {
		return "", usageErr(fmt.Errorf("refusing to %s without confirmation: pass --yes", t.refusal))
	}
	p, err := call(c, cmd, t.describe)
	if err != nil {
		return "", err
	}
	if err := c.ask(cmd, t.what, p.question); err != nil {
		return "", err
	}
	return p.ref, nil
}

// ask puts question to the user on the terminal and succeeds when the
// answer is "yes" (or "y"); what names the action in the errors.
func (c *cli) ask(cmd *cobra.Command, what, question string) error {
	in := cmd.InOrStdin()
	fmt.Fprintf(c.stderr, "%s\nType \"yes\" to continue: ", question)
	type line struct {
		s   string
		err error
	}
	ch := make(chan line, 1)
	go func() {
		s, err := readLine(in)
		ch <- line{s, err}
	}()
	var answer line
	select {
	case answer = <-ch:
	case <-cmdCtx(cmd).Done():
		// The reader stays blocked on the terminal; the process is about
		// to exit.
		fmt.Fprintln(c.stderr)
		return fmt.Errorf("%s: interrupted", what)
	}
	if answer.err != nil && answer.s == "" {
		fmt.Fprintln(c.stderr)
		return fmt.Errorf("%s: aborted (no answer)", what)
	}
	if a := strings.ToLower(strings.TrimSpace(answer.s)); a != "yes" && a != "y" {
		return fmt.Errorf("%s: aborted", what)
	}
	return nil
}

// readLine reads up to a newline one byte at a time, so nothing beyond the
// answer is consumed from stdin.
func readLine(r io.Reader) (string, error) {
	var sb strings.Builder
	buf := make([]byte, 1)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if buf[0] == '\n' {
				return sb.String(), nil
			}
			sb.WriteByte(buf[0])
		}
		if err != nil {
			return sb.String(), err
		}
	}
}

// isTerminal reports whether r is an interactive terminal (not merely a
// character device such as /dev/null).
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}
