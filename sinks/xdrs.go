package sinks

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/rater"
)

const insertXDRs = `INSERT INTO xdrs (cdr_id, switch, event_time, setup_time, connect_time, disconnect_time, duration_ms, dst,
	src_ip, status, reason, detail, reseller_id,
	orig_client_id, orig_account_id, orig_code, orig_code_name, orig_rate, orig_billed_seconds, orig_cost,
	term_client_id, term_account_id, term_reason, term_code, term_code_name, term_rate, term_billed_seconds, term_cost,
	currency, version,
	orig_currency, term_currency, ani, src_user, term_ip, term_user, sip_code, cause)`

const insertRaw = `INSERT INTO cdrs_raw (cdr_id, switch, setup_time, connect_time, disconnect_time, raw, received_at,
	kafka_partition, kafka_offset, version, duplicate_of)`

// chunkRows is how many rows go to ClickHouse in one block. The driver's
// column buffers are reset, not freed, after each block, so an insert of any
// size reuses one chunk's worth of memory instead of growing (and copying)
// buffers the size of the whole insert. But every insert starts with new
// buffers that grow, by doubling, to one chunk: at 8192 rows that growth
// was 7 % of the worker's CPU, at 1024 rows 2 %, and the extra blocks cost
// nothing measurable. The server squashes the blocks of one INSERT into one
// part. (Blocks of a whole month each, with squashing switched off
// (min_insert_block_size_rows=1), spared ClickHouse the squash and the split
// by partition, but the driver's buffers then grew to the size of the insert
// for every insert: 2.3 GB allocated per million CDRs, which cost the
// worker more than ClickHouse saved.)
const chunkRows = 1024

// writeClickHouse writes the raw CDRs and xDRs of one or more batches,
// skipping duplicates, as one insert per table, in the tables' order,
// gathering blocks in xc and rc and ordering rows in o (all kept by the
// caller for the next insert), an insert per month of setup time in loc.
// An error that refuses the data rather than
// the moment wraps rater.ErrRefused (see clickHouseErr).
func writeClickHouse(ctx context.Context, ch driver.Conn, loc *time.Location, parts []writePart, xc *xdrCols, rc *rawCols, o *rowOrder) error {
	rows, nRaw := o.sort(parts)
	defer o.reset()
	if len(rows) == 0 {
		return nil
	}
	// The two inserts go out side by side: each waits mostly on the server.
	rawErr := make(chan error, 1)
	if nRaw > 0 {
		go func() { rawErr <- send(ctx, ch, insertRaw, loc, rows, true, rc) }()
	} else {
		rawErr <- nil
	}
	xerr := send(ctx, ch, insertXDRs, loc, rows, false, xc)
	rerr := <-rawErr
	if xerr != nil {
		return clickHouseErr(fmt.Errorf("insert xdrs: %w", xerr))
	}
	if rerr != nil {
		return clickHouseErr(fmt.Errorf("insert cdrs_raw: %w", rerr))
	}
	return nil
}

// rowRef is one live xDR of an insert.
type rowRef struct {
	sec    int64  // setup time in whole seconds, as the tables' DateTime holds it
	sw, id string // the xDR's switch and id, here to spare a sort the trip to x
	x      *rater.XDR
	n      int  // place among the insert's rows as given
	raw    bool // its raw CDR goes too
}

// rowOrder puts the live xDRs of an insert in the tables' order (ORDER BY
// (setup_time, switch, cdr_id)): ClickHouse checks whether the block it
// gathered from an insert is sorted before it sorts it, and a sorted one
// spares it the sort and the permuted copy of every column (a third of the
// page faults of its inserts).
type rowOrder struct{ rows, tmp []rowRef }

// sort returns the live xDRs of parts by setup second, switch and id (the
// order ClickHouse compares: strings byte by byte, as Go does), and how
// many of them carry their raw CDR. Rows of one CDR keep the order of
// parts: of equal versions, ReplacingMergeTree keeps the last.
func (o *rowOrder) sort(parts []writePart) ([]rowRef, int) {
	nRaw := 0
	for _, p := range parts {
		for i := range p.xs {
			if x := &p.xs[i]; !x.Duplicate() {
				o.rows = append(o.rows, rowRef{sec: x.CDR.SetupTime.Unix(), sw: x.CDR.Switch, id: x.ID, x: x, n: len(o.rows), raw: p.raw})
				if p.raw {
					nRaw++
				}
			}
		}
	}
	o.radix()
	return o.rows, nRaw
}

