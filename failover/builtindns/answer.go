package builtindns

import (
	"log/slog"
	"net"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// Fixed parts of every zone.
const (
	// NSTTL is the TTL of the apex NS records and of their glue.
	NSTTL = 3600
	// SOATTL is the TTL of the SOA record when it is asked for.
	SOATTL = 3600
	// NegativeTTL is the SOA minimum: how long resolvers cache NXDOMAIN and
	// NODATA answers. It is also the TTL of the SOA in negative answers.
	NegativeTTL = 30

	soaRefresh = 3600
	soaRetry   = 600
	soaExpire  = 1209600

	// MaxUDPSize is the largest UDP reply the server sends and the size it
	// advertises in EDNS0 (the 2020 DNS flag day value, which avoids IP
	// fragmentation).
	MaxUDPSize = 1232
)

// acceptQuery screens a message before it is parsed: responses are
// dropped, opcodes other than QUERY get NOTIMP, anything that is not one
// question (with at most an OPT and a TSIG record, and an IXFR's SOA) gets
// FORMERR.
func acceptQuery(dh dns.Header) dns.MsgAcceptAction {
	const qr = 1 << 15
	if dh.Bits&qr != 0 {
		return dns.MsgIgnore
	}
	if opcode := int(dh.Bits>>11) & 0xF; opcode != dns.OpcodeQuery {
		return dns.MsgRejectNotImplemented
	}
	if dh.Qdcount != 1 || dh.Ancount != 0 || dh.Nscount > 1 || dh.Arcount > 2 {
		return dns.MsgReject
	}
	return dns.MsgAccept
}

// handler answers queries from the Source.
type handler struct {
	src Source
	log *slog.Logger
}

// ServeDNS implements dns.Handler.
func (h *handler) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	_, tcp := w.RemoteAddr().(*net.TCPAddr)
	m := h.reply(req, !tcp)
	data, err := m.Pack()
	if err != nil {
		h.log.Warn("dns answer cannot be packed", "name", questionName(req), "err", err)
		m = failure(req, dns.RcodeServerFailure)
		if data, err = m.Pack(); err != nil {
			return
		}
	}
	if _, err := w.Write(data); err != nil {
		h.log.Debug("dns answer not sent", "remote", w.RemoteAddr().String(), "err", err)
	}
}

func questionName(req *dns.Msg) string {
	if len(req.Question) == 0 {
		return ""
	}
	return req.Question[0].Name
}

// failure returns a bare reply with rcode.
func failure(req *dns.Msg, rcode int) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(req, rcode)
	return m
}

// reply builds the answer to req, sized for UDP when udp is set.
func (h *handler) reply(req *dns.Msg, udp bool) (m *dns.Msg) {
	defer func() {
		if r := recover(); r != nil {
			h.log.Error("dns query failed", "name", questionName(req), "panic", r)
			m = failure(req, dns.RcodeServerFailure)
		}
	}()

	if req.Opcode != dns.OpcodeQuery {
		return failure(req, dns.RcodeNotImplemented)
	}
	if len(req.Question) != 1 {
		return failure(req, dns.RcodeFormatError)
	}
	var opt *dns.OPT
	for _, rr := range req.Extra {
		if o, ok := rr.(*dns.OPT); ok {
			if opt != nil {
				return failure(req, dns.RcodeFormatError) // RFC 6891 6.1.1
			}
			opt = o
		}
	}

	m = new(dns.Msg)
	m.SetReply(req)
	size := dns.MinMsgSize
	if opt != nil && opt.Version() != 0 {
		m.Rcode = dns.RcodeBadVers
	} else {
		if opt != nil {
			size = max(dns.MinMsgSize, min(int(opt.UDPSize()), MaxUDPSize))
		}
		h.answer(m, req.Question[0])
	}

	if opt != nil {
		o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		o.SetUDPSize(MaxUDPSize)
		if opt.Do() {
			o.SetDo()
		}
		m.Extra = append(m.Extra, o)
	}
	if !udp {
		size = dns.MaxMsgSize
	}
	m.Compress = true
	m.Truncate(size)
	return m
}

// answer fills m (a reply to q) with the rcode and records from the Source.
func (h *handler) answer(m *dns.Msg, q dns.Question) {
	switch {
	case q.Qtype == dns.TypeNone, q.Qclass == dns.ClassNONE, q.Qclass == 0,
		q.Qtype == dns.TypeOPT, q.Qtype == dns.TypeTSIG, q.Qtype == dns.TypeTKEY:
		// Reserved or meta types and classes, or a question cut short.
		m.Rcode = dns.RcodeFormatError
		return
	}
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		m.Rcode = dns.RcodeRefused
		return
	}

	qname := dns.Fqdn(q.Name)
	lower := strings.ToLower(qname) // no allocation when already lower-case
	off, zone, ok := h.find(lower)
	if !ok {
		m.Rcode = dns.RcodeRefused
		return
	}
	if q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
		m.Rcode = dns.RcodeRefused // no zone transfers
		return
	}
	m.Authoritative = true

	z := zoneView{
		Zone:  &zone,
		apex:  lower[off : len(lower)-1],
		owner: qname[off:],
	}
	if off == 0 {
		z.answerApex(m, q)
		return
	}
	z.answerName(m, q, lower[:len(lower)-1])
}

