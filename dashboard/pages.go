package dashboard

import (
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lumos-mesh/lumos/api"
	"github.com/lumos-mesh/lumos/state"
)

// page is what layout.html renders; Content is the page's own data.
type page struct {
	Title        string
	Nav          string // active navigation entry
	Prefix       string
	Cluster      string
	AssetVersion string
	RefreshMS    int64
	Now          time.Time
	NowISO       string

	// Header: this node's view of Raft.
	Node        string
	Version     string
	RaftState   string
	Leader      string
	LeaderKnown bool
	Term        uint64

	// Navigation badges.
	FailedOver int
	Problems   int // shields offline, in error or down

	Content any

	status api.StatusResponse
}

// when is a time as pages show it: relative text, absolute time in the
// title, machine-readable for the script that keeps relative times fresh.
type when struct {
	Zero bool
	ISO  string
	Abs  string
	Rel  string
}

func mkWhen(now, t time.Time) when {
	if t.IsZero() {
		return when{Zero: true}
	}
	return when{ISO: t.UTC().Format(time.RFC3339), Abs: t.UTC().Format("2006-01-02 15:04:05 UTC"), Rel: relTime(now.Sub(t))}
}

func mkWhenPtr(now time.Time, t *time.Time) when {
	if t == nil {
		return when{Zero: true}
	}
	return mkWhen(now, *t)
}

// relTime formats the age d of a time: "12 s ago", "in 5 s".
func relTime(d time.Duration) string {
	if d < 0 {
		return "in " + shortDuration(-d)
	}
	if d < time.Second {
		return "just now"
	}
	return shortDuration(d) + " ago"
}

// shortDuration is a duration to a human: "12 s", "5 min", "3 h 4 min",
// "2 d 3 h".
func shortDuration(d time.Duration) string {
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return strconv.FormatInt(s, 10) + " s"
	case s < 3600:
		return strconv.FormatInt(s/60, 10) + " min"
	case s < 86400:
		h, m := s/3600, s%3600/60
		if m == 0 {
			return strconv.FormatInt(h, 10) + " h"
		}
		return strconv.FormatInt(h, 10) + " h " + strconv.FormatInt(m, 10) + " min"
	default:
		dd, h := s/86400, s%86400/3600
		if h == 0 {
			return strconv.FormatInt(dd, 10) + " d"
		}
		return strconv.FormatInt(dd, 10) + " d " + strconv.FormatInt(h, 10) + " h"
	}
}

// viewCtx is one consistent read: the state (inside View only), the gossip
// view and the clock.
type viewCtx struct {
	st    *state.State
	mi    api.MemberIndex
	now   time.Time
	names map[string]string // server ID -> name
}

func (v *viewCtx) serverName(id string) string {
	if v.names == nil {
		v.names = make(map[string]string, len(v.st.Servers))
		for id, sv := range v.st.Servers {
			v.names[id] = sv.Name
		}
	}
	return v.names[id]
}

// load reads the status and the gossip view, then runs fn on the state; it
// returns the page with its header filled in.
func (h *handler) load(title, nav string, fn func(v *viewCtx)) *page {
	status := h.src.Status()
	mi := api.IndexMembers(h.src.Members())
	now := h.src.Now()
	var problems int
	h.src.View(func(st *state.State) {
		api.FillStatus(st, mi, &status)
		for _, sv := range st.Servers {
			if sv.Decommissioned {
				continue
			}
			if sv.Down || api.ServerStatus(mi, sv) != api.StatusOnline {
				problems++
			}
		}
		if fn != nil {
			fn(&viewCtx{st: st, mi: mi, now: now})
		}
	})
	p := h.pageFrom(status, now, title, nav)
	p.status = status
	p.FailedOver = status.FailedOver
	p.Problems = problems
	return p
}

// newPage is a page without a read of the state (errors).
func (h *handler) newPage(title, nav string) *page {
	return h.pageFrom(h.src.Status(), h.src.Now(), title, nav)
}

func (h *handler) pageFrom(status api.StatusResponse, now time.Time, title, nav string) *page {
	return &page{
		Title:        title,
		Nav:          nav,
		Prefix:       h.cfg.Prefix,
		Cluster:      h.cfg.ClusterName,
		AssetVersion: h.version,
		RefreshMS:    h.cfg.Refresh.Milliseconds(),
		Now:          now,
		NowISO:       now.UTC().Format(time.RFC3339Nano),
		Node:         status.Node,
		Version:      status.Version,
		RaftState:    status.RaftState,
		Leader:       status.Leader,
		LeaderKnown:  status.Leader != "",
		Term:         status.Term,
	}
}

// ---- view models ----

