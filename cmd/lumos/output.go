package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// jsonOut reports whether --output json was asked for.
func (c *cli) jsonOut() bool { return c.output == outputJSON }

// printJSON writes v as indented JSON followed by a newline.
func (c *cli) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	b = append(b, '\n')
	_, err = c.stdout.Write(b)
	return err
}

// emit prints v as JSON with --output json; otherwise text prints it for
// people.
func (c *cli) emit(v any, text func() error) error {
	if c.jsonOut() {
		return c.printJSON(v)
	}
	return text()
}

// say prints a formatted message on stdout.
func (c *cli) say(format string, a ...any) error {
	fmt.Fprintf(c.stdout, format, a...)
	return nil
}

// table is a tab-aligned table written to stdout.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

// row writes one row; cells are cleaned of tabs and newlines so they cannot
// break the layout.
func (t *table) row(cells ...string) {
	for i, s := range cells {
		cells[i] = cell(s)
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// kvList prints "Key:  value" lines with aligned values.
type kvList struct {
	tw *tabwriter.Writer
}

func newKV(w io.Writer) *kvList {
	return &kvList{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
}

func (k *kvList) add(key, value string) {
	fmt.Fprintf(k.tw, "%s:\t%s\n", key, cell(value))
}

func (k *kvList) flush() error { return k.tw.Flush() }

// cell makes s safe for one table cell; empty becomes "-".
func cell(s string) string {
	s = strings.Map(func(r rune) rune {
		switch r {
		case '\t', '\n', '\r', '\v', '\f':
			return ' '
		}
		return r
	}, s)
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

// fmtTime renders an absolute time for tables.
func (c *cli) fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.In(c.loc).Format("2006-01-02 15:04:05")
}

// fmtTimeAgo renders an absolute time followed by how long ago it was.
func (c *cli) fmtTimeAgo(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return c.fmtTime(t) + " (" + c.ago(t) + ")"
}

// ago renders how long ago t was: "3s ago", "5m ago", "2h ago", "4d ago".
func (c *cli) ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := c.now().Sub(t)
	if d < 0 {
		// Clocks differ a little between machines; do not print "in 1s".
		d = 0
	}
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s ago"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m ago"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + "h ago"
	default:
		return strconv.Itoa(int(d/(24*time.Hour))) + "d ago"
	}
}

// agoPtr is ago for optional times.
func (c *cli) agoPtr(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return c.ago(*t)
}

// fmtUptime renders a number of seconds compactly: "45s", "12m", "3h5m",
// "4d2h". Zero means unknown.
func fmtUptime(sec int64) string {
	if sec <= 0 {
		return "-"
	}
	d := time.Duration(sec) * time.Second
	days := int64(d / (24 * time.Hour))
	hours := int64(d/time.Hour) % 24
	mins := int64(d/time.Minute) % 60
	switch {
	case days > 0:
		return fmt.Sprintf("%dd%dh", days, hours)
	case hours > 0:
		return fmt.Sprintf("%dh%dm", hours, mins)
	case mins > 0:
		return fmt.Sprintf("%dm", mins)
	default:
		return fmt.Sprintf("%ds", sec)
	}
}

// yesNo renders a boolean for tables.
func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// mark renders a flag as a "*" in its table column, or nothing.
func mark(b bool) string {
	if b {
		return "*"
	}
	return ""
}

// plural returns "1 server" or "3 servers".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// orEmpty returns a non-nil slice so JSON shows [] rather than null.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// normEach applies norm to every element of s and returns s, non-nil, so
// JSON shows [] rather than null.
func normEach[T any](s []T, norm func(*T) *T) []T {
	for i := range s {
		norm(&s[i])
	}
	return orEmpty(s)
}
