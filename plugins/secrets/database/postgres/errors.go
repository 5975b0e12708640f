package postgres

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Kind classifies an Error for the caller's status code.
type Kind int

const (
	// KindConnect: the server could not be reached, refused the
	// credentials or went away (including SQLSTATE classes 08, 28, 53, 57).
	KindConnect Kind = iota + 1
	// KindStatement: the server rejected a statement (a bad template, a
	// missing privilege, an object that does not exist).
	KindStatement
	// KindTemplate: a statement template does not lex, or a value cannot be
	// placed in it safely. Nothing was sent to the server.
	KindTemplate
	// KindConfig: the connection configuration is invalid.
	KindConfig
	// KindNotFound: the database user does not exist (renewal).
	KindNotFound
)

// Error is every error this package returns. Its text never contains a
// user name or password: server messages are redacted of the credentials
// involved, and driver errors that could quote a connection string are
// replaced by a fixed text. It keeps no cause, so nothing secret can be
// reached through errors.Unwrap either.
type Error struct {
	Kind Kind
	// SQLState is the server's error code, when the server answered.
	SQLState string
	msg      string
	// retryable: the transaction lost a race and was rolled back.
	retryable bool
}

func (e *Error) Error() string { return e.msg }

// ErrUserNotFound is returned by RenewUser when the user is gone.
var ErrUserNotFound = &Error{Kind: KindNotFound, msg: "the database user does not exist"}

// Is matches errors of the same kind and message (ErrUserNotFound).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Kind == e.Kind && t.msg == e.msg
}

// classify turns a driver error into an Error whose text names what failed
// and drops every secret in secrets.
func classify(err error, what string, secrets ...string) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		kind := KindStatement
		switch {
		case len(pe.Code) < 2:
		case strings.HasPrefix(pe.Code, "08"), strings.HasPrefix(pe.Code, "28"),
			strings.HasPrefix(pe.Code, "53"), strings.HasPrefix(pe.Code, "57"):
			kind = KindConnect
		}
		return &Error{Kind: kind, SQLState: pe.Code,
			msg:       what + ": " + redact(pe.Message, secrets) + " (SQLSTATE " + pe.Code + ")",
			retryable: pe.Code == "40001" || pe.Code == "40P01" || pe.Code == "XX000" && pe.Message == "tuple concurrently updated"}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Kind: KindConnect, msg: what + ": timed out"}
	}
	if errors.Is(err, context.Canceled) {
		return &Error{Kind: KindConnect, msg: what + ": canceled"}
	}
	var pce *pgconn.ParseConfigError
	if errors.As(err, &pce) {
		return &Error{Kind: KindConfig, msg: what + ": connection_url could not be parsed"}
	}
	var ne *net.OpError
	if errors.As(err, &ne) {
		return &Error{Kind: KindConnect, msg: what + ": " + redact(ne.Error(), secrets)}
	}
	// Anything else: the innermost error, which for pgconn is a fixed text
	// ("server refused TLS connection", an x509 failure, ...) rather than a
	// wrapper that quotes the configuration.
	leaf := err
	for {
		next := errors.Unwrap(leaf)
		if next == nil {
			break
		}
		leaf = next
	}
	var ue *url.Error
	if errors.As(leaf, &ue) {
		return &Error{Kind: KindConnect, msg: what + ": connection failed"}
	}
	return &Error{Kind: KindConnect, msg: what + ": " + redact(leaf.Error(), secrets)}
}

// redact replaces each secret, and its quoted and URL-escaped forms, in s.
func redact(s string, secrets []string) string {
	for _, sec := range secrets {
		if len(sec) < 3 { // too short to redact without mangling the message
			continue
		}
		for _, form := range []string{
			sec,
			strings.ReplaceAll(sec, `'`, `''`),
			strings.ReplaceAll(sec, `"`, `""`),
			url.QueryEscape(sec),
			url.PathEscape(sec),
		} {
			s = strings.ReplaceAll(s, form, "<redacted>")
		}
	}
	return s
}
