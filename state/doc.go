// Package state holds lumos's replicated data model — servers, domains,
// events and the plan — and the typed, versioned commands that change it.
//
// State.Apply is deterministic: it reads no clock, no network and no
// randomness. Times and IDs are stamped into a Command by the leader before it
// is committed; the log index is passed in by the caller. Every node that
// applies the same commands in the same order holds byte-for-byte the same
// state, which is what snapshot round trips and the cluster tests check.
//
// The validation functions (ValidateDomainName, ParseOrigin, ...) are used by
// the API before anything is committed and again by Apply, so a bad command
// can never change the state even if it reaches the log.
package state
