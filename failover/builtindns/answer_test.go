package builtindns

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// exampleZone is the zone most tests answer from: two in-zone name
// servers (one IPv4, one IPv6), one out of zone, and one deeper in the
// zone so that sub.example.test and deep.sub.example.test exist as empty
// non-terminals.
func exampleZone() Zone {
	return Zone{
		Name:   "example.test",
		IP:     netip.MustParseAddr("192.0.2.10"),
		TTL:    300,
		Serial: 7,
		NS: []NameServer{
			{Name: "ns1.example.test", IP: netip.MustParseAddr("192.0.2.53")},
			{Name: "ns2.example.test", IP: netip.MustParseAddr("2001:db8::53")},
			{Name: "ns3.other.test", IP: netip.MustParseAddr("198.51.100.53")},
			{Name: "ns.deep.sub.example.test", IP: netip.MustParseAddr("192.0.2.54")},
		},
	}
}

// rrStrings returns the records in presentation format, tabs replaced by
// spaces, sorted.
func rrStrings(rrs []dns.RR) []string {
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		out = append(out, strings.ReplaceAll(rr.String(), "\t", " "))
	}
	slices.Sort(out)
	return out
}

func checkRRs(t *testing.T, section string, got []dns.RR, want []string) {
	t.Helper()
	g := rrStrings(got)
	w := slices.Clone(want)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Errorf("%s section:\n got  %q\n want %q", section, g, w)
	}
}

const (
	exampleSOA    = "example.test. 30 IN SOA ns1.example.test. hostmaster.example.test. 7 3600 600 1209600 30"
	exampleSOAPos = "example.test. 3600 IN SOA ns1.example.test. hostmaster.example.test. 7 3600 600 1209600 30"
)

