package sinks

import (
	"net/url"
)

// Redact returns dsn with any password replaced by "xxxxx", for messages.
func Redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparseable dsn)"
	}
	return u.Redacted()
}
