package gitsource

import (
	"encoding/base64"
	"errors"
	"regexp"
	"strings"
)

// redacted replaces every secret Redact removes.
const redacted = "***"

var (
	// scheme://userinfo@ — the whole userinfo goes, since some servers take
	// a token as the user name (https://TOKEN@host/...). Up to the last @
	// before the path: a password may hold an unescaped @, and a URL that
	// does not parse (https://user:secret@[::1) is matched all the same.
	urlUserinfo = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.-]*://)([^/?#\s"'<>]+)@`)
	// ?token=..., &access_token=..., password=... in URLs and messages.
	secretParam = regexp.MustCompile(`(?i)\b((?:access_|private_|auth_)?token|password|passwd|secret|sig)=([^&\s"'<>]+)`)
	// Authorization headers quoted back by servers or proxies, in any
	// scheme (Basic, Bearer, token, Digest, none): as a header line
	// ("Authorization: Basic …", to the end of the line) or quoted, as in
	// JSON ("Authorization":["Basic …"], to the closing quote). The scheme
	// word is kept.
	authHeader = regexp.MustCompile(`(?i)\b((?:proxy-)?authorization[ \t]*[:=][ \t]*(?:[a-z][a-z0-9._-]*[ \t]+)?)([^\s][^\r\n]*)`)
	authQuoted = regexp.MustCompile(`(?i)\b((?:proxy-)?authorization["'][ \t]*[:=][ \t]*\[?[ \t]*["'][ \t]*(?:[a-z][a-z0-9._-]*[ \t]+)?)([^"'\r\n]+)`)
	// Well-known token formats: GitHub, GitLab.
	knownToken = regexp.MustCompile(`\b(gh[opsu]_[A-Za-z0-9]{20,}|ghr_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_-]{20,})\b`)
)

// Redact removes credentials from s: the userinfo of URLs
// (https://user:pass@host → https://***@host), token and password query
// parameters, Authorization header values and well-known access-token
// formats. SSH user names without a password (ssh://git@host) are kept.
func Redact(s string) string {
	s = urlUserinfo.ReplaceAllStringFunc(s, func(m string) string {
		sub := urlUserinfo.FindStringSubmatch(m)
		scheme, userinfo := sub[1], sub[2]
		if strings.HasPrefix(strings.ToLower(scheme), "ssh") && !strings.Contains(userinfo, ":") {
			return m
		}
		return scheme + redacted + "@"
	})
	s = secretParam.ReplaceAllString(s, "${1}="+redacted)
	s = authQuoted.ReplaceAllString(s, "${1}"+redacted)
	s = authHeader.ReplaceAllString(s, "${1}"+redacted)
	return knownToken.ReplaceAllString(s, redacted)
}

// redactor also removes secrets a Remote knows literally: the password in its
// URL and the passwords and tokens it read from files.
type redactor struct {
	secrets []string
}

func (r *redactor) add(secret string) {
	secret = strings.TrimSpace(secret)
	if secret == "" {
		return
	}
	for _, s := range r.secrets {
		if s == secret {
			return
		}
	}
	r.secrets = append(r.secrets, secret)
}

// addBasic records a password and the Basic credentials go-git sends for
// it (base64 of user:password), which a server may echo back.
func (r *redactor) addBasic(user, password string) {
	if password == "" {
		return
	}
	r.add(password)
	r.add(base64.StdEncoding.EncodeToString([]byte(user + ":" + password)))
}

func (r *redactor) redact(s string) string {
	for _, secret := range r.secrets {
		s = strings.ReplaceAll(s, secret, redacted)
	}
	return Redact(s)
}

// redactedError carries a foreign error (from go-git, net/http, os...) with
// its message redacted. It deliberately has no Unwrap: walking the chain
// with errors.Unwrap never reaches a message with a secret in it, while
// errors.Is and errors.As still see the original cause (context.Canceled,
// fs.ErrNotExist, ...).
type redactedError struct {
	msg   string
	cause error
}

func (e *redactedError) Error() string        { return e.msg }
func (e *redactedError) Is(target error) bool { return errors.Is(e.cause, target) }
func (e *redactedError) As(target any) bool   { return errors.As(e.cause, target) }

// foreign wraps an error from outside this package so that its message is
// redacted; nil stays nil.
func (r *redactor) foreign(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(*redactedError); ok {
		return err
	}
	return &redactedError{msg: r.redact(err.Error()), cause: err}
}
