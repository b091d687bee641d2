package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/lumos-mesh/lumos/state"
)

// decodeBody reads one JSON object from the request body into v. The body is
// limited to max bytes; unknown fields, trailing data, an empty body and
// values of the wrong type are refused with an error naming the field.
func decodeBody(w http.ResponseWriter, r *http.Request, max int64, v any) *state.Error {
	body := http.MaxBytesReader(w, r.Body, max)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err, max)
	}
	// Exactly one value: anything but white space after it is an error.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return decodeError(err, max)
		}
		return &state.Error{Code: state.CodeInvalid, Field: "body", Message: "request body has data after the JSON object"}
	}
	return nil
}

func decodeError(err error, max int64) *state.Error {
	var (
		maxErr    *http.MaxBytesError
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &maxErr):
		return &state.Error{Code: CodeTooLarge, Field: "body", Message: fmt.Sprintf("request body is larger than %d bytes", max)}
	case errors.Is(err, io.EOF):
		return &state.Error{Code: state.CodeInvalid, Field: "body", Message: "request body is empty: want a JSON object"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &state.Error{Code: state.CodeInvalid, Field: "body", Message: "request body is truncated JSON"}
	case errors.As(err, &syntaxErr):
		return &state.Error{Code: state.CodeInvalid, Field: "body", Message: fmt.Sprintf("request body is not valid JSON (at byte %d): %s", syntaxErr.Offset, syntaxErr.Error())}
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return &state.Error{Code: state.CodeInvalid, Field: "body", Message: fmt.Sprintf("request body must be a JSON object, not %s", typeErr.Value)}
		}
		return &state.Error{Code: state.CodeInvalid, Field: field, Message: fmt.Sprintf("field %q must be %s, not %s", field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value)}
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		return &state.Error{Code: state.CodeInvalid, Field: name, Message: fmt.Sprintf("unknown field %q in request body", name)}
	}
	return &state.Error{Code: state.CodeInvalid, Field: "body", Message: "request body is not valid JSON: " + err.Error()}
}

// jsonKind names a Go kind as JSON users know it.
func jsonKind(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	case "bool":
		return "true or false"
	}
	if strings.HasPrefix(kind, "int") || strings.HasPrefix(kind, "uint") || strings.HasPrefix(kind, "float") {
		return "a number"
	}
	return kind
}