type serverView struct {
	api.ServerInfo
	Created    when
	LastSeenAt when
	DecomAt    when
	DownAt     when // of ServerInfo.DownSince
	TrafficAt  when
	Uptime     string
	// Error is the error message the leader recorded, or what gossip says.
	Error       string
	ConfigHash  string
	DomainRoles []serverDomain
	SiteList    []siteView
	Events      []eventView
}

type serverDomain struct {
	Name           string
	Primary        bool
	Active         bool
	FailoverStatus string
}

type siteView struct {
	Domain     string
	Mode       string
	Origins    []string
	Backend    string
	Frontend   string
	Unresolved []string
	Managed    bool
}

func (v *viewCtx) server(sv *state.Server, detail bool) serverView {
	info := api.ServerView(v.st, v.mi, sv, v.now)
	out := serverView{
		ServerInfo: info,
		Created:    mkWhen(v.now, info.CreatedAt),
		LastSeenAt: mkWhenPtr(v.now, info.LastSeen),
		DecomAt:    mkWhenPtr(v.now, info.DecommissionedAt),
		DownAt:     mkWhenPtr(v.now, info.DownSince),
		Error:      sv.Error,
	}
	if out.Error == "" {
		out.Error = info.HealthError
	}
	if out.ErrorType == "" {
		out.ErrorType = sv.ErrorType
	}
	if info.UptimeSeconds > 0 {
		out.Uptime = shortDuration(time.Duration(info.UptimeSeconds) * time.Second)
	}
	if info.Traffic != nil {
		out.TrafficAt = mkWhen(v.now, info.Traffic.At)
	} else {
		out.TrafficAt = when{Zero: true}
	}
	out.ConfigHash = info.ConfigHash
	if len(out.ConfigHash) > 12 {
		out.ConfigHash = out.ConfigHash[:12]
	}
	if !detail {
		return out
	}
	for _, name := range info.Domains {
		d, ok := v.st.Domains[name]
		if !ok {
			continue
		}
		out.DomainRoles = append(out.DomainRoles, serverDomain{
			Name:           d.Name,
			Primary:        d.Primary() == sv.ID,
			Active:         d.ActiveServer == sv.ID,
			FailoverStatus: d.FailoverStatus,
		})
	}
	for _, s := range sv.Sites {
		_, managed := v.st.Domains[s.Domain]
		out.SiteList = append(out.SiteList, siteView{
			Domain: s.Domain, Mode: s.Mode, Backend: s.Backend, Frontend: s.Frontend,
			Origins: slices.Clone(s.Origins), Unresolved: slices.Clone(s.Unresolved), Managed: managed,
		})
	}
	out.Events = v.events(eventFilter{Server: sv.ID}, 20, nil)
	return out
}

type domainView struct {
	api.DomainInfo
	Primary      string // names
	Active       string
	Created      when
	Updated      when
	FailoverWhen when // of DomainInfo.FailoverAt
	DNSEnabled   bool
	Desired      *recordView
	Synced       *recordView
	InSync       bool
	Builtin      bool   // the built-in DNS serves the desired record directly
	ActiveState  string // status of the active server
	Events       []eventView
}

type recordView struct {
	Provider string
	IP       string
	TTL      int
	At       when
}

func (v *viewCtx) domain(d *state.Domain, detail bool) domainView {
	info := api.DomainView(v.st, v.mi, d)
	out := domainView{
		DomainInfo:   info,
		Created:      mkWhen(v.now, info.CreatedAt),
		Updated:      mkWhen(v.now, info.UpdatedAt),
		FailoverWhen: mkWhenPtr(v.now, info.FailoverAt),
		DNSEnabled:   d.DNS.Provider != "" && d.DNS.Provider != state.DNSNone,
	}
	for _, s := range info.Servers {
		if s.Primary {
			out.Primary = s.Name
		}
		if s.Active {
			out.Active = s.Name
			out.ActiveState = s.Status
		}
	}
	// The records are copied: the view must hold no pointer into the state.
	if rec := info.Record; rec != nil {
		out.Desired = &recordView{Provider: rec.Provider, IP: rec.IP, TTL: rec.TTL, At: when{Zero: true}}
		// The built-in DNS answers from the replicated state itself: what
		// is committed is what it serves.
		out.Builtin = rec.Provider == state.DNSBuiltin
		out.InSync = out.Builtin || info.DNSSynced.Same(rec)
	}
	if rec := info.DNSSynced; rec != nil {
		out.Synced = &recordView{Provider: rec.Provider, IP: rec.IP, TTL: rec.TTL, At: mkWhen(v.now, rec.At)}
		c := *rec
		out.DNSSynced = &c
	}
	if rec := info.Record; rec != nil {
		c := *rec
		out.Record = &c
	}
	if detail {
		out.Events = v.events(eventFilter{Domain: d.Name}, 20, nil)
	}
	return out
}

type eventView struct {
	state.Event
	When       when
	ServerName string
	Class      string
}

