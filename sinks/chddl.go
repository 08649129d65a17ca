package sinks

import (
	"fmt"
	"sort"
	"strings"

	"github.com/tarifa/tarifa/schemas"
)

// ClickHouse migrations are written once, as single-server SQL, and run
// either on one server or on a cluster (tarifa migrate --clickhouse-cluster
// NAME). chDDL translates each statement for the mode; the rules a
// migration author follows are in the schemas package doc.
//
// On a cluster a table of a MergeTree engine becomes two:
//
//   - <name>_local ON CLUSTER, engine Replicated<Engine> with the ZooKeeper
//     path /clickhouse/tables/{shard}/<database>/<name>_local and replica
//     {replica} (macros every server defines), holding one shard's rows;
//   - <name>, a Distributed table over <name>_local with a sharding key:
//     what people query and workers insert into, so that reports, the
//     worker and ad-hoc SQL need no change.
//
// The default sharding key is cityHash64(switch, cdr_id) for a table with
// both columns — every row about one CDR (its raw copy, every version of
// its xDR) lives on one shard, so FINAL, argMax by version and per-CDR
// joins give the same answer as on one server — and otherwise cityHash64
// of the sorting key, so rows that merge together (ReplacingMergeTree,
// SummingMergeTree) share a shard.

// chKind is how a table exists on a cluster.
type chKind int

const (
	chPlain      chKind = iota // views, materialized views, Null/Memory/… engines: the same object on every server
	chSharded                  // <name>_local on each shard plus the Distributed <name>
	chEverywhere               // one Replicated table with a full copy on every server ("-- cluster: not sharded")
)

type chTable struct {
	kind     chKind
	shardKey string // chSharded: the Distributed table's sharding key
}

// chDDL translates the statements of one database's migrations. It learns
// the tables as it goes: translating the applied migrations again, in
// order, rebuilds the same knowledge every run, so nothing about the
// translation is stored in the database. Not safe for concurrent use.
type chDDL struct {
	cluster string // "" on a single server
	db      string
	tables  map[string]*chTable
}

func newCHDDL(cluster, db string) *chDDL {
	return &chDDL{cluster: cluster, db: db, tables: map[string]*chTable{}}
}

// chStep is one statement to execute.
type chStep struct {
	sql string
	// alter names the table whose columns an ALTER step changes. ClickHouse
	// 18.16 has no ADD COLUMN IF NOT EXISTS, so a failed ALTER is forgiven
	// when translating the statement again finds nothing left to do (a rerun
	// after a partial failure, or a cluster where one shard had it already).
	alter string
}

// columnsFunc reports the columns of a table: every holds those present on
// every shard (on one server: present), some those present on at least one.
type columnsFunc func(table string) (every, some map[string]bool, err error)

// translate returns the steps that carry out st. cols may be nil when the
// steps are not going to run (learning from applied migrations).
func (d *chDDL) translate(st schemas.Statement, cols columnsFunc) ([]chStep, error) {
	s := parseStmt(st.SQL)
	if d.cluster == "" {
		if s.keywords(0, "ALTER", "TABLE") {
			return d.alterTable(s, cols)
		}
		return []chStep{{sql: st.SQL}}, nil
	}
	switch {
	case s.keywords(0, "CREATE", "TABLE"):
		return d.createTable(s, st.Cluster)
	case s.keywords(0, "CREATE", "MATERIALIZED", "VIEW"), s.keywords(0, "CREATE", "VIEW"):
		return d.createView(s)
	case s.keywords(0, "ALTER", "TABLE"):
		return d.alterTable(s, cols)
	case s.keywords(0, "DROP", "TABLE"), s.keywords(0, "DROP", "VIEW"):
		return d.dropTable(s)
	case s.keywords(0, "OPTIMIZE", "TABLE"):
		return d.optimize(s)
	case s.keywords(0, "INSERT"):
		// Through the Distributed tables, as on one server.
		return []chStep{{sql: st.SQL}}, nil
	}
	return nil, fmt.Errorf("cluster mode has no translation for a statement starting %q (see the schemas package doc)", s.text(0, min(3, len(s.sig))))
}

func (d *chDDL) qualified(name string) string { return quoteName(d.db) + "." + quoteName(name) }

func (d *chDDL) onCluster() string { return " ON CLUSTER " + quoteName(d.cluster) }

// edit replaces the significant tokens [from, to) of a statement with text
// (from == to inserts text before token from).
type edit struct {
	from, to int
	text     string
}

