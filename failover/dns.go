package failover

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/lumos-mesh/lumos/state"
)

// reconciler makes external providers' records match the replicated desired
// record. It writes only where the replicated sync record differs from the
// desired one (never polling a provider), one call at a time per leader,
// with a per-domain backoff after a failure. A new leader starts from the
// replicated sync records, so it finishes a switch the old leader began
// without writing twice what was confirmed.
type reconciler struct {
	ctl     *Controller
	backoff map[string]retry // domain → when it may be tried again
	warned  map[string]bool  // providers reported missing
}

type retry struct {
	at    time.Time
	delay time.Duration
}

type dnsWork struct {
	domain string
	rec    state.DNSRecord
}

func newReconciler(ctl *Controller) *reconciler {
	return &reconciler{ctl: ctl, backoff: map[string]retry{}, warned: map[string]bool{}}
}

func (r *reconciler) run(ctx context.Context) {
	watch, cancel := r.ctl.c.Watch()
	defer cancel()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := r.pass(ctx)
		if ctx.Err() != nil {
			return
		}
		if !next.IsZero() {
			timer.Reset(max(time.Until(next), time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return
		case <-watch:
		case <-timer.C:
		}
	}
}

// pass writes every record that is out of sync and not backing off, and
// returns the earliest retry time (zero if none).
func (r *reconciler) pass(ctx context.Context) time.Time {
	var work []dnsWork
	r.ctl.c.View(func(st *state.State) {
		for _, d := range st.SortedDomains() {
			if d.DNS.Provider == state.DNSBuiltin || d.DNS.Provider == state.DNSNone {
				continue // the built-in server answers from the state itself
			}
			rec, ok := st.DesiredRecord(d)
			if !ok || rec.Same(d.DNSSynced) {
				continue
			}
			work = append(work, dnsWork{domain: d.Name, rec: rec})
		}
	})
	now := time.Now()
	var next time.Time
	later := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	live := map[string]bool{}
	for _, w := range work {
		live[w.domain] = true
		if b, ok := r.backoff[w.domain]; ok && now.Before(b.at) {
			later(b.at)
			continue
		}
		if ctx.Err() != nil {
			return next
		}
		if err := r.write(ctx, w); err != nil {
			if ctx.Err() != nil {
				return next
			}
			b := r.backoff[w.domain]
			b.delay = min(max(2*b.delay, r.ctl.cfg.RetryMin), r.ctl.cfg.RetryMax)
			b.at = time.Now().Add(b.delay/2 + rand.N(b.delay/2+1))
			r.backoff[w.domain] = b
			later(b.at)
			continue
		}
		delete(r.backoff, w.domain)
	}
	for d := range r.backoff {
		if !live[d] {
			delete(r.backoff, d)
		}
	}
	return next
}

// write sets one record at its provider and records it as synced.
func (r *reconciler) write(ctx context.Context, w dnsWork) error {
	p, ok := r.ctl.cfg.Providers[w.rec.Provider]
	if !ok {
		if !r.warned[w.rec.Provider] {
			r.warned[w.rec.Provider] = true
			r.ctl.log.Warn("DNS provider not configured on this control node: records stay as they are until a leader with it configured takes over",
				"provider", w.rec.Provider, "domain", w.domain)
		}
		r.ctl.m.DNSUpdates.WithLabelValues(w.rec.Provider, "unconfigured").Inc()
		return errUnconfigured
	}
	cctx, cancel := context.WithTimeout(ctx, r.ctl.cfg.DNSTimeout)
	changed, err := p.Set(cctx, w.domain, w.rec.IP, w.rec.TTL)
	cancel()
	if err != nil {
		r.ctl.m.DNSUpdates.WithLabelValues(w.rec.Provider, "error").Inc()
		if ctx.Err() == nil {
			r.ctl.log.Warn("DNS update failed", "provider", w.rec.Provider, "domain", w.domain, "ip", w.rec.IP, "err", err)
		}
		return err
	}
	result := "unchanged"
	if changed {
		result = "updated"
	}
	r.ctl.m.DNSUpdates.WithLabelValues(w.rec.Provider, result).Inc()
	r.ctl.switched(w.domain)
	r.ctl.log.Info("DNS record in sync", "provider", w.rec.Provider, "domain", w.domain, "ip", w.rec.IP, "ttl", w.rec.TTL, "written", changed)
	rec := w.rec
	rec.At = time.Now().UTC()
	if _, err := r.ctl.c.Apply(ctx, state.MustCommand(time.Now(), &state.DomainDNSSynced{Name: w.domain, Record: rec})); err != nil && !errors.Is(err, state.ErrNotFound) {
		r.ctl.log.Warn("record DNS sync", "domain", w.domain, "err", err)
		return err
	}
	return nil
}

var errUnconfigured = errors.New("dns provider not configured")
