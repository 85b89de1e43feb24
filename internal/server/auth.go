package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"strings"

	"google.golang.org/grpc/codes"
)

// access is what a call needs to be allowed.
type access int

const (
	accessPublic      access = iota // health, metrics
	accessClient                    // draws and reads: client_token (or admin_token)
	accessAdmin                     // catalog changes, promotion: admin_token
	accessRead                      // reads: client_token, admin_token or replication.token
	accessReplication               // StreamWAL, GetSnapshot: replication.token or admin_token
)

// authorizer checks bearer tokens. Tokens are compared as SHA-256 digests
// with subtle.ConstantTimeCompare, so neither their content nor their
// length leaks through timing.
type authorizer struct {
	admin, client, repl [32]byte
	hasAdmin            bool
	hasClient           bool
	hasRepl             bool
}

func newAuthorizer(adminToken, clientToken string, replToken ...string) *authorizer {
	a := &authorizer{hasAdmin: adminToken != "", hasClient: clientToken != ""}
	a.admin = sha256.Sum256([]byte(adminToken))
	a.client = sha256.Sum256([]byte(clientToken))
	if len(replToken) > 0 && replToken[0] != "" {
		a.hasRepl = true
		a.repl = sha256.Sum256([]byte(replToken[0]))
	}
	return a
}

// bearer extracts the token from an "Authorization: Bearer <token>" value.
func bearer(header string) string {
	const prefix = "bearer "
	if len(header) > len(prefix) && strings.EqualFold(header[:len(prefix)], prefix) {
		return strings.TrimSpace(header[len(prefix):])
	}
	return ""
}

func (a *authorizer) check(level access, token string) error {
	if level == accessPublic {
		return nil
	}
	sum := sha256.Sum256([]byte(token))
	isAdmin := a.hasAdmin && subtle.ConstantTimeCompare(sum[:], a.admin[:]) == 1
	isRepl := a.hasRepl && subtle.ConstantTimeCompare(sum[:], a.repl[:]) == 1
	switch level {
	case accessReplication:
		switch {
		case a.hasRepl && !isRepl && !isAdmin:
			return errorf(codes.Unauthenticated, ErrUnauthorized, "replication token required: send Authorization: Bearer <replication.token>")
		case !a.hasRepl && a.hasAdmin && !isAdmin:
			return errorf(codes.Unauthenticated, ErrUnauthorized, "admin token required: send Authorization: Bearer <admin_token> (or configure replication.token)")
		}
	case accessRead:
		if a.hasClient && !isAdmin && !isRepl && subtle.ConstantTimeCompare(sum[:], a.client[:]) != 1 {
			return errorf(codes.Unauthenticated, ErrUnauthorized, "client token required: send Authorization: Bearer <client_token>")
		}
	case accessAdmin:
		if a.hasAdmin && !isAdmin {
			return errorf(codes.Unauthenticated, ErrUnauthorized, "admin token required: send Authorization: Bearer <admin_token>")
		}
	case accessClient:
		if a.hasClient && !isAdmin && subtle.ConstantTimeCompare(sum[:], a.client[:]) != 1 {
			return errorf(codes.Unauthenticated, ErrUnauthorized, "client token required: send Authorization: Bearer <client_token>")
		}
	}
	return nil
}
