package dashboard

import (
	"html/template"
	"net/url"
	"strconv"
	"strings"

	"github.com/lumos-mesh/lumos/api"
	"github.com/lumos-mesh/lumos/state"
)

// funcs are the template helpers. None of them returns unescaped HTML.
var funcs = template.FuncMap{
	"bytes":       humanBytes,
	"num":         humanNum,
	"rate":        func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) },
	"join":        strings.Join,
	"hasText":     strings.Contains,
	"statusClass": statusClass,
	"label":       func(s string) string { return strings.ReplaceAll(s, "_", " ") },
	"eventsURL":   eventsURL,
	"pathEscape":  url.PathEscape,
	"add":         func(a, b int) int { return a + b },
	"evt": func(prefix string, ev []eventView, filtered bool) eventsTable {
		return eventsTable{Prefix: prefix, Events: ev, Filtered: filtered}
	},
}

// eventsTable is the data of the "events" partial.
type eventsTable struct {
	Prefix   string
	Events   []eventView
	Filtered bool
}

// statusClass maps a server status or a failover status to the CSS class
// of its colour.
func statusClass(s string) string {
	switch s {
	case api.StatusOnline, state.FailoverActive, "leader", "follower", "alive", "ok":
		return "ok"
	case api.StatusError, "down", "dead", "shutdown", "unreachable":
		return "bad"
	case state.FailoverFailedOver, "suspect", "candidate", "pending":
		return "warn"
	case api.StatusDecommissioned, "left":
		return "muted"
	}
	return "off"
}

// eventsURL is the events page filtered by domain, type and server (each
// may be empty).
func eventsURL(prefix, domain, typ, server string) string {
	q := url.Values{}
	if domain != "" {
		q.Set("domain", domain)
	}
	if typ != "" {
		q.Set("type", typ)
	}
	if server != "" {
		q.Set("server", server)
	}
	u := prefix + "/events"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// humanBytes formats a byte count with binary units: "1.5 MiB".
func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + " B"
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return strconv.FormatFloat(float64(n)/float64(div), 'f', 1, 64) + " " + string("KMGTPE"[exp]) + "iB"
}

// humanNum formats an integer with thousands separators: "12,345".
func humanNum(v any) string {
	var s string
	switch n := v.(type) {
	case int:
		s = strconv.Itoa(n)
	case int64:
		s = strconv.FormatInt(n, 10)
	case uint64:
		s = strconv.FormatUint(n, 10)
	default:
		return ""
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
