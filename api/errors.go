package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/hashicorp/raft"

	"github.com/lumos-mesh/lumos/state"
)

// Errors of the api package.
var (
	// ErrNotLeader may be returned (or wrapped) by Backend.Apply and
	// Backend.Join when the node is not, or stopped being, the leader. The
	// raft errors ErrNotLeader, ErrLeadershipLost and
	// ErrLeadershipTransferInProgress are recognised as well.
	ErrNotLeader = errors.New("api: not the leader")
	// ErrNoLeader may be returned by Backend.LeaderAPI when no leader is
	// known.
	ErrNoLeader = errors.New("api: no leader known")
	// ErrConfig is wrapped by NewHandler for a bad ServerConfig.
	ErrConfig = errors.New("api: bad server config")
	// ErrBadAddr is wrapped by NewClient for a bad base URL.
	ErrBadAddr = errors.New("api: bad address")
)

// statusOf maps a stable error code to an HTTP status.
func statusOf(code string) int {
	switch code {
	case state.CodeInvalid:
		return http.StatusBadRequest
	case state.CodeUnauthorized:
		return http.StatusUnauthorized
	case state.CodeForbidden:
		return http.StatusForbidden
	case state.CodeNotFound:
		return http.StatusNotFound
	case state.CodeConflict, state.CodePlanLimit, state.CodeDecommissioned:
		return http.StatusConflict
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeMethod:
		return http.StatusMethodNotAllowed
	case CodeRateLimited:
		return http.StatusTooManyRequests
	case state.CodeNotLeader, state.CodeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// codeOfStatus guesses a code for an error response that carries none (for
// example from a proxy in front of the API).
func codeOfStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return state.CodeInvalid
	case http.StatusUnauthorized:
		return state.CodeUnauthorized
	case http.StatusForbidden:
		return state.CodeForbidden
	case http.StatusNotFound:
		return state.CodeNotFound
	case http.StatusMethodNotAllowed:
		return CodeMethod
	case http.StatusConflict:
		return state.CodeConflict
	case http.StatusRequestEntityTooLarge:
		return CodeTooLarge
	case http.StatusTooManyRequests:
		return CodeRateLimited
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return state.CodeUnavailable
	}
	return state.CodeInternal
}

// isNotLeader reports whether err means that this node is not (or stopped
// being) the leader.
func isNotLeader(err error) bool {
	return errors.Is(err, ErrNotLeader) ||
		errors.Is(err, raft.ErrNotLeader) ||
		errors.Is(err, raft.ErrLeadershipLost) ||
		errors.Is(err, raft.ErrLeadershipTransferInProgress) ||
		state.CodeOf(err) == state.CodeNotLeader
}

// isUnavailable reports whether err means that the cluster cannot take the
// change now, though it may later.
func isUnavailable(err error) bool {
	return errors.Is(err, raft.ErrRaftShutdown) ||
		errors.Is(err, raft.ErrEnqueueTimeout) ||
		errors.Is(err, raft.ErrAbortedByRestore) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, context.Canceled) ||
		state.CodeOf(err) == state.CodeUnavailable
}

// apiError turns any error into the detail sent to the client. Internal
// errors are logged and answered with a generic message.
func (s *server) apiError(r *http.Request, err error) *state.Error {
	var se *state.Error
	switch {
	case errors.As(err, &se) && se.Code != state.CodeInternal &&
		se.Code != state.CodeNotLeader && se.Code != state.CodeUnavailable:
		return se
	case errors.Is(err, raft.ErrLeadershipLost):
		return &state.Error{Code: state.CodeNotLeader, Message: "leadership changed while the change was being committed: it may or may not have been applied; check and retry"}
	case isNotLeader(err):
		return &state.Error{Code: state.CodeNotLeader, Message: fmt.Sprintf("node %s is no longer the leader: retry", s.b.NodeName())}
	case isUnavailable(err):
		s.log.Warn("request failed: cluster unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		return &state.Error{Code: state.CodeUnavailable, Message: fmt.Sprintf("the cluster could not commit the change (%s): retry shortly", oneLine(err.Error()))}
	}
	s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	return &state.Error{Code: state.CodeInternal, Message: "internal error: see the node's log"}
}

// writeErr answers with the error's code and HTTP status.
func (s *server) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	writeError(w, s.apiError(r, err))
}

func writeError(w http.ResponseWriter, e *state.Error) {
	writeJSON(w, statusOf(e.Code), ErrorBody{Error: ErrorDetail{Code: e.Code, Field: e.Field, Message: oneLine(e.Message)}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // responses are JSON, never HTML: keep <, > and & readable
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":{"code":"internal","message":"internal error: cannot encode the response"}}` + "\n")
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// oneLine collapses whitespace runs and line breaks into single spaces.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// logger returns l or a logger that discards.
func logger(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return slog.New(slog.DiscardHandler)
}
