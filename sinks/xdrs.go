package sinks

import (
	"context"
	"fmt"
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
	currency, version)`

const insertRaw = `INSERT INTO cdrs_raw (cdr_id, switch, setup_time, connect_time, disconnect_time, raw, received_at,
	kafka_partition, kafka_offset, version)`

// writeClickHouse writes the raw CDRs and xDRs of one or more batches,
// skipping duplicates, column by column (one allocation per column, not per
// value), as one insert per table.
func writeClickHouse(ctx context.Context, ch driver.Conn, parts [][]rater.XDR) error {
	n := 0
	for _, xs := range parts {
		for i := range xs {
			if !xs[i].Duplicate() {
				n++
			}
		}
	}
	if n == 0 {
		return nil
	}
	// The two inserts go out side by side: each waits mostly on the server.
	rawErr := make(chan error, 1)
	go func() { rawErr <- sendRaw(ctx, ch, parts, n) }()
	xerr := sendXDRs(ctx, ch, parts, n)
	rerr := <-rawErr
	if xerr != nil {
		return fmt.Errorf("insert xdrs: %w", xerr)
	}
	if rerr != nil {
		return fmt.Errorf("insert cdrs_raw: %w", rerr)
	}
	return nil
}

// WriteXDRs writes xDRs (rerating and tests use it; the worker commits
// through Store).
func WriteXDRs(ctx context.Context, ch driver.Conn, xs []rater.XDR) error {
	return writeClickHouse(ctx, ch, [][]rater.XDR{xs})
}

func sendXDRs(ctx context.Context, ch driver.Conn, parts [][]rater.XDR, n int) error {
	var (
		ids, switches, dsts, srcIPs                                   = mk[string](n), mk[string](n), mk[string](n), mk[string](n)
		statuses, reasons, details, origCodes, origNames, termReasons = mk[string](n), mk[string](n), mk[string](n), mk[string](n), mk[string](n), mk[string](n)
		termCodes, termNames, currencies                              = mk[string](n), mk[string](n), mk[string](n)
		eventTimes, setupTimes, disconnectTimes                       = mk[time.Time](n), mk[time.Time](n), mk[time.Time](n)
		connectTimes                                                  = mk[*time.Time](n)
		durations, resellers, origClients, origAccounts, termClients  = mk[uint64](n), mk[uint64](n), mk[uint64](n), mk[uint64](n), mk[uint64](n)
		termAccounts, versions                                        = mk[uint64](n), mk[uint64](n)
		origRates, origCosts, termRates, termCosts                    = mk[decimal.Decimal](n), mk[decimal.Decimal](n), mk[decimal.Decimal](n), mk[decimal.Decimal](n)
		origBilled, termBilled                                        = mk[uint32](n), mk[uint32](n)
	)
	zero := decimal.Decimal{}
	for x := range live(parts) {
		c, r := &x.CDR, &x.Rating
		ids = append(ids, x.ID)
		switches = append(switches, c.Switch)
		dsts = append(dsts, c.Dst)
		srcIPs = append(srcIPs, c.SrcIP)
		statuses = append(statuses, r.Status)
		reasons = append(reasons, string(r.Reason))
		details = append(details, x.Detail)
		event := r.Orig.EventTime
		if event.IsZero() {
			event = c.DisconnectTime
		}
		eventTimes = append(eventTimes, event)
		setupTimes = append(setupTimes, c.SetupTime)
		disconnectTimes = append(disconnectTimes, c.DisconnectTime)
		if c.ConnectTime.IsZero() {
			connectTimes = append(connectTimes, nil)
		} else {
			connectTimes = append(connectTimes, &c.ConnectTime)
		}
		durations = append(durations, uint64(c.Duration/time.Millisecond))
		resellers = append(resellers, uint64(r.ResellerID))
		versions = append(versions, x.Version)

		origClients = append(origClients, uint64(r.Orig.ClientID))
		origAccounts = append(origAccounts, uint64(r.Orig.AccountID))
		currencies = append(currencies, r.Orig.Currency)
		if o := r.Orig.Rate; o != nil {
			origCodes, origNames, origRates = append(origCodes, o.Code), append(origNames, o.CodeName), append(origRates, o.Rate)
		} else {
			origCodes, origNames, origRates = append(origCodes, ""), append(origNames, ""), append(origRates, zero)
		}
		origBilled = append(origBilled, uint32(r.Orig.BilledSeconds))
		origCosts = append(origCosts, Decimal(r.Orig.CostMicro))

		termClients = append(termClients, uint64(r.Term.ClientID))
		termAccounts = append(termAccounts, uint64(r.Term.AccountID))
		termReasons = append(termReasons, string(r.Term.Reason))
		if t := r.Term.Rate; t != nil {
			termCodes, termNames, termRates = append(termCodes, t.Code), append(termNames, t.CodeName), append(termRates, t.Rate)
		} else {
			termCodes, termNames, termRates = append(termCodes, ""), append(termNames, ""), append(termRates, zero)
		}
		termBilled = append(termBilled, uint32(r.Term.BilledSeconds))
		termCosts = append(termCosts, Decimal(r.Term.CostMicro))
	}
	batch, err := ch.PrepareBatch(ctx, insertXDRs)
	if err != nil {
		return err
	}
	defer batch.Abort() //nolint:errcheck // a no-op after Send
	cols := []any{ids, switches, eventTimes, setupTimes, connectTimes, disconnectTimes, durations, dsts,
		srcIPs, statuses, reasons, details, resellers,
		origClients, origAccounts, origCodes, origNames, origRates, origBilled, origCosts,
		termClients, termAccounts, termReasons, termCodes, termNames, termRates, termBilled, termCosts,
		currencies, versions}
	for i, col := range cols {
		if err := batch.Column(i).Append(col); err != nil {
			return fmt.Errorf("column %d: %w", i, err)
		}
	}
	return batch.Send()
}

func sendRaw(ctx context.Context, ch driver.Conn, parts [][]rater.XDR, n int) error {
	ids, switches, raws := mk[string](n), mk[string](n), mk[string](n)
	setups, disconnects, received := mk[time.Time](n), mk[time.Time](n), mk[time.Time](n)
	connects := mk[*time.Time](n)
	partitions, offsets, versions := mk[int32](n), mk[int64](n), mk[uint64](n)
	for x := range live(parts) {
		ids = append(ids, x.ID)
		switches = append(switches, x.CDR.Switch)
		// The message bytes are never written after they arrive: share them.
		raws = append(raws, unsafe.String(unsafe.SliceData(x.Raw), len(x.Raw)))
		setups = append(setups, x.CDR.SetupTime)
		disconnects = append(disconnects, x.CDR.DisconnectTime)
		if x.CDR.ConnectTime.IsZero() {
			connects = append(connects, nil)
		} else {
			connects = append(connects, &x.CDR.ConnectTime)
		}
		rcv := x.Received
		if rcv.IsZero() {
			rcv = time.Now().UTC()
		}
		received = append(received, rcv)
		partitions = append(partitions, int32(x.Partition))
		offsets = append(offsets, x.Offset)
		versions = append(versions, x.Version)
	}
	batch, err := ch.PrepareBatch(ctx, insertRaw)
	if err != nil {
		return err
	}
	defer batch.Abort() //nolint:errcheck // a no-op after Send
	for i, col := range []any{ids, switches, setups, connects, disconnects, raws, received, partitions, offsets, versions} {
		if err := batch.Column(i).Append(col); err != nil {
			return fmt.Errorf("column %d: %w", i, err)
		}
	}
	return batch.Send()
}

func mk[T any](n int) []T { return make([]T, 0, n) }

// live yields the XDRs of parts that are not duplicates, in order.
func live(parts [][]rater.XDR) func(yield func(*rater.XDR) bool) {
	return func(yield func(*rater.XDR) bool) {
		for _, xs := range parts {
			for i := range xs {
				if !xs[i].Duplicate() && !yield(&xs[i]) {
					return
				}
			}
		}
	}
}
