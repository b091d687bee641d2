package notify

import (
	"context"
	"strings"

	"github.com/lumos-mesh/lumos/state"
)

// Target kinds.
const (
	KindWebhook = "webhook"
	KindEmail   = "email"
)

// Target is a notification destination.
type Target interface {
	// ID is stable and carries no secret: "webhook:" and the first 16 hex
	// digits of the SHA-256 of the URL, or "email:" and the address. The
	// replicated cursor is kept under it.
	ID() string
	// Kind is KindWebhook or KindEmail.
	Kind() string
	// Deliver sends one event. A nil error means the destination accepted
	// it; any error means it should be retried. names may be nil.
	Deliver(ctx context.Context, ev state.Event, names Names) error
}

// Names resolves IDs in events to human names for the message.
type Names interface {
	// ServerName returns the name of the server with this ID, or "".
	ServerName(id string) string
}

// serverName returns the name of the event's server, or "".
func serverName(ev state.Event, names Names) string {
	if ev.ServerID == "" || names == nil {
		return ""
	}
	return names.ServerName(ev.ServerID)
}

// summary is a one-line description of an event, such as
// "failover_triggered shop.example.com: 203.0.113.10 -> 198.51.100.7".
func summary(ev state.Event, names Names) string {
	var b strings.Builder
	b.WriteString(ev.Type)
	subject := ev.Domain
	if subject == "" {
		subject = serverName(ev, names)
	}
	if subject == "" {
		subject = ev.ServerID
	}
	if subject != "" {
		b.WriteString(" ")
		b.WriteString(subject)
	}
	switch {
	case ev.FromIP != "" && ev.ToIP != "":
		b.WriteString(": " + ev.FromIP + " -> " + ev.ToIP)
	case ev.FromIP != "":
		b.WriteString(": " + ev.FromIP)
	case ev.ToIP != "":
		b.WriteString(": " + ev.ToIP)
	}
	return oneLine(b.String())
}

// oneLine replaces line breaks and other control characters with spaces, so
// a value cannot break out of a header line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
