package node

import (
	"context"
	"fmt"
	"net/netip"
	"sort"

	"github.com/lumos-mesh/lumos/failover/builtindns"
	"github.com/lumos-mesh/lumos/mesh"
	"github.com/lumos-mesh/lumos/state"
)

// startDNS serves the built-in authoritative DNS on cfg.DNSListen: every
// control node answers for the domains whose provider is builtin, from its
// own replicated copy of the state.
func (n *Node) startDNS() error {
	srv, err := builtindns.New(builtindns.Config{Addr: n.cfg.DNSListen, Source: dnsSource{n}, Logger: n.log.With("subsystem", "dns")})
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("dns listen %s: %w", n.cfg.DNSListen, err)
	}
	n.dns = srv
	n.log.Info("built-in DNS serving", "addr", srv.Addr())
	return nil
}

// DNSAddr is where the built-in DNS server listens ("" when it does not).
func (n *Node) DNSAddr() string {
	if n.dns == nil {
		return ""
	}
	return n.dns.Addr()
}

func (n *Node) closeDNS(ctx context.Context) error {
	if n.dns == nil {
		return nil
	}
	return n.dns.Close(ctx)
}

// dnsSource answers the built-in DNS server's lookups.
type dnsSource struct{ n *Node }

// Zone returns a managed builtin-provider domain: its desired A record
// (the active shield's address, the failover TTL while failed over) and the
// control nodes alive in gossip as its name servers.
func (s dnsSource) Zone(name string) (builtindns.Zone, bool) {
	var z builtindns.Zone
	found := false
	s.n.store.View(func(st *state.State) {
		d, ok := st.Domains[name]
		if !ok || d.DNS.Provider != state.DNSBuiltin {
			return
		}
		found = true
		z.Name = d.Name
		z.Serial = uint32(d.UpdatedAt.Unix())
		if rec, ok := st.DesiredRecord(d); ok {
			if ip, err := netip.ParseAddr(rec.IP); err == nil {
				z.IP, z.TTL = ip, uint32(rec.TTL)
			}
		}
	})
	if !found {
		return z, false
	}
	var controls []mesh.Member
	for _, m := range s.n.mesh.AliveMembers() {
		if m.Meta.Control {
			controls = append(controls, m)
		}
	}
	sort.Slice(controls, func(i, j int) bool { return controls[i].Name < controls[j].Name })
	for i, m := range controls {
		ip := m.Meta.Addr
		if ip == "" {
			ip = m.Addr
		}
		if a, err := netip.ParseAddr(ip); err == nil {
			z.NS = append(z.NS, builtindns.NameServer{Name: fmt.Sprintf("ns%d.%s", i+1, z.Name), IP: a})
		}
	}
	return z, true
}
