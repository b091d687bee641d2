package state

import (
	"errors"
	"fmt"
)

// Error codes are stable: they cross the HTTP API and scripts may match them.
const (
	CodeInvalid        = "invalid_argument"
	CodeNotFound       = "not_found"
	CodeConflict       = "conflict"
	CodePlanLimit      = "plan_limit"
	CodeDecommissioned = "decommissioned"
	CodeUnauthorized   = "unauthorized"
	CodeForbidden      = "forbidden"
	CodeNotLeader      = "not_leader"
	CodeUnavailable    = "unavailable"
	CodeInternal       = "internal"
)

// Error is a validation or precondition failure. Field names the input that
// is wrong (for example "origin" or "name"), when there is one.
type Error struct {
	Code    string `json:"code"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// Is lets errors.Is match on the code: errors.Is(err, ErrNotFound).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Code == e.Code
}

// Sentinels for errors.Is; they carry only a code.
var (
	ErrInvalid        = &Error{Code: CodeInvalid}
	ErrNotFound       = &Error{Code: CodeNotFound}
	ErrConflict       = &Error{Code: CodeConflict}
	ErrPlanLimit      = &Error{Code: CodePlanLimit}
	ErrDecommissioned = &Error{Code: CodeDecommissioned}
)

func invalid(field, format string, args ...any) *Error {
	return &Error{Code: CodeInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

func newErr(code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the stable code of err, or CodeInternal.
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}
