package haproxy

import (
	"fmt"
	"testing"
	"time"
)

func TestStats(t *testing.T) {
	dir := mgrDir(t)
	listen := freeAddr(t)
	okOrigin := mgrOrigin(t, "fine", 200)
	errOrigin := mgrOrigin(t, "broken", 500)
	m, _ := newTestManager(t, dir, nil)
	ctx := mgrCtx(t)
	if err := m.Start(ctx, mgrRender(t, dir, listen, map[string]string{"ok.example": okOrigin, "err.example": errOrigin})); err != nil {
		t.Fatal(err)
	}
	first, err := m.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 2 || first[0].Backend != BackendName("err.example") || first[1].Backend != BackendName("ok.example") {
		t.Fatalf("stats cover %+v, want the two site backends", first)
	}

	const nOK, nErr = 25, 7
	c := mgrClient(t, true)
	for i := 0; i < nOK; i++ {
		if st, _, err := mgrGet(c, listen, "ok.example"); err != nil || st != 200 {
			t.Fatalf("request %d: %d %v", i, st, err)
		}
	}
	for i := 0; i < nErr; i++ {
		if st, _, err := mgrGet(c, listen, "err.example"); err != nil || st != 500 {
			t.Fatalf("request %d: %d %v", i, st, err)
		}
	}
	var ok, bad SiteStats
	eventually(t, 5*time.Second, func() error {
		stats, err := m.Stats(ctx)
		if err != nil {
			return err
		}
		for _, s := range stats {
			switch s.Backend {
			case BackendName("ok.example"):
				ok = s
			case BackendName("err.example"):
				bad = s
			}
		}
		if ok.Requests < nOK || bad.Requests < nErr || bad.Responses5xx < nErr {
			return fmt.Errorf("stats: ok %+v, err %+v", ok, bad)
		}
		return nil
	})
	t.Logf("ok: %+v", ok)
	t.Logf("err: %+v", bad)
	if ok.BytesIn == 0 || ok.BytesOut == 0 || ok.Responses5xx != 0 || ok.ServersUp != 1 || ok.ServersTotal != 1 {
		t.Errorf("ok backend: %+v", ok)
	}
	if bad.BytesIn == 0 || bad.BytesOut == 0 || bad.ServersTotal != 1 {
		t.Errorf("err backend: %+v", bad)
	}

	// The rate is computed between two calls: the call that sees new
	// requests has a positive one.
	for i := 0; i < 5; i++ {
		if st, _, err := mgrGet(c, listen, "ok.example"); err != nil || st != 200 {
			t.Fatalf("request: %d %v", st, err)
		}
	}
	eventually(t, 5*time.Second, func() error {
		stats, err := m.Stats(ctx)
		if err != nil {
			return err
		}
		for _, s := range stats {
			if s.Backend != BackendName("ok.example") {
				continue
			}
			if s.Requests < ok.Requests+5 {
				return fmt.Errorf("ok backend: %d requests, want %d", s.Requests, ok.Requests+5)
			}
			if s.RequestsPerSec <= 0 {
				t.Errorf("ok backend: no request rate: %+v", s)
			}
			return nil
		}
		return fmt.Errorf("no ok backend in %+v", stats)
	})
}

func TestStatsParseShowStat(t *testing.T) {
	out := `# pxname,svname,qcur,scur,stot,bin,bout,status,type,rate,hrsp_5xx,req_tot,
site_a,o1,0,1,10,100,200,UP,2,0,1,,
site_a,o2,0,0,5,50,60,DOWN,2,0,0,,
site_a,BACKEND,0,1,15,150,260,UP,1,3,1,15,
site_t,o1,0,0,4,10,20,no check,2,0,,,
site_t,BACKEND,0,2,4,10,20,UP,1,1,,,
`
	got, err := parseShowStat(out)
	if err != nil {
		t.Fatal(err)
	}
	a, tcp := got["site_a"].stats, got["site_t"].stats
	if a.Requests != 15 || a.BytesIn != 150 || a.BytesOut != 260 || a.CurrentConns != 1 || a.Responses5xx != 1 || a.ServersUp != 1 || a.ServersTotal != 2 || got["site_a"].rate != 3 {
		t.Errorf("site_a: %+v", a)
	}
	if tcp.Requests != 4 || tcp.CurrentConns != 2 || tcp.ServersUp != 1 || tcp.ServersTotal != 1 {
		t.Errorf("site_t: %+v", tcp)
	}
	if _, err := parseShowStat("Unknown command"); err == nil {
		t.Error("no error for garbage")
	}
}