// render applies non-overlapping edits to s, keeping every other token,
// spaces and comments included.
func render(s *sqlStmt, edits []edit) string {
	sort.SliceStable(edits, func(i, j int) bool { return edits[i].from < edits[j].from })
	raw := func(k int) int {
		if k >= len(s.sig) {
			return len(s.toks)
		}
		return s.sig[k]
	}
	var b strings.Builder
	pos := 0
	for _, e := range edits {
		b.WriteString(joinToks(s.toks[pos:raw(e.from)]))
		b.WriteString(e.text)
		pos = raw(e.from)
		if e.to > e.from {
			pos = s.sig[e.to-1] + 1
		}
	}
	b.WriteString(joinToks(s.toks[pos:]))
	return b.String()
}

// qualifyRefs returns edits that qualify, with the database, the tables
// named after FROM, JOIN, TO or AS in [from, to) that migrations created:
// a statement ON CLUSTER runs on the other servers in their default
// database, where an unqualified name would not resolve. Sharded tables
// resolve to their Distributed table, except with local set (AS, for the
// structure of a new local table).
func (d *chDDL) qualifyRefs(s *sqlStmt, from, to int, local bool) []edit {
	var out []edit
	for k := from; k < to; k++ {
		t := s.at(k)
		if !(t.is("FROM") || t.is("JOIN") || t.is("TO") || t.is("AS")) {
			continue
		}
		name, ok := s.at(k + 1).name()
		if !ok || s.at(k+2).text == "." || s.at(k+2).text == "(" {
			continue
		}
		tab := d.tables[name]
		if tab == nil {
			continue
		}
		if local && tab.kind == chSharded && t.is("AS") {
			name += "_local"
		}
		out = append(out, edit{k + 1, k + 2, d.qualified(name)})
	}
	return out
}

func (d *chDDL) createTable(s *sqlStmt, directive string) ([]chStep, error) {
	k := 2
	var edits []edit
	if s.keywords(k, "IF", "NOT", "EXISTS") {
		k += 3
	} else {
		edits = append(edits, edit{k, k, "IF NOT EXISTS "})
	}
	nameAt := k
	name, k, ok := s.tableName(k)
	if !ok {
		return nil, fmt.Errorf("create table: no table name")
	}
	if s.keywords(k, "ON", "CLUSTER") {
		return nil, fmt.Errorf("create table %s: write it without ON CLUSTER; cluster mode adds it", name)
	}
	var cols []string
	if s.at(k).text == "(" {
		end := s.close(k)
		if end < 0 {
			return nil, fmt.Errorf("create table %s: unbalanced parentheses", name)
		}
		cols = columnNames(s, k, end)
		k = end + 1
	}
	engineAt, orderFrom, orderTo := -1, -1, -1
	depth := 0
	for i := k; i < len(s.sig); i++ {
		switch t := s.at(i); {
		case t.text == "(" || t.text == "[":
			depth++
		case t.text == ")" || t.text == "]":
			depth--
		case depth > 0:
		case t.is("ENGINE") && engineAt < 0:
			engineAt = i
		case t.is("SELECT"):
			return nil, fmt.Errorf("create table %s: CREATE TABLE … AS SELECT has no cluster translation; create the table, then INSERT … SELECT", name)
		case t.is("ORDER") && s.at(i+1).is("BY"):
			orderFrom, orderTo = i+2, len(s.sig)
			for j, dd := i+2, 0; j < len(s.sig); j++ {
				switch u := s.at(j); {
				case u.text == "(" || u.text == "[":
					dd++
				case u.text == ")" || u.text == "]":
					dd--
				case dd == 0 && (u.is("PARTITION") || u.is("PRIMARY") || u.is("SAMPLE") || u.is("TTL") || u.is("SETTINGS")):
					orderTo = j
					j = len(s.sig)
				}
			}
		}
	}
	if engineAt < 0 {
		return nil, fmt.Errorf("create table %s: no ENGINE", name)
	}
	e := engineAt + 1
	if s.at(e).text == "=" {
		e++
	}
	engine, _ := s.at(e).name()
	argsFrom, argsTo := -1, -1
	if s.at(e+1).text == "(" {
		argsFrom, argsTo = e+2, s.close(e+1)
	}
	if strings.HasPrefix(engine, "Replicated") {
		return nil, fmt.Errorf("create table %s: write the single-server engine (%s); cluster mode makes it Replicated", name, strings.TrimPrefix(engine, "Replicated"))
	}
	if !strings.HasSuffix(engine, "MergeTree") {
		if directive != "" {
			return nil, fmt.Errorf("create table %s: a cluster directive applies to MergeTree tables only, not %s", name, engine)
		}
		edits = append(edits, edit{nameAt, afterName(s, nameAt), d.qualified(name) + d.onCluster()})
		edits = append(edits, d.qualifyRefs(s, k, len(s.sig), false)...)
		d.tables[name] = &chTable{kind: chPlain}
		return []chStep{{sql: render(s, edits)}}, nil
	}

	kind, key := chSharded, ""
	switch {
	case directive == "not sharded":
		kind = chEverywhere
	case strings.HasPrefix(directive, "shard by "):
		key = strings.TrimSpace(strings.TrimPrefix(directive, "shard by "))
	case directive != "":
		return nil, fmt.Errorf("create table %s: cluster directive %q: want \"shard by EXPR\" or \"not sharded\"", name, directive)
	case contains(cols, "switch") && contains(cols, "cdr_id"):
		key = "cityHash64(switch, cdr_id)"
	default:
		key = "rand()"
		if orderFrom >= 0 {
			expr := strings.TrimSpace(s.text(orderFrom, orderTo))
			if s.at(orderFrom).text == "(" && s.close(orderFrom) == orderTo-1 {
				expr = strings.TrimSpace(s.text(orderFrom+1, orderTo-1))
			}
			if expr != "" && !strings.EqualFold(expr, "tuple()") {
				key = "cityHash64(" + expr + ")"
			}
		}
	}
	local, zk := name+"_local", "/clickhouse/tables/{shard}/"+d.db+"/"+name+"_local"
	if kind == chEverywhere {
		local, zk = name, "/clickhouse/tables/all/"+d.db+"/"+name
	}
	replArgs := quoteString(zk) + ", '{replica}'"
	edits = append(edits, edit{nameAt, afterName(s, nameAt), d.qualified(local) + d.onCluster()})
	if argsFrom >= 0 && argsTo >= 0 {
		if argsTo > argsFrom {
			replArgs += ", "
		}
		edits = append(edits, edit{e, e + 1, "Replicated" + engine}, edit{argsFrom, argsFrom, replArgs})
	} else {
		edits = append(edits, edit{e, e + 1, "Replicated" + engine + "(" + replArgs + ")"})
	}
	edits = append(edits, d.qualifyRefs(s, afterName(s, nameAt), engineAt, true)...)
	steps := []chStep{{sql: render(s, edits)}}
	d.tables[name] = &chTable{kind: kind, shardKey: key}
	if kind == chSharded {
		steps = append(steps, chStep{sql: d.createDistributed(name)})
	}
	return steps, nil
}