func (o *rowOrder) reset() { o.rows, o.tmp = clear0(o.rows), clear0(o.tmp) }

// radix sorts o.rows by setup second with a stable radix sort (an insert's
// seconds span far less than 2^33; 100,000 rows took 28 ms with a
// comparison sort, whose every step compares strings too), then the rows
// of each second by switch, id and place.
func (o *rowOrder) radix() {
	rows := o.rows
	if len(rows) < 2 {
		return
	}
	lo, hi := rows[0].sec, rows[0].sec
	for i := range rows {
		lo, hi = min(lo, rows[i].sec), max(hi, rows[i].sec)
	}
	if len(rows) < 256 || hi-lo >= 1<<33 {
		slices.SortFunc(rows, compareRows)
		return
	}
	o.tmp = slices.Grow(o.tmp[:0], len(rows))[:len(rows)]
	src, dst := rows, o.tmp
	for shift := 0; (hi-lo)>>shift > 0; shift += 11 {
		var starts [2049]int
		for i := range src {
			starts[(src[i].sec-lo)>>shift&2047+1]++
		}
		for d := 1; d < len(starts); d++ {
			starts[d] += starts[d-1]
		}
		for i := range src {
			d := (src[i].sec - lo) >> shift & 2047
			dst[starts[d]] = src[i]
			starts[d]++
		}
		src, dst = dst, src
	}
	if &src[0] != &rows[0] {
		copy(rows, src)
	}
	for i := 0; i < len(rows); {
		j := i + 1
		for j < len(rows) && rows[j].sec == rows[i].sec {
			j++
		}
		if j-i > 1 {
			slices.SortFunc(rows[i:j], compareRows)
		}
		i = j
	}
}

// compareRows orders rows as the tables do, then by place.
func compareRows(a, b rowRef) int {
	if a.sec != b.sec {
		return cmp.Compare(a.sec, b.sec)
	}
	if c := strings.Compare(a.sw, b.sw); c != 0 {
		return c
	}
	if c := strings.Compare(a.id, b.id); c != 0 {
		return c
	}
	return cmp.Compare(a.n, b.n)
}

// chunk gathers rows of a table's columns.
type chunk interface {
	add(x *rater.XDR)
	len() int
	columns() []any // in the order of the INSERT's column list
	reset()
}

// send inserts rows (only those with their raw CDR when raw is set) into
// one table, one INSERT per month of setup time in loc (the server's
// timezone, whose months partition the tables): ClickHouse splits a block
// that spans partitions by copying every column, and an insert of live
// traffic often does (the calls of last month's last hours, a stray old or
// broken CDR). Rows are in order, so each month's are together.
func send(ctx context.Context, ch driver.Conn, query string, loc *time.Location, rows []rowRef, raw bool, c chunk) error {
	for len(rows) > 0 {
		end, n, j := nextMonth(rows[0].sec, loc), 0, 0
		for ; j < len(rows) && rows[j].sec < end; j++ {
			if !raw || rows[j].raw {
				n++
			}
		}
		if n > 0 {
			if err := sendMonth(ctx, ch, query, rows[:j], raw, c); err != nil {
				return err
			}
		}
		rows = rows[j:]
	}
	return nil
}

// nextMonth is the first second of the month after the one holding sec, in loc.
func nextMonth(sec int64, loc *time.Location) int64 {
	t := time.Unix(sec, 0).In(loc)
	return time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, loc).Unix()
}

// sendMonth inserts rows as one INSERT, chunkRows at a time; it leaves c
// empty.
func sendMonth(ctx context.Context, ch driver.Conn, query string, rows []rowRef, raw bool, c chunk) error {
	defer c.reset()
	batch, err := ch.PrepareBatch(ctx, query)
	if err != nil {
		return err
	}
	defer batch.Abort() //nolint:errcheck // a no-op after Send
	flush := func() error {
		for i, col := range c.columns() {
			if err := batch.Column(i).Append(col); err != nil {
				// The driver checks each value against its column's type
				// (a DateTime outside 1970–2105, say): the data's fault.
				return refused(fmt.Errorf("column %d: %w", i, err))
			}
		}
		c.reset()
		return nil
	}
	for i := range rows {
		if raw && !rows[i].raw {
			continue
		}
		c.add(rows[i].x)
		if c.len() < chunkRows {
			continue
		}
		if err := flush(); err != nil {
			return err
		}
		if err := batch.Flush(); err != nil {
			return err
		}
	}
	if err := flush(); err != nil {
		return err
	}
	return batch.Send()
}

