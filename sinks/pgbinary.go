package sinks

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The dedupe statements of a batch carry arrays of tens of thousands of
// keys. pgx encodes an array argument element by element through its
// generic codecs, into buffers it grows from a few hundred bytes for every
// statement: that was an eighth of the worker's CPU. binArgs encodes them
// in PostgreSQL's binary format directly, into buffers sized once, and
// execBinary sends them through the connection's extended protocol as they
// are.

// PostgreSQL type OIDs of the parameters the dedupe statements send.
const (
	oidInt4      = 23
	oidText      = 25
	oidFloat8    = 701
	oidInt4Array = 1007
	oidInt8Array = 1016
	oidUUID      = 2950
	oidUUIDArray = 2951
	oidInt8      = 20
)

// binArgs is the parameters of one statement in binary format, in order.
type binArgs struct {
	values [][]byte
	oids   []uint32
}

func (a *binArgs) add(oid uint32, v []byte) {
	a.values = append(a.values, v)
	a.oids = append(a.oids, oid)
}

// arrayHeader starts a one-dimensional array of n elements of type elem
// without nulls (array_send's layout), with room for size more bytes.
func arrayHeader(elem uint32, n, size int) []byte {
	b := make([]byte, 0, 20+size)
	b = binary.BigEndian.AppendUint32(b, 1) // dimensions
	b = binary.BigEndian.AppendUint32(b, 0) // no nulls
	b = binary.BigEndian.AppendUint32(b, elem)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	return binary.BigEndian.AppendUint32(b, 1) // lower bound
}

func (a *binArgs) uuids(keys [][16]byte) {
	b := arrayHeader(oidUUID, len(keys), len(keys)*20)
	for i := range keys {
		b = binary.BigEndian.AppendUint32(b, 16)
		b = append(b, keys[i][:]...)
	}
	a.add(oidUUIDArray, b)
}

func (a *binArgs) int4s(vs []int32) {
	b := arrayHeader(oidInt4, len(vs), len(vs)*8)
	for _, v := range vs {
		b = binary.BigEndian.AppendUint32(b, 4)
		b = binary.BigEndian.AppendUint32(b, uint32(v))
	}
	a.add(oidInt4Array, b)
}

func (a *binArgs) int8s(vs []int64) {
	b := arrayHeader(oidInt8, len(vs), len(vs)*12)
	for _, v := range vs {
		b = binary.BigEndian.AppendUint32(b, 8)
		b = binary.BigEndian.AppendUint64(b, uint64(v))
	}
	a.add(oidInt8Array, b)
}

func (a *binArgs) text(s string) { a.add(oidText, []byte(s)) }

func (a *binArgs) float8(f float64) {
	a.add(oidFloat8, binary.BigEndian.AppendUint64(nil, math.Float64bits(f)))
}

// execBinary runs sql with args on a connection of pg, every parameter and
// result column in binary format, calling row (when not nil) with the
// values of each result row (valid only during the call; nil for NULL).
// Errors are PostgreSQL's, unwrapped (*pgconn.PgError for the server's).
func execBinary(ctx context.Context, pg *pgxpool.Pool, sql string, args *binArgs, row func(values [][]byte) error) (pgconn.CommandTag, error) {
	conn, err := pg.Acquire(ctx)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	defer conn.Release()
	formats := make([]int16, len(args.values))
	for i := range formats {
		formats[i] = 1
	}
	rr := conn.Conn().PgConn().ExecParams(ctx, sql, args.values, args.oids, formats, []int16{1})
	var rowErr error
	for rr.NextRow() {
		if row != nil && rowErr == nil {
			rowErr = row(rr.Values())
		}
	}
	tag, err := rr.Close()
	if err == nil {
		err = rowErr
	}
	return tag, err
}

// Decoders of binary result values.

func binUUID(v []byte) ([16]byte, error) {
	var k [16]byte
	if len(v) != 16 {
		return k, fmt.Errorf("uuid of %d bytes", len(v))
	}
	copy(k[:], v)
	return k, nil
}

func binInt4(v []byte) (int32, error) {
	if len(v) != 4 {
		return 0, fmt.Errorf("int4 of %d bytes", len(v))
	}
	return int32(binary.BigEndian.Uint32(v)), nil
}

func binInt8(v []byte) (int64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("int8 of %d bytes", len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

func binBool(v []byte) (bool, error) {
	if len(v) != 1 {
		return false, fmt.Errorf("bool of %d bytes", len(v))
	}
	return v[0] != 0, nil
}