// afterName returns the significant index after the [db.]name at k.
func afterName(s *sqlStmt, k int) int {
	_, next, _ := s.tableName(k)
	return next
}

func (d *chDDL) createDistributed(name string) string {
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s%s AS %s ENGINE = Distributed(%s, %s, %s, %s)",
		d.qualified(name), d.onCluster(), d.qualified(name+"_local"),
		quoteString(d.cluster), quoteString(d.db), quoteString(name+"_local"), d.tables[name].shardKey)
}

// columnNames returns the names of the columns defined between the
// parentheses at open and close (indexes and constraints skipped).
func columnNames(s *sqlStmt, open, close int) []string {
	var out []string
	depth, start := 0, true
	for k := open + 1; k < close; k++ {
		t := s.at(k)
		switch {
		case t.text == "(" || t.text == "[":
			depth++
		case t.text == ")" || t.text == "]":
			depth--
		case depth == 0 && t.text == ",":
			start = true
			continue
		case start && depth == 0:
			if n, ok := t.name(); ok && !t.is("INDEX") && !t.is("CONSTRAINT") && !t.is("PROJECTION") {
				out = append(out, n)
			}
		}
		start = false
	}
	return out
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func (d *chDDL) createView(s *sqlStmt) ([]chStep, error) {
	k := 2
	materialized := s.at(1).is("MATERIALIZED")
	if materialized {
		k = 3
	}
	var edits []edit
	if s.keywords(k, "IF", "NOT", "EXISTS") {
		k += 3
	} else {
		edits = append(edits, edit{k, k, "IF NOT EXISTS "})
	}
	nameAt := k
	name, k, ok := s.tableName(k)
	if !ok {
		return nil, fmt.Errorf("create view: no name")
	}
	if materialized && !s.at(k).is("TO") {
		return nil, fmt.Errorf("materialized view %s keeps its rows in an inner table, which cluster mode cannot shard: write it TO a table the migration creates", name)
	}
	edits = append(edits, edit{nameAt, k, d.qualified(name) + d.onCluster()})
	edits = append(edits, d.qualifyRefs(s, k, len(s.sig), false)...)
	d.tables[name] = &chTable{kind: chPlain}
	return []chStep{{sql: render(s, edits)}}, nil
}

func (d *chDDL) dropTable(s *sqlStmt) ([]chStep, error) {
	k := 2
	var edits []edit
	if s.keywords(k, "IF", "EXISTS") {
		k += 2
	} else {
		edits = append(edits, edit{k, k, "IF EXISTS "})
	}
	nameAt := k
	name, k, ok := s.tableName(k)
	if !ok {
		return nil, fmt.Errorf("drop: no table name")
	}
	tab := d.tables[name]
	delete(d.tables, name)
	edits = append(edits, edit{nameAt, k, d.qualified(name) + d.onCluster()})
	steps := []chStep{{sql: render(s, edits)}}
	if tab != nil && tab.kind == chSharded {
		steps = append(steps, chStep{sql: "DROP TABLE IF EXISTS " + d.qualified(name+"_local") + d.onCluster()})
	}
	return steps, nil
}

func (d *chDDL) optimize(s *sqlStmt) ([]chStep, error) {
	name, k, ok := s.tableName(2)
	if !ok {
		return nil, fmt.Errorf("optimize: no table name")
	}
	target := name
	if tab := d.tables[name]; tab != nil && tab.kind == chSharded {
		target += "_local"
	}
	return []chStep{{sql: render(s, []edit{{2, k, d.qualified(target) + d.onCluster()}})}}, nil
}

// alterTable translates ALTER TABLE. In both modes ADD COLUMN and DROP
// COLUMN are made repeatable (IF [NOT] EXISTS is accepted and checked here,
// since 18.16 does not parse it). On a cluster the ALTER goes to the local
// tables of every shard and the Distributed table is then made again over
// them (ClickHouse refuses ALTER ON CLUSTER of a Distributed table on a
// cluster with internal replication); a table not sharded is altered once,
// and ZooKeeper carries the change to every replica.
func (d *chDDL) alterTable(s *sqlStmt, cols columnsFunc) ([]chStep, error) {
	name, k, ok := s.tableName(2)
	if !ok {
		return nil, fmt.Errorf("alter table: no table name")
	}
	if s.keywords(k, "ON", "CLUSTER") {
		return nil, fmt.Errorf("alter table %s: write it without ON CLUSTER; cluster mode adds it", name)
	}
	tab := d.tables[name]
	target, head := name, s.text(0, k)
	if d.cluster != "" {
		switch {
		case tab != nil && tab.kind == chSharded:
			target = name + "_local"
			head = "ALTER TABLE " + d.qualified(target) + d.onCluster()
		case tab != nil && tab.kind == chEverywhere:
			head = "ALTER TABLE " + d.qualified(target)
		default:
			head = "ALTER TABLE " + d.qualified(target) + d.onCluster()
		}
	}
	var every, some map[string]bool
	var actions []string
	columnChange := false
	for _, a := range splitActions(s, k) {
		text := s.text(a[0], a[1])
		switch {
		case s.keywords(a[0], "ADD", "COLUMN"), s.keywords(a[0], "DROP", "COLUMN"):
			columnChange = true
			add := s.at(a[0]).is("ADD")
			c, guard := a[0]+2, 0
			if add && s.keywords(c, "IF", "NOT", "EXISTS") {
				guard = 3
			} else if !add && s.keywords(c, "IF", "EXISTS") {
				guard = 2
			}
			col, ok := s.at(c + guard).name()
			if !ok {
				return nil, fmt.Errorf("alter table %s: %s: no column name", name, text)
			}
			if cols != nil && every == nil {
				var err error
				if every, some, err = cols(target); err != nil {
					return nil, err
				}
			}
			if cols != nil && (add && every[col] || !add && !some[col]) {
				continue // done already
			}
			if guard > 0 {
				text = s.text(a[0], c) + " " + s.text(c+guard, a[1])
			}
		case s.at(a[0] + 1).is("COLUMN"):
			columnChange = true // MODIFY, COMMENT, CLEAR, RENAME COLUMN
		}
		actions = append(actions, text)
	}
	var steps []chStep
	if len(actions) > 0 {
		steps = append(steps, chStep{sql: head + " " + strings.Join(actions, ", "), alter: target})
	}
	if d.cluster != "" && tab != nil && tab.kind == chSharded && columnChange {
		steps = append(steps,
			chStep{sql: "DROP TABLE IF EXISTS " + d.qualified(name) + d.onCluster()},
			chStep{sql: d.createDistributed(name)})
	}
	return steps, nil
}

// splitActions returns the [from, to) ranges of the comma-separated
// actions of an ALTER from significant index k.
func splitActions(s *sqlStmt, k int) [][2]int {
	var out [][2]int
	depth, start := 0, k
	for i := k; i <= len(s.sig); i++ {
		t := s.at(i)
		switch {
		case i == len(s.sig) || depth == 0 && t.text == ",":
			if i > start {
				out = append(out, [2]int{start, i})
			}
			start = i + 1
		case t.text == "(" || t.text == "[":
			depth++
		case t.text == ")" || t.text == "]":
			depth--
		}
	}
	return out
}
