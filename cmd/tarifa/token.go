package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/tarifa/tarifa/api"
	"github.com/tarifa/tarifa/sinks"
)

// runToken manages API bearer tokens: create prints a new token once (only
// its SHA-256 is stored); revoke disables one by id.
func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "create" && args[0] != "revoke") {
		fmt.Fprintf(stderr, "Usage: tarifa token create --role admin|reseller|client [--reseller-id N | --client-id N] [--name X]\n"+
			"       tarifa token revoke --id N\n")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return nil
		}
		return errUsage
	}
	if args[0] == "revoke" {
		return revokeToken(ctx, args[1:], stdout, stderr)
	}
	fs := newFlagSet("token create", "token create --role admin|reseller|client [--reseller-id N | --client-id N] [--name X] [--pg-dsn DSN]",
		"Creates an API bearer token and prints it once; only its SHA-256 hash is stored, so a lost\n"+
			"token cannot be shown again (create another and revoke the lost one). An admin token sees\n"+
			"everything; a reseller token its reseller's subtree; a client token its own client.", stderr)
	role := fs.String("role", "", "admin, reseller or client")
	resellerID := fs.Int64("reseller-id", 0, "the reseller of a reseller token")
	clientID := fs.Int64("client-id", 0, "the client of a client token")
	name := fs.String("name", "", "a label for the audit log, such as the operator's name")
	pgDSN := fs.String("pg-dsn", env("TARIFA_PG_DSN", defaultPGDSN), "PostgreSQL DSN (TARIFA_PG_DSN)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *role == "" {
		fmt.Fprintln(stderr, "--role is required")
		fs.Usage()
		return errUsage
	}
	pool, err := sinks.OpenPostgres(ctx, *pgDSN)
	if err != nil {
		return err
	}
	defer pool.Close()
	switch {
	case *resellerID > 0:
		if err := mustExist(ctx, pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM resellers WHERE id = $1)", *resellerID).Scan, "reseller", *resellerID); err != nil {
			return err
		}
	case *clientID > 0:
		if err := mustExist(ctx, pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM clients WHERE id = $1)", *clientID).Scan, "client", *clientID); err != nil {
			return err
		}
	}
	tok, err := api.CreateToken(ctx, pool, *role, *resellerID, *clientID, *name)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok.Secret)
	fmt.Fprintf(stderr, "token %d created (%s); it is shown only this once\n", tok.ID, *role)
	return nil
}

func mustExist(_ context.Context, scan func(...any) error, what string, id int64) error {
	var ok bool
	if err := scan(&ok); err != nil {
		return fmt.Errorf("look up %s %d: %w", what, id, err)
	}
	if !ok {
		return fmt.Errorf("%s %d not found", what, id)
	}
	return nil
}

func revokeToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("token revoke", "token revoke --id N [--pg-dsn DSN]", "Revokes an API token: it answers 401 from then on.", stderr)
	id := fs.Int64("id", 0, "the token id printed by create")
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
