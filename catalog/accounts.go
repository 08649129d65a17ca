package catalog

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"unicode"
)

// AccountStatus is the status of an account.
type AccountStatus string

// The statuses of an account: deactivate rather than delete, history stays.
const (
	AccountActive   AccountStatus = "active"
	AccountInactive AccountStatus = "inactive"
)

// Accounts recognise a client in a CDR: an IP (optionally with a tech
// prefix that precedes the dialed number), a username or an ANI. An
// account never moves to another client, and an account of a deleted
// client cannot have orig or term switched on.
var Accounts = &Entity{
	Name:  "account",
	Table: "accounts",
	Fields: []Field{
		{Name: "client_id", Kind: KRefRequired, Ref: "clients", Fixed: true, Doc: "taken from the path on create"},
		{Name: "kind", Kind: KEnum, Enum: []string{"ip", "username", "ani"}, Required: true, Fixed: true},
		{Name: "ident", Kind: KName, Required: true, Doc: "IPv4 / IPv6 address, username or ANI digits"},
		{Name: "tech_prefix", Kind: KText, Doc: "up to 32 digits, optionally ending in #; ip accounts only", Default: ""},
		{Name: "orig", Kind: KBool, Doc: "origination (customer) side on; default true", Default: true},
		{Name: "term", Kind: KBool, Doc: "termination (vendor) side on; default false", Default: false},
		{Name: "orig_rate_table_id", Kind: KRef, Ref: "rate_tables", Doc: "overrides the client's"},
		{Name: "term_rate_table_id", Kind: KRef, Ref: "rate_tables", Doc: "overrides the client's"},
		{Name: "status", Kind: KEnum, Enum: []string{string(AccountActive), string(AccountInactive)}, Default: string(AccountActive)},
	},
	scope: scopeByClient("t.client_id"),
	owner: "(SELECT reseller_id FROM clients WHERE id = t.client_id)",
	rules: accountRules,
	check: checkAccount,
}

var techPrefixRE = regexp.MustCompile(`^[0-9]{0,32}#?$`)

// accountRules canonicalises the ident for its kind and checks the tech
// prefix: what needs no database.
func accountRules(old Row, in Input) *FieldError {
	kind := strValue(value(old, in, "kind"))
	if v, given := in["ident"]; given {
		ident, err := CanonicalIdent(kind, strValue(v))
		if err != nil {
			return err
		}
		in["ident"] = ident
	}
	if v, given := in["tech_prefix"]; given {
		tp := strValue(v)
		if !techPrefixRE.MatchString(tp) || tp == "#" {
			return invalid("tech_prefix", "must be up to 32 digits, optionally ending in #, such as 7788#, got %q", clip(tp))
		}
		if tp != "" && kind != "ip" {
			return invalid("tech_prefix", "only ip accounts have a tech prefix")
		}
	}
	return nil
}

func checkAccount(ctx context.Context, w *Writer, old Row, in Input) error {
	var currency, status string
	clientID := idValue(value(old, in, "client_id"))
	if old == nil {
		ok, err := ClientInScope(ctx, w.tx, w.actor, clientID)
		if err != nil {
			return err
		}
		if !ok {
			return invalid("client_id", "client %d not found", clientID)
		}
	}
	if err := w.tx.QueryRow(ctx, "SELECT currency::text, status FROM clients WHERE id = $1", clientID).Scan(&currency, &status); err != nil {
		return fmt.Errorf("read client %d: %w", clientID, err)
	}
	if err := w.checkIdentShared(ctx, old, in); err != nil {
		return err
	}
	if status == string(ClientDeleted) {
		for _, side := range []string{"orig", "term"} {
			v, given := in[side]
			switch {
			case v == true:
				return errDeletedClientAccount(side)
			case !given && old == nil:
				in[side] = false // not the column's default: the client is deleted
			}
		}
	}
	for _, f := range []string{"orig_rate_table_id", "term_rate_table_id"} {
		if v, given := in[f]; given && v != nil {
			if err := w.checkRateTableRef(ctx, f, idValue(v), currency); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkIdentShared refuses a reseller an account whose kind and ident
// another account outside its subtree already has, whatever the tech
// prefixes: CDRs are matched on IP and the longest tech prefix, so a
// sub-reseller's "203.0.113.10 + 44" would take the UK calls of its
// parent's client on 203.0.113.10 — billing them to its own client and
// showing it their numbers. Only the operator, who sees both, may share an
// ident between trees.
func (w *Writer) checkIdentShared(ctx context.Context, old Row, in Input) error {
	_, newIdent := in["ident"]
	if w.actor.IsOperator() || (old != nil && !newIdent) {
		return nil
	}
	kind, ident := strValue(value(old, in, "kind")), strValue(value(old, in, "ident"))
	var subtree []int64
	if w.actor.IsReseller() {
		subtree = w.actor.Subtree
	}
	var foreign bool
	err := w.tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM accounts a JOIN clients c ON c.id = a.client_id
		WHERE a.kind = $1 AND a.ident = $2 AND NOT (c.reseller_id = ANY($3)))`, kind, ident, subtree).Scan(&foreign)
	if err != nil {
		return fmt.Errorf("look up accounts with %s %s: %w", kind, ident, err)
	}
	if foreign {
		return conflict("ident", "%s %s is an account of a client outside this reseller's tree: only the operator can share it", kind, ident)
	}
	return nil
}

// errDeletedClientAccount refuses to switch side on for an account of a
// deleted client.
func errDeletedClientAccount(side string) *FieldError {
	return invalid(side, "the client is deleted: its accounts stay off")
}

// CanonicalIdent validates an account identifier for its kind and returns
// the form rating matches: the canonical text of an IP (IPv4-mapped IPv6
// addresses as plain IPv4), a username without blanks, ANI digits without a
// leading +.
func CanonicalIdent(kind, ident string) (string, *FieldError) {
	switch kind {
	case "ip":
		a, err := netip.ParseAddr(ident)
		if err != nil || a.Zone() != "" {
			return "", invalid("ident", "not an IPv4 or IPv6 address: %q", clip(ident))
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