// xdrCols is one block of the xdrs table.
type xdrCols struct {
	ids, switches, dsts, srcIPs                                   []string
	statuses, reasons, details, origCodes, origNames, termReasons []string
	termCodes, termNames, currencies                              []string
	origCurrencies, termCurrencies, anis, srcUsers, termIPs       []string
	termUsers                                                     []string
	sipCodes, causes                                              []int64
	eventTimes, setupTimes, disconnectTimes                       []time.Time
	connectTimes                                                  []*time.Time
	durations, resellers, origClients, origAccounts, termClients  []uint64
	termAccounts, versions                                        []uint64
	origRates, origCosts, termRates, termCosts                    []decimal.Decimal
	origBilled, termBilled                                        []uint32
}

func (k *xdrCols) len() int { return len(k.ids) }

func (k *xdrCols) add(x *rater.XDR) {
	c, r := &x.CDR, &x.Rating
	k.ids = append(k.ids, x.ID)
	k.switches = append(k.switches, c.Switch)
	k.dsts = append(k.dsts, c.Dst)
	k.srcIPs = append(k.srcIPs, c.SrcIP)
	k.statuses = append(k.statuses, r.Status)
	k.reasons = append(k.reasons, string(r.Reason))
	k.details = append(k.details, x.Detail)
	event := r.Orig.EventTime
	if event.IsZero() {
		event = c.DisconnectTime
	}
	k.eventTimes = append(k.eventTimes, event)
	k.setupTimes = append(k.setupTimes, c.SetupTime)
	k.disconnectTimes = append(k.disconnectTimes, c.DisconnectTime)
	k.connectTimes = append(k.connectTimes, nullTime(&c.ConnectTime))
	k.durations = append(k.durations, uint64(c.Duration/time.Millisecond))
	k.resellers = append(k.resellers, uint64(r.ResellerID))
	k.versions = append(k.versions, x.Version)

	k.origClients = append(k.origClients, uint64(r.Orig.ClientID))
	k.origAccounts = append(k.origAccounts, uint64(r.Orig.AccountID))
	k.currencies = append(k.currencies, r.Orig.Currency)
	if o := r.Orig.Rate; o != nil {
		k.origCodes, k.origNames, k.origRates = append(k.origCodes, o.Code), append(k.origNames, o.CodeName), append(k.origRates, o.Rate)
	} else {
		k.origCodes, k.origNames, k.origRates = append(k.origCodes, ""), append(k.origNames, ""), append(k.origRates, decimal.Decimal{})
	}
	k.origBilled = append(k.origBilled, uint32(r.Orig.BilledSeconds))
	k.origCosts = append(k.origCosts, Decimal(r.Orig.CostMicro))

	k.termClients = append(k.termClients, uint64(r.Term.ClientID))
	k.termAccounts = append(k.termAccounts, uint64(r.Term.AccountID))
	k.termReasons = append(k.termReasons, string(r.Term.Reason))
	if t := r.Term.Rate; t != nil {
		k.termCodes, k.termNames, k.termRates = append(k.termCodes, t.Code), append(k.termNames, t.CodeName), append(k.termRates, t.Rate)
	} else {
		k.termCodes, k.termNames, k.termRates = append(k.termCodes, ""), append(k.termNames, ""), append(k.termRates, decimal.Decimal{})
	}
	k.termBilled = append(k.termBilled, uint32(r.Term.BilledSeconds))
	k.termCosts = append(k.termCosts, Decimal(r.Term.CostMicro))

	k.origCurrencies = append(k.origCurrencies, r.Orig.Currency)
	k.termCurrencies = append(k.termCurrencies, r.Term.Currency)
	k.anis, k.srcUsers = append(k.anis, c.ANI), append(k.srcUsers, c.SrcUser)
	k.termIPs, k.termUsers = append(k.termIPs, c.TermIP), append(k.termUsers, c.TermUser)
	k.sipCodes, k.causes = append(k.sipCodes, int64(c.SIPCode)), append(k.causes, int64(c.Cause))
}

