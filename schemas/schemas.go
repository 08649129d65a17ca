package schemas

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

//go:embed postgres/*.sql clickhouse/*.sql cdr.schema.json
var files embed.FS

// Migration is one versioned schema change.
type Migration struct {
	Version int
	Name    string // file name without the version and extension
	SQL     string
}

// Postgres returns the PostgreSQL migrations in version order.
func Postgres() []Migration { return load("postgres") }

// ClickHouse returns the ClickHouse migrations in version order.
func ClickHouse() []Migration { return load("clickhouse") }

// CDRSchema returns the JSON Schema of the CDR message.
func CDRSchema() []byte {
	b, err := files.ReadFile("cdr.schema.json")
	if err != nil {
		panic("BUG: embedded cdr.schema.json missing: " + err.Error())
	}
	return b
}

func load(dir string) []Migration {
	entries, err := fs.ReadDir(files, dir)
	if err != nil {
		panic("BUG: embedded migrations missing: " + err.Error())
	}
	var ms []Migration
	for _, e := range entries {
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			panic(fmt.Sprintf("BUG: migration file %s/%s is not NNNN_name.sql", dir, e.Name()))
		}
		b, err := files.ReadFile(dir + "/" + e.Name())
		if err != nil {
			panic("BUG: " + err.Error())
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i := 1; i < len(ms); i++ {
		if ms[i].Version == ms[i-1].Version {
			panic(fmt.Sprintf("BUG: two %s migrations with version %d", dir, ms[i].Version))
		}
	}
	return ms
}

// Statements splits a migration into its statements: SQL separated by a
// semicolon at the end of a line, with "--" comment lines dropped. ClickHouse
// takes one statement per query.
func Statements(sql string) []string {
	var out []string
	for _, st := range Parse(sql) {
		out = append(out, st.SQL)
	}
	return out
}

// Statement is one statement of a migration, with the cluster directive
// written in the comment lines right above it.
type Statement struct {
	SQL string
	// Cluster is the text after "-- cluster:" in the comment lines above the
	// statement ("" when there is none); see the package doc.
	Cluster string
}

// Parse splits a migration like Statements and keeps each statement's
// cluster directive.
func Parse(sql string) []Statement {
	var out []Statement
	var cur strings.Builder
	directive := ""
	for _, line := range strings.Split(sql, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") {
			if cur.Len() == 0 {
				if d, ok := strings.CutPrefix(strings.TrimSpace(strings.TrimPrefix(trimmed, "--")), "cluster:"); ok {
					directive = strings.TrimSpace(d)
				}
			}
			continue
		}
		if trimmed == "" && cur.Len() == 0 {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			if stmt := strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"); stmt != "" {
				out = append(out, Statement{SQL: stmt, Cluster: directive})
			}
			cur.Reset()
			directive = ""
		}
	}
	if stmt := strings.TrimSpace(cur.String()); stmt != "" {
		out = append(out, Statement{SQL: stmt, Cluster: directive})
	}
	return out
}
