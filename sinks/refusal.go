package sinks

import (
	"errors"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tarifa/tarifa/rater"
)

// A sink's failure is either an outage (the server did not answer, or
// cannot take anything right now: retry the same batch) or a refusal (the
// server answered that it will not store what the batch holds: retrying
// cannot help, rater.ErrRefused, and the worker isolates the messages that
// cause it). When in doubt a ClickHouse error counts as a refusal: the
// worker's isolation ends in a single quarantined message, and a refusal of
// even that is retried as an outage, so a misjudged outage costs a few
// smaller commits while a misjudged refusal would stop a partition for good.

// refused marks err as a refusal of the batch's content.
func refused(err error) error { return fmt.Errorf("%w: %w", rater.ErrRefused, err) }

// clickHouseOutage lists the ClickHouse server error codes that say the
// server cannot take an insert now, whatever it holds.
var clickHouseOutage = map[int32]bool{
	3: true, 16: true, 32: true, 33: true, 47: true, 60: true, 74: true, 75: true, 76: true, 81: true,
	100: true, 101: true, 102: true, 159: true, 164: true, 173: true, 192: true, 193: true, 201: true,
	202: true, 203: true, 209: true, 210: true, 225: true, 236: true, 241: true, 242: true, 243: true,
	252: true, 279: true, 285: true, 286: true, 319: true, 394: true, 497: true, 516: true, 999: true, 1000: true,
}

// clickHouseErr wraps an error of a ClickHouse write: a server exception
// whose code is not an outage's is a refusal (a value out of range, a type
// the column cannot take); anything else — a connection refused or lost, a
// timeout — is an outage.
func clickHouseErr(err error) error {
	var ex *clickhouse.Exception
	if errors.As(err, &ex) && !clickHouseOutage[ex.Code] {
		return refused(err)
	}
	return err
}

// postgresRefusal reports whether a PostgreSQL error refuses the data
// rather than the moment: class 22 (data exception: a numeric overflow, an
// invalid byte sequence), 23 (integrity constraint; a foreign-key
// violation is rater.ErrStale, handled apart) and 54 (program limit
// exceeded: a statement too large, which a smaller batch avoids).
func postgresRefusal(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || len(pe.Code) < 2 {
		return false
	}
	switch pe.Code[:2] {
	case "22", "23", "54":
		return true
	}
	return false
}
