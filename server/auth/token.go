package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
)

// TokenPrefix starts every token NewToken makes, so that secret scanners
// and people recognise one in a log or a repository.
const TokenPrefix = "myelin_"

// tokenBytes is the random part of a token: 256 bits, beyond any search
// whatever the hash's speed.
const tokenBytes = 32

// hashScheme prefixes a token's hash in the config file, so that a later
// scheme can be told apart.
const hashScheme = "sha256:"

// NewToken returns a new token: TokenPrefix and 32 bytes from r (nil
// means crypto/rand) in lower-case hex, 71 characters.
func NewToken(r io.Reader) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	b := make([]byte, tokenBytes)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("auth: make a token: %w", err)
	}
	return TokenPrefix + hex.EncodeToString(b), nil
}

// Hash returns the hash of a token as the config file stores it:
// "sha256:" and the SHA-256 of the token's bytes in lower-case hex.
func Hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hashScheme + hex.EncodeToString(sum[:])
}

// parseHash reads a hash written by Hash.
func parseHash(s string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	rest, ok := strings.CutPrefix(s, hashScheme)
	if !ok {
		return sum, fmt.Errorf("hash %q: want %q and 64 hex digits (myelin token create prints it)", abbrev(s), hashScheme)
	}
	if len(rest) != hex.EncodedLen(sha256.Size) {
		return sum, fmt.Errorf("hash %q: want 64 hex digits after %q, got %d", abbrev(s), hashScheme, len(rest))
	}
	if _, err := hex.Decode(sum[:], []byte(rest)); err != nil {
		return sum, fmt.Errorf("hash %q: %w", abbrev(s), err)
	}
	return sum, nil
}

// abbrev shortens a config value for an error message: a hash is not a
// secret, but a token pasted where its hash belongs is.
func abbrev(s string) string {
	if strings.HasPrefix(s, TokenPrefix) {
		return TokenPrefix + "... (a token, not its hash: never put tokens in the file)"
	}
	if len(s) > 20 {
		return s[:20] + "..."
	}
	return s
}