type eventFilter struct {
	Domain, Type, Server string
}

func (f eventFilter) match(e *state.Event) bool {
	return (f.Domain == "" || e.Domain == f.Domain) &&
		(f.Type == "" || e.Type == f.Type) &&
		(f.Server == "" || e.ServerID == f.Server)
}

// events returns the newest events matching f, at most limit (0: all);
// total, if not nil, receives how many match in all.
func (v *viewCtx) events(f eventFilter, limit int, total *int) []eventView {
	var out []eventView
	n := 0
	for i := len(v.st.Events) - 1; i >= 0; i-- {
		e := &v.st.Events[i]
		if !f.match(e) {
			continue
		}
		n++
		if limit > 0 && len(out) >= limit {
			if total == nil {
				break
			}
			continue
		}
		out = append(out, eventView{Event: *e, When: mkWhen(v.now, e.Time), ServerName: v.serverName(e.ServerID), Class: eventClass(e.Type)})
	}
	if total != nil {
		*total = n
	}
	return out
}

// eventClass is the colour of an event type.
func eventClass(typ string) string {
	switch typ {
	case state.EventServerDown, state.EventServerError:
		return "bad"
	case state.EventFailoverTriggered, state.EventFailoverHeld:
		return "warn"
	case state.EventServerRecovered, state.EventServerErrorCleared, state.EventFailoverRecovered, state.EventServerJoined:
		return "good"
	case state.EventServerDecommissioned, state.EventServerNodeRemoved, state.EventDomainRemoved:
		return "muted"
	}
	return "info"
}

type controlView struct {
	api.NodeInfo
	Role       string
	Self       bool
	LastSeenAt when
}

type alert struct {
	Level string // bad, warn
	Text  string
	Link  string
}

type overviewPage struct {
	Shields, Online, Offline, Error, Down, Decommissioned int
	Domains, FailedOver, DNSPending                       int
	ControlsAlive, ControlsTotal                          int
	Plan                                                  api.PlanInfo
	Controls                                              []controlView
	Servers                                               []serverView
	FailedOverDomains                                     []domainView
	Events                                                []eventView
	Alerts                                                []alert
}

