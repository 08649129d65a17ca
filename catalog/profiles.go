package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tarifa/tarifa/codedeck"
)

var profileNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,100}$`)

// CheckTimeProfile validates a named time profile (DESIGN.md "Time
// profiles") without the database.
func CheckTimeProfile(name string, windows []codedeck.Window) *FieldError {
	if !profileNameRE.MatchString(name) || name == codedeck.AllProfile {
		return invalid("name", "must be 1 to 100 letters, digits, _ . - and not %q", codedeck.AllProfile)
	}
	if _, err := codedeck.NewProfiles(map[string][]codedeck.Window{name: windows}); err != nil {
		return invalid("", "%s", strings.TrimPrefix(err.Error(), fmt.Sprintf("time profile %q", name)+" "))
	}
	return nil
}

// timeProfileEntity names time profiles in the audit log.
var timeProfileEntity = &Entity{Name: "time profile", Table: "time_profiles"}

// PutTimeProfile creates time profile name or gives it windows, with its
// audit row; a profile that already has them is left alone (Unchanged).
func (w *Writer) PutTimeProfile(ctx context.Context, name string, windows []codedeck.Window) (Change, error) {
	if err := CheckTimeProfile(name, windows); err != nil {
		return Unchanged, err
	}
	if !w.actor.IsOperator() {
		return Unchanged, &FieldError{Kind: Forbidden, Msg: "only the operator defines time profiles"}
	}
	def, err := json.Marshal(windows)
	if err != nil {
		return Unchanged, fmt.Errorf("time profile %q: %w", name, err)
	}
	var id int64
	var same bool
	var before []byte
	err = w.tx.QueryRow(ctx, `SELECT id, definition = $2::jsonb, json_build_object('name', name, 'definition', definition)::text
		FROM time_profiles WHERE name = $1 FOR UPDATE`, name, string(def)).Scan(&id, &same, &before)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if err := w.tx.QueryRow(ctx, "INSERT INTO time_profiles (name, definition) VALUES ($1, $2::jsonb) RETURNING id", name, string(def)).Scan(&id); err != nil {
			return Unchanged, w.dbError("create time profile", err)
		}
		after, _ := json.Marshal(map[string]any{"name": name, "definition": json.RawMessage(def)})
		return Created, w.auditOwned(ctx, "create", timeProfileEntity.Name, id, nil, nil, after)
	case err != nil:
		return Unchanged, fmt.Errorf("read time profile %q: %w", name, err)
	case same:
		return Unchanged, nil
	}
	if _, err := w.tx.Exec(ctx, "UPDATE time_profiles SET definition = $2::jsonb, updated_at = now() WHERE id = $1", id, string(def)); err != nil {
		return Unchanged, w.dbError("update time profile", err)
	}
	after, _ := json.Marshal(map[string]any{"name": name, "definition": json.RawMessage(def)})
	return Updated, w.auditOwned(ctx, "update", timeProfileEntity.Name, id, nil, before, after)
}

// TimeProfileNames returns the names of the stored time profiles and the
// built-in all.
func TimeProfileNames(ctx context.Context, db querier) (map[string]bool, error) {
	rows, err := db.Query(ctx, "SELECT name FROM time_profiles")
	if err != nil {
		return nil, fmt.Errorf("read time profiles: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read time profiles: %w", err)
	}
	known := map[string]bool{codedeck.AllProfile: true}
	for _, n := range names {
		known[n] = true
	}
	return known, nil
}