func (k *xdrCols) columns() []any {
	return []any{k.ids, k.switches, k.eventTimes, k.setupTimes, k.connectTimes, k.disconnectTimes, k.durations, k.dsts,
		k.srcIPs, k.statuses, k.reasons, k.details, k.resellers,
		k.origClients, k.origAccounts, k.origCodes, k.origNames, k.origRates, k.origBilled, k.origCosts,
		k.termClients, k.termAccounts, k.termReasons, k.termCodes, k.termNames, k.termRates, k.termBilled, k.termCosts,
		k.currencies, k.versions,
		k.origCurrencies, k.termCurrencies, k.anis, k.srcUsers, k.termIPs, k.termUsers, k.sipCodes, k.causes}
}

func (k *xdrCols) reset() {
	// Zeroing before truncating lets the strings and times of the
	// previous chunk go; the slices themselves are kept for the next.
	*k = xdrCols{
		ids: clear0(k.ids), switches: clear0(k.switches), dsts: clear0(k.dsts), srcIPs: clear0(k.srcIPs),
		statuses: clear0(k.statuses), reasons: clear0(k.reasons), details: clear0(k.details),
		origCodes: clear0(k.origCodes), origNames: clear0(k.origNames), termReasons: clear0(k.termReasons),
		termCodes: clear0(k.termCodes), termNames: clear0(k.termNames), currencies: clear0(k.currencies),
		eventTimes: clear0(k.eventTimes), setupTimes: clear0(k.setupTimes), disconnectTimes: clear0(k.disconnectTimes),
		connectTimes: clear0(k.connectTimes),
		durations:    k.durations[:0], resellers: k.resellers[:0], origClients: k.origClients[:0],
		origAccounts: k.origAccounts[:0], termClients: k.termClients[:0], termAccounts: k.termAccounts[:0],
		versions:  k.versions[:0],
		origRates: clear0(k.origRates), origCosts: clear0(k.origCosts), termRates: clear0(k.termRates), termCosts: clear0(k.termCosts),
		origBilled: k.origBilled[:0], termBilled: k.termBilled[:0],
		origCurrencies: clear0(k.origCurrencies), termCurrencies: clear0(k.termCurrencies),
		anis: clear0(k.anis), srcUsers: clear0(k.srcUsers), termIPs: clear0(k.termIPs), termUsers: clear0(k.termUsers),
		sipCodes: k.sipCodes[:0], causes: k.causes[:0],
	}
}

// rawCols is one block of the cdrs_raw table.
type rawCols struct {
	ids, switches, raws, dupOf    []string
	setups, disconnects, received []time.Time
	connects                      []*time.Time
	partitions                    []int32
	offsets                       []int64
	versions                      []uint64
}

func (k *rawCols) len() int { return len(k.ids) }

func (k *rawCols) add(x *rater.XDR) {
	k.ids = append(k.ids, x.ID)
	k.switches = append(k.switches, x.CDR.Switch)
	// The message bytes are never written after they arrive: share them.
	k.raws = append(k.raws, unsafe.String(unsafe.SliceData(x.Raw), len(x.Raw)))
	k.setups = append(k.setups, x.CDR.SetupTime)
	k.disconnects = append(k.disconnects, x.CDR.DisconnectTime)
	k.connects = append(k.connects, nullTime(&x.CDR.ConnectTime))
	rcv := x.Received
	if rcv.IsZero() {
		rcv = time.Now().UTC()
	}
	k.received = append(k.received, rcv)
	k.partitions = append(k.partitions, int32(x.Partition))
	k.offsets = append(k.offsets, x.Offset)
	k.versions = append(k.versions, x.Version)
	k.dupOf = append(k.dupOf, x.ConflictOf)
}

func (k *rawCols) columns() []any {
	return []any{k.ids, k.switches, k.setups, k.connects, k.disconnects, k.raws, k.received, k.partitions, k.offsets, k.versions, k.dupOf}
}

func (k *rawCols) reset() {
	*k = rawCols{
		ids: clear0(k.ids), switches: clear0(k.switches), raws: clear0(k.raws), dupOf: clear0(k.dupOf),
		setups: clear0(k.setups), disconnects: clear0(k.disconnects), received: clear0(k.received),
		connects:   clear0(k.connects),
		partitions: k.partitions[:0], offsets: k.offsets[:0], versions: k.versions[:0],
	}
}

// clear0 zeroes s and returns it emptied, capacity kept.
func clear0[T any](s []T) []T {
	clear(s)
	return s[:0]
}

// nullTime is the value of a Nullable(DateTime) column: nil for an absent time.
func nullTime(t *time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return t
}