func TestAnswers(t *testing.T) {
	src := newMemSource(exampleZone())
	srv := startServer(t, src)

	tests := []struct {
		name   string
		qname  string
		qtype  uint16
		rcode  int
		aa     bool
		answer []string
		ns     []string
		extra  []string
	}{
		{
			name: "apex A", qname: "example.test.", qtype: dns.TypeA, rcode: dns.RcodeSuccess, aa: true,
			answer: []string{"example.test. 300 IN A 192.0.2.10"},
		},
		{
			name: "apex AAAA is NODATA", qname: "example.test.", qtype: dns.TypeAAAA, rcode: dns.RcodeSuccess, aa: true,
			ns: []string{exampleSOA},
		},
		{
			name: "apex MX is NODATA", qname: "example.test.", qtype: dns.TypeMX, rcode: dns.RcodeSuccess, aa: true,
			ns: []string{exampleSOA},
		},
		{
			name: "apex TXT is NODATA", qname: "example.test.", qtype: dns.TypeTXT, rcode: dns.RcodeSuccess, aa: true,
			ns: []string{exampleSOA},
		},
		{
			name: "apex CAA is NODATA", qname: "example.test.", qtype: dns.TypeCAA, rcode: dns.RcodeSuccess, aa: true,
			ns: []string{exampleSOA},
		},
		{
			name: "apex HTTPS is NODATA", qname: "example.test.", qtype: dns.TypeHTTPS, rcode: dns.RcodeSuccess, aa: true,
			ns: []string{exampleSOA},
		},
		{
			name: "apex NS with glue for in-zone servers", qname: "example.test.", qtype: dns.TypeNS, rcode: dns.RcodeSuccess, aa: true,
			answer: []string{
				"example.test. 3600 IN NS ns1.example.test.",
				"example.test. 3600 IN NS ns2.example.test.",
				"example.test. 3600 IN NS ns3.other.test.",
				"example.test. 3600 IN NS ns.deep.sub.example.test.",
			},
			extra: []string{
				"ns1.example.test. 3600 IN A 192.0.2.53",
				"ns2.example.test. 3600 IN AAAA 2001:db8::53",
				"ns.deep.sub.example.test. 3600 IN A 192.0.2.54",
			},
		},
		{
			name: "apex SOA", qname: "example.test.", qtype: dns.TypeSOA, rcode: dns.RcodeSuccess, aa: true,
			answer: []string{exampleSOAPos},
		},
		{
			name: "apex ANY answers the address only", qname: "example.test.", qtype: dns.TypeANY, rcode: dns.RcodeSuccess, aa: true,
			answer: []string{"example.test. 300 IN A 192.0.2.10"},
		},
		{
			name: "in-zone name server A", qname: "ns1.example.test.", qtype: dns.TypeA, rcode: dns.RcodeSuccess, aa: true,
			answer: []string{"ns1.example.test. 3600 IN A 192.0.2.53"},
		},
		{
			name: "in-zone name server AAAA", qname: "ns2.example.test.", qtype: dns.TypeAAAA, rcode: dns.RcodeSuccess, aa: true,
			answer: []string{"ns2.example.test. 3600 IN AAAA 2001:db8::53"},
		},
		{
			name: "in-zone name server A when it only has AAAA", qname: "ns2.example.test.", qtype: dns.TypeA, rcode: dns.RcodeSuccess, aa: true,
			ns: []string{exampleSOA},
		},
		{
			name: "in-zone name server MX is NODATA", qname: "ns1.example.test.", qtype: dns.TypeMX, rcode: dns.RcodeSuccess, aa: true,
			ns: []string{exampleSOA},
		},
		{
			name: "deep in-zone name server", qname: "ns.deep.sub.example.test.", qtype: dns.TypeA, rcode: dns.RcodeSuccess, aa: true,
			answer: []string{"ns.deep.sub.example.test. 3600 IN A 192.0.2.54"},
		},
		{
			name: "empty non-terminal is NODATA", qname: "sub.example.test.", qtype: dns.TypeA, rcode: dns.RcodeSuccess, aa: true,
			ns: []string{exampleSOA},
		},
		{
			name: "deeper empty non-terminal is NODATA", qname: "deep.sub.example.test.", qtype: dns.TypeTXT, rcode: dns.RcodeSuccess, aa: true,
			ns: []string{exampleSOA},
		},
		{
			name: "other name under the apex is NXDOMAIN", qname: "www.example.test.", qtype: dns.TypeA, rcode: dns.RcodeNameError, aa: true,
			ns: []string{exampleSOA},
		},
		{
			name: "deep name under the apex is NXDOMAIN", qname: "a.b.www.example.test.", qtype: dns.TypeTXT, rcode: dns.RcodeNameError, aa: true,
			ns: []string{exampleSOA},
		},
		{
			name: "name below a name server is NXDOMAIN", qname: "x.ns1.example.test.", qtype: dns.TypeA, rcode: dns.RcodeNameError, aa: true,
			ns: []string{exampleSOA},
		},
		{
			name: "out-of-zone name server is REFUSED", qname: "ns3.other.test.", qtype: dns.TypeA, rcode: dns.RcodeRefused,
		},
		{
			name: "foreign name is REFUSED", qname: "foreign.test.", qtype: dns.TypeA, rcode: dns.RcodeRefused,
		},
		{
			name: "parent of the apex is REFUSED", qname: "test.", qtype: dns.TypeNS, rcode: dns.RcodeRefused,
		},
		{
			name: "root is REFUSED", qname: ".", qtype: dns.TypeSOA, rcode: dns.RcodeRefused,
		},
		{
			name: "name sharing a suffix string is REFUSED", qname: "badexample.test.", qtype: dns.TypeA, rcode: dns.RcodeRefused,
		},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tt := range tests {
			t.Run(network+"/"+tt.name, func(t *testing.T) {
				r := ask(t, network, srv.Addr(), tt.qname, tt.qtype)
				if r.Rcode != tt.rcode {
					t.Fatalf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode])
				}
				if r.Authoritative != tt.aa {
					t.Errorf("AA = %v, want %v", r.Authoritative, tt.aa)
				}
				if r.RecursionAvailable {
					t.Error("RA set by a server that never recurses")
				}
				if !r.RecursionDesired {
					t.Error("RD not copied from the query")
				}
				if r.Truncated {
					t.Error("TC set on a small answer")
				}
				if len(r.Question) != 1 || r.Question[0].Name != tt.qname || r.Question[0].Qtype != tt.qtype {
					t.Errorf("question not echoed: %v", r.Question)
				}
				checkRRs(t, "answer", r.Answer, tt.answer)
				checkRRs(t, "authority", r.Ns, tt.ns)
				checkRRs(t, "additional", r.Extra, tt.extra)
			})
		}
	}
}

func TestNameServerListCleanup(t *testing.T) {
	z := exampleZone()
	z.NS = []NameServer{
		{Name: "", IP: netip.MustParseAddr("192.0.2.50")},
		{Name: "bad..name", IP: netip.MustParseAddr("192.0.2.51")},
		{Name: "ns1.example.test", IP: netip.MustParseAddr("192.0.2.53")},
		{Name: "ns1.example.test.", IP: netip.MustParseAddr("192.0.2.53")},
		{Name: "ns1.example.test", IP: netip.MustParseAddr("192.0.2.54")},
		{Name: "ns2.example.test"},
	}
	srv := startServer(t, newMemSource(z))

	r := ask(t, "udp", srv.Addr(), "example.test.", dns.TypeNS)
	checkRRs(t, "answer", r.Answer, []string{
		"example.test. 3600 IN NS ns1.example.test.",
		"example.test. 3600 IN NS ns2.example.test.",
	})
	checkRRs(t, "additional", r.Extra, []string{
		"ns1.example.test. 3600 IN A 192.0.2.53",
		"ns1.example.test. 3600 IN A 192.0.2.54",
	})
	r = ask(t, "udp", srv.Addr(), "ns1.example.test.", dns.TypeA)
	checkRRs(t, "answer", r.Answer, []string{
		"ns1.example.test. 3600 IN A 192.0.2.53",
		"ns1.example.test. 3600 IN A 192.0.2.54",
	})
	// A name server without an address still exists: NODATA.
	r = ask(t, "udp", srv.Addr(), "ns2.example.test.", dns.TypeA)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
		t.Errorf("ns2 without address: rcode %s, %d answers, want NODATA", dns.RcodeToString[r.Rcode], len(r.Answer))
	}
	// The SOA names the first usable name server.
	r = ask(t, "udp", srv.Addr(), "example.test.", dns.TypeSOA)
	checkRRs(t, "answer", r.Answer, []string{exampleSOAPos})
}