func (h *handler) overview(w http.ResponseWriter, r *http.Request) {
	var c overviewPage
	p := h.load("Overview", "overview", func(v *viewCtx) {
		for _, sv := range v.st.SortedServers() {
			s := v.server(sv, false)
			if sv.Decommissioned {
				c.Decommissioned++
				continue
			}
			c.Shields++
			switch s.Status {
			case api.StatusOnline:
				c.Online++
			case api.StatusError:
				c.Error++
			default:
				c.Offline++
			}
			if sv.Down {
				c.Down++
			}
			c.Servers = append(c.Servers, s)
		}
		c.Domains = len(v.st.Domains)
		for _, d := range v.st.SortedDomains() {
			dv := v.domain(d, false)
			if d.FailoverStatus == state.FailoverFailedOver {
				c.FailedOverDomains = append(c.FailedOverDomains, dv)
			}
			if dv.Desired != nil && !dv.InSync {
				c.DNSPending++
			}
		}
		c.FailedOver = len(c.FailedOverDomains)
		c.Plan = api.PlanInfo{Name: v.st.Plan.Name, Limit: v.st.Plan.Limit, Used: v.st.ActiveServerCount()}
		c.Events = v.events(eventFilter{}, 12, nil)
	})
	status := p.status
	for _, n := range status.Nodes {
		if !n.Control {
			continue
		}
		cv := controlView{NodeInfo: n, Self: n.Name == status.Node, LastSeenAt: mkWhenPtr(p.Now, n.LastSeen)}
		switch {
		case cv.Self:
			cv.Role = status.RaftState
		case n.Leader:
			cv.Role = "leader"
		case n.Suffrage == "voter" && (n.GossipState == "alive" || n.GossipState == "suspect"):
			cv.Role = "follower"
		case n.Suffrage == "voter":
			cv.Role = "unreachable"
		case n.Suffrage == "nonvoter":
			cv.Role = "nonvoter"
		default:
			cv.Role = "not in raft"
		}
		c.ControlsTotal++
		if n.GossipState == "alive" || n.GossipState == "suspect" {
			c.ControlsAlive++
		}
		c.Controls = append(c.Controls, cv)
	}
	if !p.LeaderKnown {
		c.Alerts = append(c.Alerts, alert{Level: "bad", Text: "No Raft leader is known: changes cannot be committed and failover decisions wait until a leader is elected."})
	}
	if c.Down > 0 {
		c.Alerts = append(c.Alerts, alert{Level: "bad", Text: plural(c.Down, "shield is", "shields are") + " held down by the failover controller.", Link: p.Prefix + "/servers"})
	}
	if c.Error > 0 {
		c.Alerts = append(c.Alerts, alert{Level: "bad", Text: plural(c.Error, "shield reports", "shields report") + " a HAProxy error.", Link: p.Prefix + "/servers"})
	}
	if c.FailedOver > 0 {
		c.Alerts = append(c.Alerts, alert{Level: "warn", Text: plural(c.FailedOver, "domain is", "domains are") + " failed over to a backup shield.", Link: p.Prefix + "/domains"})
	}
	if c.DNSPending > 0 {
		c.Alerts = append(c.Alerts, alert{Level: "warn", Text: plural(c.DNSPending, "domain's DNS record is", "domains' DNS records are") + " not yet confirmed at the provider.", Link: p.Prefix + "/domains"})
	}
	p.Content = c
	h.render(w, r, http.StatusOK, "overview", p)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

type serversPage struct {
	Servers []serverView
	Live    int
}

func (h *handler) servers(w http.ResponseWriter, r *http.Request) {
	var c serversPage
	p := h.load("Servers", "servers", func(v *viewCtx) {
		var decom []serverView
		for _, sv := range v.st.SortedServers() {
			s := v.server(sv, false)
			if sv.Decommissioned {
				decom = append(decom, s)
				continue
			}
			c.Servers = append(c.Servers, s)
		}
		c.Live = len(c.Servers)
		c.Servers = append(c.Servers, decom...)
	})
	p.Content = c
	h.render(w, r, http.StatusOK, "servers", p)
}

func (h *handler) server(w http.ResponseWriter, r *http.Request, ref string) {
	if strings.Contains(ref, "/") {
		h.notFound(w, r, "no such server")
		return
	}
	var (
		c     serverView
		found bool
	)
	p := h.load("", "servers", func(v *viewCtx) {
		sv, ok := v.st.Servers[ref]
		if !ok {
			if s, err := v.st.FindServer(ref); err == nil {
				sv, ok = s, true
			}
		}
		if !ok {
			return
		}
		found = true
		c = v.server(sv, true)
	})
	if !found {
		h.notFound(w, r, "no server "+strconv.Quote(ref))
		return
	}
	p.Title = "Server " + c.Name
	p.Content = c
	h.render(w, r, http.StatusOK, "server", p)
}

type domainsPage struct {
	Domains    []domainView
	FailedOver int
}

func (h *handler) domains(w http.ResponseWriter, r *http.Request) {
	var c domainsPage
	p := h.load("Domains", "domains", func(v *viewCtx) {
		for _, d := range v.st.SortedDomains() {
			dv := v.domain(d, false)
			if d.FailoverStatus == state.FailoverFailedOver {
				c.FailedOver++
			}
			c.Domains = append(c.Domains, dv)
		}
	})
	p.Content = c
	h.render(w, r, http.StatusOK, "domains", p)
}

func (h *handler) domain(w http.ResponseWriter, r *http.Request, name string) {
	if strings.Contains(name, "/") {
		h.notFound(w, r, "no such domain")
		return
	}
	var (
		c     domainView
		found bool
	)
	p := h.load("", "domains", func(v *viewCtx) {
		d, ok := v.st.Domains[strings.ToLower(name)]
		if !ok {
			return
		}
		found = true
		c = v.domain(d, true)
	})
	if !found {
		h.notFound(w, r, "no domain "+strconv.Quote(name))
		return
	}
	p.Title = "Domain " + c.Name
	p.Content = c
	h.render(w, r, http.StatusOK, "domain", p)
}

type eventsPage struct {
	Filter     eventFilter
	ServerName string
	Filtered   bool
	Domains    []string
	Types      []string
	Events     []eventView
	Total      int
	Limit      int
}

func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	c := eventsPage{
		Filter: eventFilter{Domain: strings.ToLower(strings.TrimSpace(q.Get("domain"))), Type: strings.TrimSpace(q.Get("type")), Server: strings.TrimSpace(q.Get("server"))},
		Limit:  DefaultEventLimit,
	}
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n > 0 {
		c.Limit = min(n, state.MaxEvents)
	}
	c.Filtered = c.Filter != (eventFilter{})
	p := h.load("Events", "events", func(v *viewCtx) {
		types := map[string]bool{}
		for i := range v.st.Events {
			types[v.st.Events[i].Type] = true
		}
		for t := range types {
			c.Types = append(c.Types, t)
		}
		sort.Strings(c.Types)
		for _, d := range v.st.SortedDomains() {
			c.Domains = append(c.Domains, d.Name)
		}
		c.ServerName = v.serverName(c.Filter.Server)
		c.Events = v.events(c.Filter, c.Limit, &c.Total)
	})
	p.Content = c
	h.render(w, r, http.StatusOK, "events", p)
}

type errorPage struct {
	Status  int
	Message string
}
