#!/usr/bin/env bash
# make demo: the whole pipeline on the local stack, in a few minutes.
#
#   1. recreate the demo databases (tarifa_demo in PostgreSQL and ClickHouse)
#   2. apply the demo catalog (deploy/demo/catalog.yaml: resellers, customers,
#      vendors, international decks of ~24k codes)
#   3. generate CDRs into a fresh Kafka topic (1M by default: DEMO_CDRS)
#   4. run one worker (it draws its own progress line) until the topic is drained
#   5. print the summary and mismatch reports and the clients' balances
#   6. a bill run: the dry run (mismatches first), the run, an invoice
#      approved, its PDF read back, the fixed balances
#
# Only the demo's own databases are touched (DEMO_DB, default tarifa_demo);
# the stack must be up (make up).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin/tarifa}
CDRS=${DEMO_CDRS:-1000000}
PG_BASE=${TARIFA_PG_DSN:-postgres://postgres@127.0.0.1:55432/tarifa?sslmode=disable}
CH_BASE=${TARIFA_CLICKHOUSE_DSN:-clickhouse://127.0.0.1:19000/tarifa}
DB=${DEMO_DB:-tarifa_demo}
export TARIFA_PG_DSN=${PG_BASE/\/tarifa\?/\/$DB?}
export TARIFA_CLICKHOUSE_DSN=${CH_BASE%/*}/$DB
RUN=$(date +%s)
TOPIC=cdrs-demo-$RUN
METRICS=127.0.0.1:${DEMO_METRICS_PORT:-9465}
START=$(date -u -d 'yesterday' +%Y-%m-%d)
END=$(date -u -d 'tomorrow' +%Y-%m-%d)
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p 55432 -U postgres)

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. fresh demo databases: $DB (PostgreSQL and ClickHouse)"
"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
clickhouse-client --host 127.0.0.1 --port 19000 --query "DROP DATABASE IF EXISTS $DB"
$BIN migrate

step "2. the demo catalog (deploy/demo/catalog.yaml)"
$BIN catalog apply -f deploy/demo/catalog.yaml
"${PSQL[@]}" -d "$DB" -c "SELECT t.name AS rate_table, t.currency, count(r.id) AS rates, count(DISTINCT r.code) AS codes
  FROM rate_tables t LEFT JOIN rates r ON r.rate_table_id = t.id GROUP BY t.id ORDER BY t.name"

step "3. $CDRS CDRs from simulated switches into Kafka topic $TOPIC (1% duplicates, 0.1% malformed)"
$BIN gen --kafka --topic "$TOPIC" --count "$CDRS" --seed "$RUN" --start "$START" --span 24h --progress

step "4. one worker rates both legs of every call; ClickHouse gets xDRs, PostgreSQL balances (exactly once)"
# The worker draws its own progress line (CDRs consumed, CDRs/s, lag) and
# shows its warnings, such as a prepaid customer's low balance, above it.
# This script only waits, silently, until every CDR is committed.
TARIFA_LOG_LEVEL=${TARIFA_LOG_LEVEL:-warn} $BIN worker --topic "$TOPIC" --group "demo-$RUN" --metrics-addr "$METRICS" \
	--batch-wait 100ms --progress &
WORKER=$!
trap 'kill $WORKER 2>/dev/null || true' EXIT
started=$(date +%s.%N)
while :; do
	done_=$("${PSQL[@]}" -d "$DB" -tA -c "SELECT coalesce(sum(next_offset), 0) FROM consumed_offsets WHERE topic = '$TOPIC'" 2>/dev/null || echo 0)
	[[ $done_ -ge $CDRS ]] && break
	if ! kill -0 $WORKER 2>/dev/null; then
		echo; echo "worker exited early"; exit 1
	fi
	sleep 0.5
done
elapsed=$(awk -v s="$started" -v t="$(date +%s.%N)" 'BEGIN { printf "%.1f", t - s }')
kill -TERM $WORKER && wait $WORKER || true
trap - EXIT
echo "  drained in ${elapsed}s (from worker start, catalog load and group join included)"

step "5a. summary report: rated calls by customer, $START .. $END UTC"
$BIN report summary --from "$START" --to "$END" --tz UTC --by orig_client

step "5b. summary by vendor"
$BIN report summary --from "$START" --to "$END" --tz UTC --by term_client

step "5c. mismatches: what could not be billed, and why"
$BIN report mismatches --from "$START" --to "$END" --tz UTC

step "5d. balances (PostgreSQL view client_balances): live = payments − customer charges + vendor credits"
"${PSQL[@]}" -d "$DB" -c "SELECT client_name, currency, live, fixed, credit, unlimited, available FROM client_balances ORDER BY client_id"

step "5e. exactly once: every CDR once in xdrs FINAL"
clickhouse-client --host 127.0.0.1 --port 19000 --database "$DB" --query \
	"SELECT count() AS xdrs, uniqExact(switch, cdr_id) AS distinct_cdrs, countIf(status = 'rated') AS rated, countIf(status = 'mismatch') AS mismatched FROM xdrs FINAL FORMAT PrettyCompact"

step "6a. bill run, dry: what it would invoice, the mismatched calls first (the customers were invoiced up to the day before the traffic)"
"${PSQL[@]}" -d "$DB" -c "UPDATE clients SET last_invoiced_at = date '$START' - 1 WHERE autoinvoice"
$BIN billrun --dry-run

step "6b. bill run: the drafts (to_verify) of every period closed by now in each customer's timezone"
$BIN billrun
FIRST=$("${PSQL[@]}" -d "$DB" -tA -c "SELECT min(id) FROM invoices")
if [[ -n $FIRST ]]; then
	step "6c. approve invoice $FIRST: numbered, frozen, the fixed balance lowered by its total; its PDF read back"
	$BIN invoice approve "$FIRST"
	$BIN invoice show "$FIRST" --format table | awk 'NR <= 12 || /^(net|tax|total) /'
	$BIN invoice show "$FIRST" --format pdf --out "/tmp/tarifa-demo-invoice-$FIRST.pdf"
	if command -v pdftotext >/dev/null; then pdftotext -layout "/tmp/tarifa-demo-invoice-$FIRST.pdf" - | awk 'NF && n++ < 24 { print "  | " $0 }'; fi
	echo "  PDF: /tmp/tarifa-demo-invoice-$FIRST.pdf"
	$BIN invoice list
	"${PSQL[@]}" -d "$DB" -c "SELECT client_name, live, fixed FROM client_balances WHERE client_id IN (SELECT client_id FROM invoices) ORDER BY client_id"
fi
echo
echo "Try: TARIFA_PG_DSN='$TARIFA_PG_DSN' TARIFA_CLICKHOUSE_DSN='$TARIFA_CLICKHOUSE_DSN' $BIN report summary --from $START --to $END --by code_name"
