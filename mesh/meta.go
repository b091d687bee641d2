package mesh

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/hashicorp/memberlist"
)

// MetaMaxSize is the largest encoded Meta memberlist accepts.
const MetaMaxSize = memberlist.MetaMaxSize

// Meta is the node metadata gossiped with every member. Its JSON encoding
// must stay within MetaMaxSize bytes; the short JSON names keep it compact.
type Meta struct {
	Control      bool   `json:"c,omitempty"`    // runs a control node (raft voter + API)
	Shield       bool   `json:"s,omitempty"`    // runs a shield (HAProxy)
	ServerID     string `json:"sid,omitempty"`  // shield's server record ID
	Addr         string `json:"ip,omitempty"`   // advertise IP
	RaftAddr     string `json:"raft,omitempty"` // IP:PORT of raft transport
	APIAddr      string `json:"api,omitempty"`  // http://IP:PORT of the HTTP API (control nodes)
	AppliedIndex uint64 `json:"ai,omitempty"`   // raft applied index on this node
	ConfigHash   string `json:"ch,omitempty"`   // hash of applied HAProxy config (shields)
	Health       string `json:"h,omitempty"`    // "", "ok", "error" (HAProxy health on shields)
	HealthError  string `json:"he,omitempty"`   // short reason when Health=="error" (truncated to fit)
	Version      string `json:"v,omitempty"`    // lumos version
	Started      int64  `json:"st,omitempty"`   // unix seconds process start
	Bootstrapped bool   `json:"rb,omitempty"`   // node has raft state (belongs to a cluster already)

	// Shield pipeline.
	ConfigIndex uint64   `json:"ci,omitempty"` // state index the serving HAProxy config was rendered from
	ErrorType   string   `json:"et,omitempty"` // e.g. haproxy_reload_failed, when Health=="error"
	Restarts    int      `json:"hr,omitempty"` // HAProxy restarts by the supervisor
	Traffic     *Traffic `json:"t,omitempty"`  // HAProxy traffic totals
	// Heartbeat is a counter a shield bumps every few seconds from its main
	// loop: a member that gossip says is alive but whose counter stops moving
	// is a hung agent.
	Heartbeat uint64 `json:"hb,omitempty"`
}

// Traffic is a shield's HAProxy traffic summed over its sites, as last read
// from the stats socket.
type Traffic struct {
	RequestsPerSec float64 `json:"r"`
	Requests       uint64  `json:"n"`
	BytesIn        uint64  `json:"bi"`
	BytesOut       uint64  `json:"bo"`
	Connections    int     `json:"c"`
	Responses5xx   uint64  `json:"e"`
	At             int64   `json:"at"` // unix seconds of the reading
}

// Encode returns the JSON encoding of m. If the encoding exceeds MetaMaxSize,
// HealthError is shortened (on a UTF-8 boundary) until it fits; if it still
// does not fit, Encode returns ErrMetaTooLarge.
func (m Meta) Encode() ([]byte, error) {
	_, b, err := m.fit()
	return b, err
}

// fit returns the Meta that is actually gossiped (HealthError possibly
// shortened) and its encoding.
func (m Meta) fit() (Meta, []byte, error) {
	b, err := marshalMeta(m)
	if err != nil {
		return m, nil, err
	}
	for len(b) > MetaMaxSize && m.HealthError != "" {
		over := len(b) - MetaMaxSize
		m.HealthError = truncateUTF8(m.HealthError, len(m.HealthError)-over)
		if b, err = marshalMeta(m); err != nil {
			return m, nil, err
		}
	}
	if len(b) > MetaMaxSize {
		return m, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMetaTooLarge, len(b), MetaMaxSize)
	}
	return m, b, nil
}

func marshalMeta(m Meta) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // "<", ">" and "&" would cost six bytes each
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("encode meta: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// truncateUTF8 returns the longest prefix of s that is at most n bytes and
// does not split a rune.
func truncateUTF8(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// DecodeMeta decodes metadata produced by Meta.Encode. Empty input decodes to
// the zero Meta; unknown fields are ignored so newer nodes can add fields.
func DecodeMeta(b []byte) (Meta, error) {
	var m Meta
	if len(b) == 0 {
		return m, nil
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return Meta{}, fmt.Errorf("%w: %w", ErrBadMeta, err)
	}
	return m, nil
}
