package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/jackc/pgx/v5"
)

// accounts recognise a client in a CDR: an IP (optionally with a tech
// prefix that precedes the dialed number), a username or an ANI. Deleting
// deactivates (status inactive): the history of the account stays.
var accounts = &entity{
	name:  "account",
	table: "accounts",
	fields: []field{
		{name: "client_id", kind: kRefRequired, ref: "clients", fixed: true, doc: "taken from the path on create"},
		{name: "kind", kind: kEnum, enum: []string{"ip", "username", "ani"}, required: true, fixed: true},
		{name: "ident", kind: kName, required: true, doc: "IPv4 / IPv6 address, username or ANI digits"},
		{name: "tech_prefix", kind: kText, doc: "digits, optionally ending in #; ip accounts only"},
		{name: "orig", kind: kBool, doc: "origination (customer) side on; default true"},
		{name: "term", kind: kBool, doc: "termination (vendor) side on; default false"},
		{name: "orig_rate_table_id", kind: kRef, ref: "rate_tables", doc: "overrides the client's"},
		{name: "term_rate_table_id", kind: kRef, ref: "rate_tables", doc: "overrides the client's"},
		{name: "status", kind: kEnum, enum: []string{"active", "inactive"}},
	},
	scope: scopeByClient("t.client_id"),
	owner: "(SELECT reseller_id FROM clients WHERE id = t.client_id)",
	check: checkAccount,
}

var techPrefixRE = regexp.MustCompile(`^[0-9]{0,32}#?$`)

func checkAccount(ctx context.Context, tx pgx.Tx, p *principal, old, vals map[string]any) error {
	kind := strValue(value(old, vals, "kind"))
	if v, given := vals["ident"]; given {
		ident, err := canonicalIdent(kind, strValue(v))
		if err != nil {
			return err
		}
		vals["ident"] = ident
	}
	if v, given := vals["tech_prefix"]; given {
		tp := strValue(v)
		if !techPrefixRE.MatchString(tp) || tp == "#" {
			return invalid("tech_prefix", "must be digits, optionally ending in #, such as 7788#")
		}
		if tp != "" && kind != "ip" {
			return invalid("tech_prefix", "only ip accounts have a tech prefix")
		}
	}
	var currency string
	clientID := idValue(value(old, vals, "client_id"))
	if err := tx.QueryRow(ctx, "SELECT currency::text FROM clients WHERE id = $1", clientID).Scan(&currency); err != nil {
		return err
	}
	for _, f := range []string{"orig_rate_table_id", "term_rate_table_id"} {
		if v, given := vals[f]; given && v != nil {
			if err := checkRateTable(ctx, tx, f, idValue(v), currency); err != nil {
				return err
			}
		}
	}
	return nil
}

// canonicalIdent validates an account identifier for its kind and returns
// the form rating matches: the canonical text of an IP (IPv4-mapped IPv6
// addresses as plain IPv4), a username without blanks, ANI digits without a
// leading +.
func canonicalIdent(kind, ident string) (string, error) {
	switch kind {
	case "ip":
		a, err := netip.ParseAddr(ident)
		if err != nil || a.Zone() != "" {
			return "", invalid("ident", "not an IPv4 or IPv6 address: %q", ident)
		}
		return a.Unmap().String(), nil
	case "username":
		if len(ident) > 255 || strings.IndexFunc(ident, unicode.IsSpace) >= 0 {
			return "", invalid("ident", "a username is at most 255 bytes without blanks")
		}
		return ident, nil
	case "ani":
		digits := strings.TrimPrefix(ident, "+")
		if digits == "" || len(digits) > 32 || strings.Trim(digits, "0123456789") != "" {
			return "", invalid("ident", "an ANI is 1 to 32 digits, optionally after +")
		}
		return digits, nil
	}
	return ident, nil
}

// clientInScope answers 404 unless client id is one p may see.
func (s *Server) clientInScope(ctx context.Context, p *principal, id int64) error {
	q := &query{}
	q.add("t.id = %s", id)
	clients.scope(q, p)
	var ok bool
	if err := s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM clients t"+q.where()+")", q.args...).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return notFound("client")
	}
	return nil
}

// scopedClientID reads the client id of the path and checks the caller may
// see that client (404 otherwise).
func (s *Server) scopedClientID(r *http.Request, p *principal) (int64, error) {
	id, err := pathID(r, "id", "client")
	if err != nil {
		return 0, err
	}
	if err := s.clientInScope(r.Context(), p, id); err != nil {
		return 0, err
	}
	return id, nil
}

func (s *Server) listAccounts(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := s.scopedClientID(r, p)
	if err != nil {
		return err
	}
	v := r.URL.Query()
	q := &query{}
	q.add("t.client_id = %s", id)
	if err := q.oneOf(v, "status", "t.status", "active", "inactive"); err != nil {
		return err
	}
	pg, err := s.list(r.Context(), accounts, q, "t.id", v)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pg)
	return nil
}

func (s *Server) createAccount(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := s.scopedClientID(r, p)
	if err != nil {
		return err
	}
	body, err := decodeObject(r)
	if err != nil {
		return err
	}
	if raw, ok := body["client_id"]; ok && string(raw) != strconv.FormatInt(id, 10) {
		return invalid("client_id", "differs from the client in the path")
	}
	body["client_id"] = json.RawMessage(strconv.FormatInt(id, 10))
	out, err := s.create(r.Context(), p, accounts, body)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (s *Server) deactivateAccount(w http.ResponseWriter, r *http.Request, p *principal) error {
	return s.archive(w, r, p, accounts, "inactive")
}
