package haproxy

import (
	"context"
	"encoding/csv"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// SiteStats is the traffic of one site backend, from HAProxy's `show stat`.
// Counters belong to the current worker: they start again from zero when a
// reload starts a new worker (treat them as Prometheus counters, which
// allow resets).
type SiteStats struct {
	Backend string
	// Requests is the number of HTTP requests (req_tot); for a TCP backend,
	// the number of connections (stot).
	Requests uint64
	// RequestsPerSec is the rate of Requests since the previous Stats
	// call; on the first call, HAProxy's own rate over the last second.
	RequestsPerSec float64
	// BytesIn is what clients sent, BytesOut what they received.
	BytesIn, BytesOut uint64
	// CurrentConns is the number of sessions open now (scur).
	CurrentConns int
	// Responses5xx counts HTTP responses with a 5xx status (hrsp_5xx).
	Responses5xx uint64
	// ServersUp counts servers whose status is UP (or "no check");
	// ServersTotal all of them.
	ServersUp, ServersTotal int
}

// statSample remembers a backend's request counter for rates.
type statSample struct {
	at       time.Time
	requests uint64
}

// Stats returns the traffic of every site backend HAProxy serves, sorted by
// backend name (the caller maps backends to domains: render names them). A
// site served from a spare backend is reported under its own backend name.
// It reads `show stat` for backends and servers through the runtime API on
// the stats socket. Returns ErrNotRunning when HAProxy is not up.
func (m *Manager) Stats(ctx context.Context) ([]SiteStats, error) {
	if err := m.usable(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	known := m.serving.Hash != ""
	sites := m.serving.Sites
	// Sites served from spare backends report under their own name.
	fromSpare := make(map[string]string, len(m.serving.Spares))
	for site, spare := range m.serving.Spares {
		fromSpare[spare] = site
	}
	m.mu.Unlock()

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rt, err := m.runtimeClient(rctx)
	if err != nil {
		return nil, err
	}
	// Proxies of every id, types 2 (backends) + 4 (servers), every server.
	out, err := runtimeCommand(rt, "show stat -1 6 -1")
	if err != nil {
		return nil, fmt.Errorf("show stat: %w", err)
	}
	now := time.Now()
	all, err := parseShowStat(out)
	if err != nil {
		return nil, err
	}
	for spare, site := range fromSpare {
		if b, ok := all[spare]; ok {
			b.stats.Backend = site
			all[site] = b
		}
	}

	want := func(name string) bool {
		return !strings.HasPrefix(name, "<") && !strings.HasPrefix(name, SpareBackendPrefix)
	}
	if known {
		set := make(map[string]bool, len(sites))
		for _, s := range sites {
			set[s] = true
		}
		want = func(name string) bool { return set[name] }
	}

	m.statsMu.Lock()
	defer m.statsMu.Unlock()
	res := make([]SiteStats, 0, len(all))
	seen := make(map[string]bool, len(all))
	for name, s := range all {
		if !want(name) {
			continue
		}
		seen[name] = true
		if prev, ok := m.samples[name]; ok && now.After(prev.at) {
			dt := now.Sub(prev.at).Seconds()
			if s.stats.Requests >= prev.requests {
				s.stats.RequestsPerSec = float64(s.stats.Requests-prev.requests) / dt
			} else { // a new worker: its counters started again
				s.stats.RequestsPerSec = float64(s.stats.Requests) / dt
			}
		} else {
			s.stats.RequestsPerSec = float64(s.rate)
		}
		m.samples[name] = statSample{at: now, requests: s.stats.Requests}
		res = append(res, s.stats)
	}
	for name := range m.samples {
		if !seen[name] {
			delete(m.samples, name)
		}
	}
	sort.Slice(res, func(i, j int) bool { return res[i].Backend < res[j].Backend })
	return res, nil
}

type parsedBackend struct {
	stats SiteStats
	rate  uint64 // HAProxy's sessions per second over the last second
}

// parseShowStat reads `show stat` CSV into backends with their servers
// counted.
func parseShowStat(out string) (map[string]*parsedBackend, error) {
	out = strings.TrimSpace(out)
	if !strings.HasPrefix(out, "# ") {
		return nil, fmt.Errorf("show stat: unexpected answer %q", firstLine(out))
	}
	r := csv.NewReader(strings.NewReader(out[2:]))
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	r.ReuseRecord = false
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("show stat header: %w", err)
	}
	col := make(map[string]int, len(header))
	for i, h := range header {
		col[h] = i
	}
	for _, need := range []string{"pxname", "svname", "type", "status"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("show stat: no %s column", need)
		}
	}
	field := func(rec []string, name string) string {
		i, ok := col[name]
		if !ok || i >= len(rec) {
			return ""
		}
		return rec[i]
	}
	num := func(rec []string, name string) uint64 {
		v, _ := strconv.ParseUint(field(rec, name), 10, 64)
		return v
	}
	backends := make(map[string]*parsedBackend)
	get := func(name string) *parsedBackend {
		b := backends[name]
		if b == nil {
			b = &parsedBackend{stats: SiteStats{Backend: name}}
			backends[name] = b
		}
		return b
	}
	for {
		rec, err := r.Read()
		if err != nil {
			break
		}
		name := field(rec, "pxname")
		switch field(rec, "type") {
		case "1": // backend
			b := get(name)
			if v := field(rec, "req_tot"); v != "" {
				b.stats.Requests = num(rec, "req_tot")
			} else {
				b.stats.Requests = num(rec, "stot")
			}
			b.stats.BytesIn = num(rec, "bin")
			b.stats.BytesOut = num(rec, "bout")
			b.stats.CurrentConns = int(num(rec, "scur"))
			b.stats.Responses5xx = num(rec, "hrsp_5xx")
			b.rate = num(rec, "rate")
		case "2": // server
			b := get(name)
			b.stats.ServersTotal++
			st := field(rec, "status")
			if strings.HasPrefix(st, "UP") || st == "no check" {
				b.stats.ServersUp++
			}
		}
	}
	return backends, nil
}
