package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/lumos-mesh/lumos/state"
)

// newForwardTransport returns the transport used to forward writes to the
// leader.
func newForwardTransport() *http.Transport {
	return &http.Transport{
		Proxy: nil, // control nodes talk to each other directly
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     false,
		MaxIdleConns:          16,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       60 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// forward sends a write unchanged (method, path, query, body,
// Authorization) to the leader and relays its answer. A request that was
// already forwarded once is refused, so requests never loop between nodes
// that disagree about the leader.
// leaderWait bounds how long a follower waits for a leader to be known
// before it answers that none is: an election on a LAN takes about a
// second, and a client is better served by a short wait than by an error.
const leaderWait = 3 * time.Second

// waitLeader returns the leader's API address, waiting up to leaderWait
// while no leader is known.
func (s *server) waitLeader(ctx context.Context) (string, error) {
	deadline := time.Now().Add(leaderWait)
	for {
		leader, err := s.b.LeaderAPI()
		if (err == nil && leader != "") || time.Now().After(deadline) {
			return leader, err
		}
		select {
		case <-ctx.Done():
			return leader, err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *server) forward(w http.ResponseWriter, r *http.Request) {
	node := s.b.NodeName()
	if by := r.Header.Get(HeaderForwarded); by != "" {
		writeError(w, &state.Error{Code: state.CodeNotLeader, Message: fmt.Sprintf("node %s got a request forwarded by %s but is not the leader: leadership is changing, retry", node, by)})
		return
	}
	leader, err := s.waitLeader(r.Context())
	if err != nil || leader == "" {
		reason := "no leader is known: an election may be in progress, or a majority of control nodes is down"
		if err != nil && !errors.Is(err, ErrNoLeader) {
			reason = oneLine(err.Error())
		}
		writeError(w, &state.Error{Code: state.CodeUnavailable, Message: fmt.Sprintf("node %s cannot forward the change to the leader: %s; retry shortly", node, reason)})
		return
	}
	target, err := url.Parse(leader)
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		s.log.Error("bad leader API address", "leader_api", leader, "err", err)
		writeError(w, &state.Error{Code: state.CodeUnavailable, Message: fmt.Sprintf("node %s knows no usable API address for the leader: retry shortly", node)})
		return
	}

	// Read the body here so an oversize one is refused before anything is
	// sent, and so the leader sees a plain Content-Length body.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			writeError(w, decodeError(err, s.cfg.MaxBodyBytes))
			return
		}
		writeError(w, &state.Error{Code: state.CodeInvalid, Field: "body", Message: "cannot read the request body: " + err.Error()})
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ForwardTimeout)
	defer cancel()
	out := r.Clone(ctx)
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	out.Header.Del("Content-Length")
	out.Header.Del("Transfer-Encoding")
	out.TransferEncoding = nil
	if len(body) == 0 {
		out.Body = http.NoBody
	}

	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = target.Host
			pr.SetXForwarded()
			pr.Out.Header.Set(HeaderForwarded, node)
		},
		Transport: s.transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			msg := fmt.Sprintf("node %s could not reach the leader at %s: %s", node, leader, oneLine(err.Error()))
			if errors.Is(err, context.DeadlineExceeded) {
				msg = fmt.Sprintf("the leader at %s did not answer within %s", leader, s.cfg.ForwardTimeout)
			}
			s.log.Warn("forward to leader failed", "leader_api", leader, "method", r.Method, "path", r.URL.Path, "err", err)
			writeError(w, &state.Error{Code: state.CodeUnavailable, Message: msg + ": retry shortly"})
		},
	}
	s.log.Debug("forwarding to leader", "leader_api", leader, "method", r.Method, "path", r.URL.Path)
	proxy.ServeHTTP(w, out)
}