func TestLongestApexWins(t *testing.T) {
	src := newMemSource(
		Zone{Name: "example.test", IP: netip.MustParseAddr("192.0.2.1"), TTL: 300, Serial: 1},
		Zone{Name: "shop.example.test", IP: netip.MustParseAddr("192.0.2.2"), TTL: 60, Serial: 2,
			NS: []NameServer{{Name: "ns1.example.test", IP: netip.MustParseAddr("192.0.2.53")}}},
	)
	srv := startServer(t, src)

	r := ask(t, "udp", srv.Addr(), "shop.example.test.", dns.TypeA)
	checkRRs(t, "answer", r.Answer, []string{"shop.example.test. 60 IN A 192.0.2.2"})

	src.resetAsked()
	r = ask(t, "udp", srv.Addr(), "www.shop.example.test.", dns.TypeA)
	if r.Rcode != dns.RcodeNameError || !r.Authoritative {
		t.Fatalf("rcode %s AA %v, want authoritative NXDOMAIN", dns.RcodeToString[r.Rcode], r.Authoritative)
	}
	checkRRs(t, "authority", r.Ns, []string{
		"shop.example.test. 30 IN SOA ns1.example.test. hostmaster.shop.example.test. 2 3600 600 1209600 30",
	})
	// The walk stops at the first hit, longest name first.
	if got, want := src.askedNames(), []string{"www.shop.example.test", "shop.example.test"}; !slices.Equal(got, want) {
		t.Errorf("source asked %q, want %q", got, want)
	}

	// A zone without name servers names its apex as SOA mname.
	r = ask(t, "udp", srv.Addr(), "www.example.test.", dns.TypeA)
	checkRRs(t, "authority", r.Ns, []string{
		"example.test. 30 IN SOA example.test. hostmaster.example.test. 1 3600 600 1209600 30",
	})
	// And its NS query is NODATA.
	r = ask(t, "udp", srv.Addr(), "example.test.", dns.TypeNS)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 || len(r.Ns) != 1 {
		t.Errorf("NS without name servers: rcode %s, %d answers, %d authority", dns.RcodeToString[r.Rcode], len(r.Answer), len(r.Ns))
	}

	// Foreign names walk every suffix and are refused.
	src.resetAsked()
	r = ask(t, "udp", srv.Addr(), "a.b.foreign.test.", dns.TypeA)
	if r.Rcode != dns.RcodeRefused {
		t.Fatalf("rcode %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
	if got, want := src.askedNames(), []string{"a.b.foreign.test", "b.foreign.test", "foreign.test", "test"}; !slices.Equal(got, want) {
		t.Errorf("source asked %q, want %q", got, want)
	}
}

func TestCaseInsensitive(t *testing.T) {
	src := newMemSource(exampleZone())
	srv := startServer(t, src)

	for _, network := range []string{"udp", "tcp"} {
		src.resetAsked()
		r := ask(t, network, srv.Addr(), "ExAmPlE.TeSt.", dns.TypeA)
		checkRRs(t, "answer", r.Answer, []string{"ExAmPlE.TeSt. 300 IN A 192.0.2.10"})
		if r.Question[0].Name != "ExAmPlE.TeSt." {
			t.Errorf("question name %q, want the query's case", r.Question[0].Name)
		}
		if got := src.askedNames(); !slices.Equal(got, []string{"example.test"}) {
			t.Errorf("source asked %q, want lower-case apex", got)
		}

		r = ask(t, network, srv.Addr(), "WWW.Example.TEST.", dns.TypeA)
		if r.Rcode != dns.RcodeNameError {
			t.Fatalf("rcode %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
		}
		checkRRs(t, "authority", r.Ns, []string{
			"Example.TEST. 30 IN SOA ns1.example.test. hostmaster.example.test. 7 3600 600 1209600 30",
		})

		r = ask(t, network, srv.Addr(), "NS1.EXAMPLE.TEST.", dns.TypeA)
		checkRRs(t, "answer", r.Answer, []string{"NS1.EXAMPLE.TEST. 3600 IN A 192.0.2.53"})

		r = ask(t, network, srv.Addr(), "EXAMPLE.test.", dns.TypeNS)
		if len(r.Answer) != 4 || len(r.Extra) != 3 {
			t.Errorf("NS: %d answers %d glue, want 4 and 3", len(r.Answer), len(r.Extra))
		}
	}

	// Name server names from the source are normalised.
	z := exampleZone()
	z.NS = []NameServer{{Name: "NS1.Example.Test.", IP: netip.MustParseAddr("192.0.2.53")}}
	src.set(z)
	r := ask(t, "udp", srv.Addr(), "example.test.", dns.TypeNS)
	checkRRs(t, "answer", r.Answer, []string{"example.test. 3600 IN NS ns1.example.test."})
	checkRRs(t, "additional", r.Extra, []string{"ns1.example.test. 3600 IN A 192.0.2.53"})
	r = ask(t, "udp", srv.Addr(), "ns1.example.test.", dns.TypeA)
	checkRRs(t, "answer", r.Answer, []string{"ns1.example.test. 3600 IN A 192.0.2.53"})
}

func TestSourceChangesAnswer(t *testing.T) {
	src := newMemSource(exampleZone())
	srv := startServer(t, src)

	r := ask(t, "udp", srv.Addr(), "example.test.", dns.TypeA)
	checkRRs(t, "answer", r.Answer, []string{"example.test. 300 IN A 192.0.2.10"})

	// Failover: another shield's IP with the low failover TTL and a new serial.
	z := exampleZone()
	z.IP = netip.MustParseAddr("192.0.2.20")
	z.TTL = 30
	z.Serial = 8
	src.set(z)
	for _, network := range []string{"udp", "tcp"} {
		r = ask(t, network, srv.Addr(), "example.test.", dns.TypeA)
		checkRRs(t, "answer", r.Answer, []string{"example.test. 30 IN A 192.0.2.20"})
		r = ask(t, network, srv.Addr(), "example.test.", dns.TypeSOA)
		checkRRs(t, "answer", r.Answer, []string{
			"example.test. 3600 IN SOA ns1.example.test. hostmaster.example.test. 8 3600 600 1209600 30",
		})
	}

	// No active shield: the apex keeps its SOA and NS but loses its A record.
	z.IP = netip.Addr{}
	z.Serial = 9
	src.set(z)
	r = ask(t, "udp", srv.Addr(), "example.test.", dns.TypeA)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
		t.Fatalf("no IP: rcode %s with %d answers, want NODATA", dns.RcodeToString[r.Rcode], len(r.Answer))
	}
	checkRRs(t, "authority", r.Ns, []string{
		"example.test. 30 IN SOA ns1.example.test. hostmaster.example.test. 9 3600 600 1209600 30",
	})
	r = ask(t, "udp", srv.Addr(), "example.test.", dns.TypeANY)
	checkRRs(t, "answer", r.Answer, []string{
		"example.test. 3600 IN SOA ns1.example.test. hostmaster.example.test. 9 3600 600 1209600 30",
	})

	// An IPv6 shield answers AAAA (and A becomes NODATA); a mapped IPv4
	// address is an A record.
	z.IP = netip.MustParseAddr("2001:db8::10")
	src.set(z)
	r = ask(t, "udp", srv.Addr(), "example.test.", dns.TypeAAAA)
	checkRRs(t, "answer", r.Answer, []string{"example.test. 30 IN AAAA 2001:db8::10"})
	r = ask(t, "udp", srv.Addr(), "example.test.", dns.TypeA)
	checkRRs(t, "answer", r.Answer, nil)
	z.IP = netip.MustParseAddr("::ffff:192.0.2.30")
	src.set(z)
	r = ask(t, "udp", srv.Addr(), "example.test.", dns.TypeA)
	checkRRs(t, "answer", r.Answer, []string{"example.test. 30 IN A 192.0.2.30"})

	// A domain that stops being managed is refused.
	src.mu.Lock()
	delete(src.zones, "example.test")
	src.mu.Unlock()
	r = ask(t, "udp", srv.Addr(), "example.test.", dns.TypeA)
	if r.Rcode != dns.RcodeRefused {
		t.Fatalf("removed zone: rcode %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
}

// bigZone returns a zone with n in-zone name servers, each with an IPv4
// address: its NS answer is about 35 bytes per server.
func bigZone(name string, n int) Zone {
	z := Zone{Name: name, IP: netip.MustParseAddr("192.0.2.1"), TTL: 60, Serial: 1}
	for i := range n {
		z.NS = append(z.NS, NameServer{
			Name: fmt.Sprintf("ns%02d.%s", i, name),
			IP:   netip.AddrFrom4([4]byte{192, 0, 2, byte(100 + i)}),
		})
	}
	return z
}

func TestTruncation(t *testing.T) {
	src := newMemSource(bigZone("big.test", 20), bigZone("huge.test", 80))
	srv := startServer(t, src)

	query := func(name string, ednsSize uint16) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeNS)
		if ednsSize > 0 {
			m.SetEdns0(ednsSize, false)
		}
		return m
	}
	packedLen := func(m *dns.Msg) int {
		m.Compress = true
		b, err := m.Pack()
		if err != nil {
			t.Fatalf("pack reply: %v", err)
		}
		return len(b)
	}

	// big.test's full answer (~730 bytes) exceeds 512 but fits 1232.
	r := exchange(t, "udp", srv.Addr(), query("big.test.", 0))
	if !r.Truncated {
		t.Error("UDP without EDNS0: answer over 512 bytes not truncated")
	}
	if n := packedLen(r); n > dns.MinMsgSize {
		t.Errorf("UDP without EDNS0: %d bytes, want at most 512", n)
	}
	if !r.Authoritative || r.Rcode != dns.RcodeSuccess {
		t.Errorf("truncated answer: AA %v rcode %s", r.Authoritative, dns.RcodeToString[r.Rcode])
	}

	r = exchange(t, "udp", srv.Addr(), query("big.test.", 600))
	if !r.Truncated || packedLen(r) > 600 {
		t.Errorf("UDP with EDNS0 600: TC %v, %d bytes", r.Truncated, packedLen(r))
	}

	r = exchange(t, "udp", srv.Addr(), query("big.test.", 4096))
	if r.Truncated || len(r.Answer) != 20 || len(r.Extra) != 21 { // 20 glue + OPT
		t.Errorf("UDP with EDNS0 4096: TC %v, %d answers, %d additional", r.Truncated, len(r.Answer), len(r.Extra))
	}

	r = exchange(t, "tcp", srv.Addr(), query("big.test.", 0))
	if r.Truncated || len(r.Answer) != 20 || len(r.Extra) != 20 {
		t.Errorf("TCP: TC %v, %d answers, %d additional", r.Truncated, len(r.Answer), len(r.Extra))
	}

	// huge.test's answer (~2800 bytes) exceeds what the server ever sends
	// over UDP, whatever the client offers.
	r = exchange(t, "udp", srv.Addr(), query("huge.test.", 65000))
	if !r.Truncated || packedLen(r) > MaxUDPSize {
		t.Errorf("UDP with EDNS0 65000: TC %v, %d bytes, want TC and at most %d", r.Truncated, packedLen(r), MaxUDPSize)
	}
	if r.IsEdns0() == nil {
		t.Error("truncated EDNS0 answer lost its OPT record")
	}
	r = exchange(t, "tcp", srv.Addr(), query("huge.test.", 65000))
	if r.Truncated || len(r.Answer) != 80 || len(r.Extra) != 81 {
		t.Errorf("TCP: TC %v, %d answers, %d additional", r.Truncated, len(r.Answer), len(r.Extra))
	}
}

func TestEDNS0(t *testing.T) {
	src := newMemSource(exampleZone())
	srv := startServer(t, src)

	for _, network := range []string{"udp", "tcp"} {
		// No OPT in the query: none in the reply.
		r := ask(t, network, srv.Addr(), "example.test.", dns.TypeA)
		if r.IsEdns0() != nil {
			t.Errorf("%s: OPT in reply to a query without one", network)
		}

		m := new(dns.Msg)
		m.SetQuestion("example.test.", dns.TypeA)
		m.SetEdns0(4096, true)
		r = exchange(t, network, srv.Addr(), m)
		opt := r.IsEdns0()
		if opt == nil {
			t.Fatalf("%s: no OPT in reply to an EDNS0 query", network)
		}
		if opt.Version() != 0 || opt.UDPSize() != MaxUDPSize || !opt.Do() {
			t.Errorf("%s: OPT version %d size %d DO %v, want 0, %d, true", network, opt.Version(), opt.UDPSize(), opt.Do(), MaxUDPSize)
		}
		checkRRs(t, "answer", r.Answer, []string{"example.test. 300 IN A 192.0.2.10"})

		m = new(dns.Msg)
		m.SetQuestion("example.test.", dns.TypeA)
		m.SetEdns0(1232, false)
		r = exchange(t, network, srv.Addr(), m)
		if opt := r.IsEdns0(); opt == nil || opt.Do() {
			t.Errorf("%s: DO bit set in reply to a query without it", network)
		}

		// An unknown EDNS version gets BADVERS with a version 0 OPT.
		m = new(dns.Msg)
		m.SetQuestion("example.test.", dns.TypeA)
		m.SetEdns0(1232, false)
		m.IsEdns0().SetVersion(1)
		r = exchange(t, network, srv.Addr(), m)
		if r.Rcode != dns.RcodeBadVers {
			t.Errorf("%s: EDNS version 1: rcode %d, want BADVERS", network, r.Rcode)
		}
		if opt := r.IsEdns0(); opt == nil || opt.Version() != 0 {
			t.Errorf("%s: BADVERS reply without a version 0 OPT", network)
		}
		if len(r.Answer) != 0 {
			t.Errorf("%s: BADVERS reply with answers", network)
		}
	}
}

// rawUDP sends pkt to addr and returns the first reply.
func rawUDP(t *testing.T, addr string, pkts ...[]byte) *dns.Msg {
	t.Helper()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, pkt := range pkts {
		if _, err := conn.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.SetReadDeadline(time.Now().Add(3 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("read reply: %v", err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(buf[:n]); err != nil {
		t.Fatalf("unpack reply: %v", err)
	}
	return r
}

func pack(t *testing.T, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMalformedQueries(t *testing.T) {
	src := newMemSource(exampleZone())
	srv := startServer(t, src)

	query := func(id uint16) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion("example.test.", dns.TypeA)
		m.Id = id
		return m
	}

	t.Run("no question", func(t *testing.T) {
		m := query(1)
		m.Question = nil
		if r := rawUDP(t, srv.Addr(), pack(t, m)); r.Rcode != dns.RcodeFormatError || r.Id != 1 {
			t.Errorf("rcode %s id %d, want FORMERR for id 1", dns.RcodeToString[r.Rcode], r.Id)
		}
	})
	t.Run("two questions", func(t *testing.T) {
		m := query(2)
		m.Question = append(m.Question, dns.Question{Name: "www.example.test.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
		if r := rawUDP(t, srv.Addr(), pack(t, m)); r.Rcode != dns.RcodeFormatError || r.Id != 2 {
			t.Errorf("rcode %s id %d, want FORMERR for id 2", dns.RcodeToString[r.Rcode], r.Id)
		}
	})
	t.Run("header promises a question it lacks", func(t *testing.T) {
		b := pack(t, query(3))[:12]
		if r := rawUDP(t, srv.Addr(), b); r.Rcode != dns.RcodeFormatError || r.Id != 3 {
			t.Errorf("rcode %s id %d, want FORMERR for id 3", dns.RcodeToString[r.Rcode], r.Id)
		}
	})
	t.Run("label longer than the message", func(t *testing.T) {
		b := append(pack(t, query(4))[:12], 0x3f, 'a', 'b')
		if r := rawUDP(t, srv.Addr(), b); r.Rcode != dns.RcodeFormatError || r.Id != 4 {
			t.Errorf("rcode %s id %d, want FORMERR for id 4", dns.RcodeToString[r.Rcode], r.Id)
		}
	})
	t.Run("question cut before its type", func(t *testing.T) {
		b := pack(t, query(5))
		b = b[:len(b)-4]
		if r := rawUDP(t, srv.Addr(), b); r.Rcode != dns.RcodeFormatError || r.Id != 5 {
			t.Errorf("rcode %s id %d, want FORMERR for id 5", dns.RcodeToString[r.Rcode], r.Id)
		}
	})
	t.Run("record in the answer section", func(t *testing.T) {
		m := query(6)
		rr, _ := dns.NewRR("example.test. 60 IN A 192.0.2.99")
		m.Answer = []dns.RR{rr}
		if r := rawUDP(t, srv.Addr(), pack(t, m)); r.Rcode != dns.RcodeFormatError || r.Id != 6 {
			t.Errorf("rcode %s id %d, want FORMERR for id 6", dns.RcodeToString[r.Rcode], r.Id)
		}
	})
	t.Run("two OPT records", func(t *testing.T) {
		m := query(7)
		m.SetEdns0(1232, false)
		m.Extra = append(m.Extra, &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT, Class: 1232}})
		if r := rawUDP(t, srv.Addr(), pack(t, m)); r.Rcode != dns.RcodeFormatError || r.Id != 7 {
			t.Errorf("rcode %s id %d, want FORMERR for id 7", dns.RcodeToString[r.Rcode], r.Id)
		}
	})
	t.Run("meta type in the question", func(t *testing.T) {
		m := query(8)
		m.Question[0].Qtype = dns.TypeOPT
		if r := rawUDP(t, srv.Addr(), pack(t, m)); r.Rcode != dns.RcodeFormatError || r.Id != 8 {
			t.Errorf("rcode %s id %d, want FORMERR for id 8", dns.RcodeToString[r.Rcode], r.Id)
		}
	})
	t.Run("responses are dropped", func(t *testing.T) {
		resp := query(9)
		resp.Response = true
		// The response gets no reply: the first reply read is the query's.
		r := rawUDP(t, srv.Addr(), pack(t, resp), pack(t, query(10)))
		if r.Id != 10 || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
			t.Errorf("id %d rcode %s, want the answer to query 10", r.Id, dns.RcodeToString[r.Rcode])
		}
	})
	t.Run("server keeps answering", func(t *testing.T) {
		r := ask(t, "udp", srv.Addr(), "example.test.", dns.TypeA)
		checkRRs(t, "answer", r.Answer, []string{"example.test. 300 IN A 192.0.2.10"})
	})
}

func TestUnsupportedOpcodesAndClasses(t *testing.T) {
	src := newMemSource(exampleZone())
	srv := startServer(t, src)

	for _, opcode := range []int{dns.OpcodeIQuery, dns.OpcodeStatus, dns.OpcodeNotify, dns.OpcodeUpdate} {
		for _, network := range []string{"udp", "tcp"} {
			m := new(dns.Msg)
			m.SetQuestion("example.test.", dns.TypeSOA)
			m.Opcode = opcode
			r := exchange(t, network, srv.Addr(), m)
			if r.Rcode != dns.RcodeNotImplemented || r.Opcode != opcode {
				t.Errorf("%s opcode %s: rcode %s opcode %s, want NOTIMP", network, dns.OpcodeToString[opcode],
					dns.RcodeToString[r.Rcode], dns.OpcodeToString[r.Opcode])
			}
			if len(r.Answer) != 0 {
				t.Errorf("%s opcode %s: answers in a NOTIMP reply", network, dns.OpcodeToString[opcode])
			}
		}
	}

	// CHAOS class (version.bind and friends) is refused.
	m := new(dns.Msg)
	m.SetQuestion("version.bind.", dns.TypeTXT)
	m.Question[0].Qclass = dns.ClassCHAOS
	if r := exchange(t, "udp", srv.Addr(), m); r.Rcode != dns.RcodeRefused {
		t.Errorf("CHAOS: rcode %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
	m = new(dns.Msg)
	m.SetQuestion("example.test.", dns.TypeSOA)
	m.Question[0].Qclass = dns.ClassCHAOS
	if r := exchange(t, "udp", srv.Addr(), m); r.Rcode != dns.RcodeRefused {
		t.Errorf("CHAOS for a managed name: rcode %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}

	// Class ANY is answered like IN.
	m = new(dns.Msg)
	m.SetQuestion("example.test.", dns.TypeA)
	m.Question[0].Qclass = dns.ClassANY
	r := exchange(t, "udp", srv.Addr(), m)
	checkRRs(t, "answer", r.Answer, []string{"example.test. 300 IN A 192.0.2.10"})

	// No zone transfers.
	for _, qtype := range []uint16{dns.TypeAXFR, dns.TypeIXFR} {
		r := ask(t, "tcp", srv.Addr(), "example.test.", qtype)
		if r.Rcode != dns.RcodeRefused || len(r.Answer) != 0 {
			t.Errorf("%s: rcode %s with %d answers, want REFUSED", dns.TypeToString[qtype], dns.RcodeToString[r.Rcode], len(r.Answer))
		}
	}
}

func TestTCPConnectionReuse(t *testing.T) {
	src := newMemSource(exampleZone())
	srv := startServer(t, src)

	conn, err := dns.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	names := []struct {
		name  string
		rcode int
	}{
		{"example.test.", dns.RcodeSuccess},
		{"www.example.test.", dns.RcodeNameError},
		{"foreign.test.", dns.RcodeRefused},
		{"ns1.example.test.", dns.RcodeSuccess},
	}
	for i, n := range names {
		m := new(dns.Msg)
		m.SetQuestion(n.name, dns.TypeA)
		m.Id = uint16(100 + i)
		if err := conn.WriteMsg(m); err != nil {
			t.Fatalf("write %s: %v", n.name, err)
		}
		r, err := conn.ReadMsg()
		if err != nil {
			t.Fatalf("read %s: %v", n.name, err)
		}
		if r.Id != m.Id || r.Rcode != n.rcode {
			t.Errorf("%s: id %d rcode %s, want id %d rcode %s", n.name, r.Id, dns.RcodeToString[r.Rcode], m.Id, dns.RcodeToString[n.rcode])
		}
	}
}

// panicSource panics for one name.
type panicSource struct{ Source }

func (p panicSource) Zone(name string) (Zone, bool) {
	if name == "boom.test" {
		panic("source failure")
	}
	return p.Source.Zone(name)
}

func TestSourcePanicIsServfail(t *testing.T) {
	srv := startServer(t, panicSource{newMemSource(exampleZone())})
	r := ask(t, "udp", srv.Addr(), "boom.test.", dns.TypeA)
	if r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("rcode %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
	r = ask(t, "udp", srv.Addr(), "example.test.", dns.TypeA)
	checkRRs(t, "answer", r.Answer, []string{"example.test. 300 IN A 192.0.2.10"})
}

func TestConcurrentQueries(t *testing.T) {
	src := newMemSource(exampleZone())
	srv := startServer(t, src)

	// The source flips between two consistent answers while clients query.
	before := exampleZone()
	after := exampleZone()
	after.IP = netip.MustParseAddr("192.0.2.20")
	after.TTL = 30
	after.Serial = 8
	valid := map[string]bool{
		"example.test. 300 IN A 192.0.2.10": true,
		"example.test. 30 IN A 192.0.2.20":  true,
	}

	stop := make(chan struct{})
	var flips atomic.Int64
	var flipper sync.WaitGroup
	flipper.Go(func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if i%2 == 0 {
				src.set(after)
			} else {
				src.set(before)
			}
			flips.Add(1)
		}
	})

	const clients, perClient = 32, 40
	var wg sync.WaitGroup
	errs := make(chan error, clients*perClient)
	for c := range clients {
		network := "udp"
		if c%4 == 0 {
			network = "tcp"
		}
		wg.Go(func() {
			cl := &dns.Client{Net: network, Timeout: 5 * time.Second}
			for i := range perClient {
				m := new(dns.Msg)
				switch i % 3 {
				case 0:
					m.SetQuestion("example.test.", dns.TypeA)
				case 1:
					m.SetQuestion("www.example.test.", dns.TypeA)
				default:
					m.SetQuestion("foreign.test.", dns.TypeA)
				}
				r, _, err := cl.Exchange(m, srv.Addr())
				if err != nil {
					errs <- fmt.Errorf("%s %s: %w", network, m.Question[0].Name, err)
					continue
				}
				switch i % 3 {
				case 0:
					if got := rrStrings(r.Answer); len(got) != 1 || !valid[got[0]] {
						errs <- fmt.Errorf("%s: inconsistent answer %q", network, got)
					}
				case 1:
					if r.Rcode != dns.RcodeNameError || len(r.Ns) != 1 {
						errs <- fmt.Errorf("%s: www rcode %s", network, dns.RcodeToString[r.Rcode])
					}
				default:
					if r.Rcode != dns.RcodeRefused {
						errs <- fmt.Errorf("%s: foreign rcode %s", network, dns.RcodeToString[r.Rcode])
					}
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	flipper.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if flips.Load() < 2 {
		t.Errorf("source changed %d times during the test, want several", flips.Load())
	}
}

func TestDig(t *testing.T) {
	dig, err := exec.LookPath("dig")
	if err != nil {
		t.Skip("dig is not installed; the miekg/dns client tests cover the same answers")
	}
	src := newMemSource(exampleZone())
	srv := startServer(t, src)
	host, port, _ := net.SplitHostPort(srv.Addr())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, args := range [][]string{{"+short"}, {"+short", "+tcp"}} {
		cmdArgs := append([]string{"@" + host, "-p", port, "example.test", "A", "+tries=1", "+time=2"}, args...)
		out, err := exec.CommandContext(ctx, dig, cmdArgs...).CombinedOutput()
		if err != nil {
			t.Fatalf("dig %v: %v\n%s", cmdArgs, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != "192.0.2.10" {
			t.Errorf("dig %v = %q, want 192.0.2.10", args, got)
		}
	}
	out, err := exec.CommandContext(ctx, dig, "@"+host, "-p", port, "www.example.test", "A", "+tries=1", "+time=2").CombinedOutput()
	if err != nil {
		t.Fatalf("dig: %v\n%s", err, out)
	}
	if s := string(out); !strings.Contains(s, "status: NXDOMAIN") || !strings.Contains(s, " aa") {
		t.Errorf("dig www.example.test: want an authoritative NXDOMAIN, got\n%s", s)
	}
}

// staticSource is a Source over a fixed map that records nothing.
func newStaticSource(zones ...Zone) Source {
	m := make(map[string]Zone, len(zones))
	for _, z := range zones {
		m[z.Name] = z
	}
	return SourceFunc(func(name string) (Zone, bool) {
		z, ok := m[name]
		return z, ok
	})
}

func BenchmarkReply(b *testing.B) {
	h := &handler{src: newStaticSource(exampleZone()), log: slog.New(slog.DiscardHandler)}
	for _, tc := range []struct {
		name  string
		qname string
		qtype uint16
	}{
		{"apex A", "example.test.", dns.TypeA},
		{"nxdomain", "www.example.test.", dns.TypeA},
		{"NS with glue", "example.test.", dns.TypeNS},
		{"refused", "a.b.c.foreign.test.", dns.TypeA},
	} {
		b.Run(tc.name, func(b *testing.B) {
			req := new(dns.Msg)
			req.SetQuestion(tc.qname, tc.qtype)
			b.ReportAllocs()
			for b.Loop() {
				if m := h.reply(req, true); m.Rcode == dns.RcodeServerFailure {
					b.Fatal("SERVFAIL")
				}
			}
		})
	}
}
