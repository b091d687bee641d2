package state

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"strings"
)

// TokenPrefixLen is how much of a token is kept to identify it.
const TokenPrefixLen = 12

// NewToken returns a new server connection token ("lmt_" and 52 base32
// characters), its SHA-256 hash and its prefix. Only the hash and prefix may
// be stored.
func NewToken() (token, hash, prefix string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", "", fmt.Errorf("new token: %w", err)
	}
	token = "lmt_" + strings.ToLower(strings.TrimRight(b32.EncodeToString(b), "="))
	return token, HashToken(token), token[:TokenPrefixLen], nil
}

// NewID returns a short random identifier with the given prefix.
func NewID(prefix string) (string, error) {
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("new id: %w", err)
	}
	return prefix + hex.EncodeToString(b), nil
}

// HashToken returns the lower-case hex SHA-256 of a token.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return hex.EncodeToString(sum[:])
}

// HashesEqual compares two hex hashes in constant time.
func HashesEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

var b32 = base32.StdEncoding