// find returns the managed zone holding the lower-case FQDN name: the
// Source is asked for every suffix of name, longest first. off is where
// the apex starts in name.
func (h *handler) find(name string) (off int, zone Zone, ok bool) {
	for off < len(name)-1 {
		if zone, ok = h.src.Zone(name[off : len(name)-1]); ok {
			return off, zone, true
		}
		next, end := dns.NextLabel(name, off)
		if end {
			break
		}
		off = next
	}
	return 0, Zone{}, false
}

// zoneView is a Zone being answered from.
type zoneView struct {
	*Zone
	apex  string // lower-case, no trailing dot
	owner string // the apex as an FQDN in the case of the question
}

// answerApex answers q for the zone's apex.
func (z zoneView) answerApex(m *dns.Msg, q dns.Question) {
	switch q.Qtype {
	case dns.TypeA, dns.TypeAAAA, dns.TypeANY:
		if rr := addrRR(q.Name, z.IP, z.TTL, q.Qtype); rr != nil {
			m.Answer = append(m.Answer, rr)
		} else if q.Qtype == dns.TypeANY {
			m.Answer = append(m.Answer, z.soa(SOATTL))
		}
	case dns.TypeNS:
		z.nsAnswer(m, q.Name)
	case dns.TypeSOA:
		m.Answer = append(m.Answer, z.soa(SOATTL))
	}
	if len(m.Answer) == 0 {
		m.Ns = append(m.Ns, z.soa(NegativeTTL))
	}
}

// answerName answers q for name (lower-case, no trailing dot), a name
// below the zone's apex. Only in-zone name servers exist there, and the
// names between them and the apex (empty non-terminals).
func (z zoneView) answerName(m *dns.Msg, q dns.Question, name string) {
	exists := false
	for _, ns := range z.NS {
		n := nsName(ns.Name)
		if n != name {
			if isBelow(n, name) {
				exists = true // empty non-terminal
			}
			continue
		}
		exists = true
		if rr := addrRR(q.Name, ns.IP, NSTTL, q.Qtype); rr != nil && !hasRR(m.Answer, rr) {
			m.Answer = append(m.Answer, rr)
		}
	}
	if !exists {
		m.Rcode = dns.RcodeNameError
	}
	if len(m.Answer) == 0 {
		m.Ns = append(m.Ns, z.soa(NegativeTTL))
	}
}

// nsAnswer adds the zone's NS records to m's answer and the addresses of
// the in-zone name servers as glue.
func (z zoneView) nsAnswer(m *dns.Msg, owner string) {
	for i, ns := range z.NS {
		n := nsName(ns.Name)
		if !validName(n) || seenNS(z.NS[:i], n) {
			continue
		}
		m.Answer = append(m.Answer, &dns.NS{
			Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: NSTTL},
			Ns:  n + ".",
		})
	}
	for _, ns := range z.NS {
		n := nsName(ns.Name)
		if !validName(n) || (n != z.apex && !isBelow(n, z.apex)) {
			continue
		}
		if rr := addrRR(n+".", ns.IP, NSTTL, dns.TypeANY); rr != nil && !hasRR(m.Extra, rr) {
			m.Extra = append(m.Extra, rr)
		}
	}
}

// soa returns the zone's SOA record with ttl.
func (z zoneView) soa(ttl uint32) *dns.SOA {
	mname := z.apex + "."
	for _, ns := range z.NS {
		if n := nsName(ns.Name); validName(n) {
			mname = n + "."
			break
		}
	}
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: z.owner, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
		Ns:      mname,
		Mbox:    "hostmaster." + z.apex + ".",
		Serial:  z.Serial,
		Refresh: soaRefresh,
		Retry:   soaRetry,
		Expire:  soaExpire,
		Minttl:  NegativeTTL,
	}
}

// addrRR returns the A or AAAA record of ip at owner if it answers qtype
// (A, AAAA or ANY), nil otherwise.
func addrRR(owner string, ip netip.Addr, ttl uint32, qtype uint16) dns.RR {
	if !ip.IsValid() {
		return nil
	}
	ip = ip.Unmap()
	if ip.Is4() && (qtype == dns.TypeA || qtype == dns.TypeANY) {
		a := ip.As4()
		return &dns.A{
			Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl},
			A:   net.IP(a[:]),
		}
	}
	if ip.Is6() && (qtype == dns.TypeAAAA || qtype == dns.TypeANY) {
		a := ip.As16()
		return &dns.AAAA{
			Hdr:  dns.RR_Header{Name: owner, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: ttl},
			AAAA: net.IP(a[:]),
		}
	}
	return nil
}

// nsName normalises a name server's name: lower-case, no trailing dot.
func nsName(s string) string {
	return strings.ToLower(strings.TrimSuffix(s, "."))
}

// validName reports whether n (no trailing dot) can be put on the wire.
func validName(n string) bool {
	if n == "" {
		return false
	}
	_, ok := dns.IsDomainName(n)
	return ok
}

// isBelow reports whether name lies strictly below parent (both lower-case,
// no trailing dot).
func isBelow(name, parent string) bool {
	return len(name) > len(parent)+1 &&
		name[len(name)-len(parent)-1] == '.' &&
		name[len(name)-len(parent):] == parent
}

func seenNS(prev []NameServer, n string) bool {
	for _, ns := range prev {
		if nsName(ns.Name) == n {
			return true
		}
	}
	return false
}

func hasRR(rrs []dns.RR, rr dns.RR) bool {
	for _, r := range rrs {
		if dns.IsDuplicate(r, rr) {
			return true
		}
	}
	return false
}
