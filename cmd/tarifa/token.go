package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tarifa/tarifa/api"
	"github.com/tarifa/tarifa/sinks"
)

const tokenUsage = `Usage: tarifa token create --role admin|reseller|client [--reseller-id N | --client-id N] [--name X] [--expires 90d]
       tarifa token list [--format table|json]
       tarifa token revoke --id N

Manages the bearer tokens of the management API (tarifa api). Only a token's
SHA-256 is stored: create prints the token once. Run 'tarifa token SUBCOMMAND
--help' for the flags of each.
`

// runToken manages API bearer tokens: create prints a new token once (only
// its SHA-256 is stored); list shows them all without secrets; revoke
// disables one by id.
func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, tokenUsage)
		return errUsage
	}
	switch args[0] {
	case "create":
		return createToken(ctx, args[1:], stdout, stderr)
	case "list":
		return listTokens(ctx, args[1:], stdout, stderr)
	case "revoke":
		return revokeToken(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "-help", "help":
		fmt.Fprint(stdout, tokenUsage)
		return nil
	}
	fmt.Fprintf(stderr, "unknown token subcommand %q\n\n%s", args[0], tokenUsage)
	return errUsage
}

func createToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("token create", "token create --role admin|reseller|client [--reseller-id N | --client-id N] [--name X] [--expires 90d] [--pg-dsn DSN]",
		"Creates an API bearer token and prints it once; only its SHA-256 hash is stored, so a lost\n"+
			"token cannot be shown again (create another and revoke the lost one). An admin token sees\n"+
			"everything; a reseller token its reseller's subtree; a client token its own client. A\n"+
			"token with --expires answers 401 from then on, like a revoked one.", stderr)
	role := fs.String("role", "", "admin, reseller or client")
	resellerID := fs.Int64("reseller-id", 0, "the reseller of a reseller token")
	clientID := fs.Int64("client-id", 0, "the client of a client token")
	name := fs.String("name", "", "a label for the audit log, such as the operator's name")
	expires := fs.String("expires", "", `when the token stops working: a duration from now ("90d", "12h") or a time (RFC 3339 or YYYY-MM-DD); default never`)
	pgDSN := fs.String("pg-dsn", env("TARIFA_PG_DSN", defaultPGDSN), "PostgreSQL DSN (TARIFA_PG_DSN)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *role == "" {
		fmt.Fprintln(stderr, "--role is required")
		fs.Usage()
		return errUsage
	}
	spec := api.TokenSpec{Role: *role, ResellerID: *resellerID, ClientID: *clientID, Name: *name}
	if *expires != "" {
		at, err := parseExpiry(*expires, time.Now())
		if err != nil {
			fmt.Fprintf(stderr, "--expires: %v\n", err)
			fs.Usage()
			return errUsage
		}
		spec.Expires = at
	}
	pool, err := sinks.OpenPostgres(ctx, *pgDSN)
	if err != nil {
		return err
	}
	defer pool.Close()
	tok, err := api.NewToken(ctx, pool, spec)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok.Secret)
	until := "never expires"
	if !spec.Expires.IsZero() {
		until = "expires " + spec.Expires.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(stderr, "token %d created (%s, %s); it is shown only this once\n", tok.ID, *role, until)
	return nil
}

// parseExpiry reads --expires: a duration from now, in days ("90d") or
// anything time.ParseDuration takes ("36h"), or a time.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 {
			return time.Time{}, fmt.Errorf("%q: want a positive number of days such as 90d", s)
		}
		return now.AddDate(0, 0, n), nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("%q: want a positive duration", s)
		}
		return now.Add(d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q: want a duration (90d, 12h) or a time (RFC 3339 or YYYY-MM-DD)", s)
}

func listTokens(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("token list", "token list [--format table|json] [--pg-dsn DSN]",
		"Lists every API token: id, role, the reseller or client it belongs to, name, when it was\n"+
			"created and expires, and its state (active, expired or revoked). Secrets are not stored,\n"+
			"so they are never shown.", stderr)
	format := fs.String("format", "table", "table or json")
	pgDSN := fs.String("pg-dsn", env("TARIFA_PG_DSN", defaultPGDSN), "PostgreSQL DSN (TARIFA_PG_DSN)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *format != "table" && *format != "json" {
		fmt.Fprintln(stderr, "--format must be table or json")
		fs.Usage()
		return errUsage
	}
	pool, err := sinks.OpenPostgres(ctx, *pgDSN)
	if err != nil {
		return err
	}
	defer pool.Close()
	list, err := api.ListTokens(ctx, pool)
	if err != nil {
		return err
	}
	now := time.Now()
	stamp := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	owner := func(t api.TokenInfo) string {
		switch {
		case t.ResellerID != 0:
			return fmt.Sprintf("reseller %d %s", t.ResellerID, t.Owner)
		case t.ClientID != 0:
			return fmt.Sprintf("client %d %s", t.ClientID, t.Owner)
		}
		return ""
	}
	if *format == "json" {
		out := make([]map[string]any, 0, len(list))
		for _, t := range list {
			m := map[string]any{"id": t.ID, "role": t.Role, "name": t.Name, "created_at": stamp(t.Created),
				"expires_at": nil, "state": t.State(now), "reseller_id": nil, "client_id": nil, "owner": t.Owner}
			if !t.Expires.IsZero() {
				m["expires_at"] = stamp(t.Expires)
			}
			if t.ResellerID != 0 {
				m["reseller_id"] = t.ResellerID
			}
			if t.ClientID != 0 {
				m["client_id"] = t.ClientID
			}
			out = append(out, m)
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"tokens": out})
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tROLE\tFOR\tNAME\tCREATED\tEXPIRES\tSTATE")
	for _, t := range list {
		exp := stamp(t.Expires)
		if exp == "" {
			exp = "never"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Role, owner(t), t.Name, stamp(t.Created), exp, t.State(now))
	}
	return tw.Flush()
}

func revokeToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("token revoke", "token revoke --id N [--pg-dsn DSN]", "Revokes an API token: it answers 401 from then on.", stderr)
	id := fs.Int64("id", 0, "the token id printed by create and list")
	pgDSN := fs.String("pg-dsn", env("TARIFA_PG_DSN", defaultPGDSN), "PostgreSQL DSN (TARIFA_PG_DSN)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *id <= 0 {
		fmt.Fprintln(stderr, "--id is required")
		fs.Usage()
		return errUsage
	}
	pool, err := sinks.OpenPostgres(ctx, *pgDSN)
	if err != nil {
		return err
	}
	defer pool.Close()
	tag, err := pool.Exec(ctx, "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", *id)
	if err != nil {
		return fmt.Errorf("revoke token %d: %w", *id, err)
	}
	if tag.RowsAffected() == 0 {
		return errors.New("no such token, or already revoked")
	}
	fmt.Fprintf(stdout, "token %d revoked\n", *id)
	return nil
}
