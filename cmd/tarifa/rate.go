package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/tarifa/tarifa/codedeck"
	"github.com/tarifa/tarifa/ingest"
	"github.com/tarifa/tarifa/rater"
)

const rateSummary = `Price CDR JSON lines against a deck CSV alone (no accounts, no servers) and
write one JSON line per CDR, in input order (docs/DESIGN.md "Offline rating").
Blank input lines are skipped and produce no output; any other line gets
exactly one output line. Exit status 0 whenever the inputs could be read,
whatever the CDRs hold; a bad deck exits 1 with its line numbers, before
any output.`

// Sizes of the rate pipeline. Memory is bounded by rateBatches batches of
// at most rateBatchBytes input bytes each, whatever the input length.
const (
	rateBatchLines = 2048
	rateBatchBytes = 512 << 10
	maxLineBytes   = 1 << 20
)

func runRate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("rate",
		"rate --deck DECK.csv [--profiles P.json] [--timezone TZ] [--bill-by setup|connect|disconnect] [--in FILE|-] [--out FILE|-]",
		rateSummary, stderr)
	deckPath := fs.String("deck", "", "rate deck CSV (required)")
	profilesPath := fs.String("profiles", "", "time-profile JSON (default: only the built-in profile all)")
	tz := fs.String("timezone", "UTC", "IANA timezone time profiles are read in")
	billByName := fs.String("bill-by", "disconnect", "event time of a call: setup, connect or disconnect")
	inPath := fs.String("in", "-", "CDR JSON lines to read, - for stdin")
	outPath := fs.String("out", "-", "file to write the rated lines to, - for stdout")
	progress := fs.Bool("progress", isTerminal(stderr), "show a progress line on stderr; default on when stderr is a terminal")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *deckPath == "" {
		fmt.Fprintln(stderr, "--deck is required")
		fs.Usage()
		return errUsage
	}
	billBy, err := rater.ParseBillBy(*billByName)
	if err != nil {
		fmt.Fprintln(stderr, err)
		fs.Usage()
		return errUsage
	}
	loc, err := time.LoadLocation(*tz)
	if err != nil {
		return fmt.Errorf("timezone %q: %w", *tz, err)
	}
	deck, err := loadDeck(*deckPath, *profilesPath)
	if err != nil {
		return err
	}

	in := io.Reader(os.Stdin)
	if *inPath != "-" {
		f, err := os.Open(*inPath)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	out := stdout
	var outFile *os.File
	if *outPath != "-" {
		if outFile, err = os.Create(*outPath); err != nil {
			return err
		}
		defer outFile.Close()
		out = outFile
	}
	r := &offlineRater{deck: deck, billBy: billBy, loc: loc}
	status := newStatusLine(stderr, *progress)
	pctx, stopProgress := context.WithCancel(ctx)
	defer stopProgress()
	progressDone := make(chan struct{})
	began := time.Now()
	go func() {
		defer close(progressDone)
		status.every(pctx, 250*time.Millisecond, func() string {
			n := r.written.Load()
			return fmt.Sprintf("rated %s CDRs  %s CDRs/s", thousands(n), perSecond(n, time.Since(began)))
		})
	}()
	err = r.stream(ctx, in, out, runtime.GOMAXPROCS(0))
	stopProgress()
	<-progressDone
	if err != nil {
		return err
	}
	if outFile != nil {
		return outFile.Close()
	}
	return nil
}

// loadDeck parses and builds a deck, naming every rejected row with its line.
func loadDeck(deckPath, profilesPath string) (*codedeck.Deck, error) {
	var profiles *codedeck.Profiles
	if profilesPath != "" {
		f, err := os.Open(profilesPath)
		if err != nil {
			return nil, err
		}
		profiles, err = codedeck.ParseProfiles(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("profiles %s: %w", profilesPath, err)
		}
	}
	f, err := os.Open(deckPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rows, err := codedeck.ParseCSV(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return nil, deckError(deckPath, err)
	}
	deck, err := codedeck.Build(rows, profiles)
	if err != nil {
		return nil, deckError(deckPath, err)
	}
	return deck, nil
}

// deckError lists rejected rows one per line, at most 50 of them.
func deckError(path string, err error) error {
	var pe *codedeck.ParseError
	if !errors.As(err, &pe) {
		return fmt.Errorf("deck %s: %w", path, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "deck %s: %d rows rejected", path, len(pe.Rows))
	profiles := false
	for i, r := range pe.Rows {
		profiles = profiles || strings.HasPrefix(r.Reason, "unknown time_profile")
		if i == 50 {
			fmt.Fprintf(&b, "\n  … and %d more", len(pe.Rows)-i)
			break
		}
		b.WriteString("\n  ")
		b.WriteString(r.String())
	}
	if profiles {
		b.WriteString("\n(time profiles other than all come from --profiles FILE; deploy/demo/profiles.json has the demo decks')")
	}
	return errors.New(b.String())
}

// offlineRater prices CDR lines against one deck with one client's settings.
type offlineRater struct {
	deck    *codedeck.Deck
	billBy  rater.BillBy
	loc     *time.Location
	written atomic.Int64 // lines written so far, for the progress line
}

// batch is a run of input lines and, once rated, their output.
type batch struct {
	in    []byte
	lines []lineRef
	out   []byte
	done  chan struct{} // receives once the batch is rated
}

type lineRef struct {
	start, end int
	tooLong    bool
}

// stream rates in to out in input order. The calling goroutine reads,
// workers rate whole batches, one goroutine writes batches in order; a
// fixed pool of batches bounds memory and applies backpressure.
func (o *offlineRater) stream(ctx context.Context, in io.Reader, out io.Writer, workers int) error {
	if workers < 1 {
		workers = 1
	}
	nBatches := 2*workers + 2
	free := make(chan *batch, nBatches)
	for range nBatches {
		free <- &batch{done: make(chan struct{}, 1)}
	}
	work := make(chan *batch, nBatches)
	order := make(chan *batch, nBatches)

	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			var c ingest.CDR
			for b := range work {
				b.out = b.out[:0]
				for _, l := range b.lines {
					b.out = o.rateLine(b.out, b.in[l.start:l.end], l.tooLong, &c)
				}
				b.done <- struct{}{}
			}
		})
	}
	var writeFailed atomic.Bool
	werr := make(chan error, 1)
	go func() {
		bw := bufio.NewWriterSize(out, 256<<10)
		var err error
		for b := range order {
			<-b.done
			if err == nil {
				if _, err = bw.Write(b.out); err != nil {
					writeFailed.Store(true)
				}
				o.written.Add(int64(len(b.lines)))
			}
			free <- b
		}
		if err == nil {
			err = bw.Flush()
		}
		werr <- err
	}()

	rerr := o.read(ctx, in, free, work, order, &writeFailed)
	close(work)
	close(order)
	wg.Wait()
	return errors.Join(rerr, <-werr)
}

// read splits in into batches of lines and hands them to work and order.
func (o *offlineRater) read(ctx context.Context, in io.Reader, free, work, order chan *batch, writeFailed *atomic.Bool) error {
	br := bufio.NewReaderSize(in, maxLineBytes)
	if bom, _ := br.Peek(3); string(bom) == "\uFEFF" {
		_, _ = br.Discard(3) // a byte-order mark some editors put first: no part of the first CDR
	}
	var b *batch
	next := func() error {
		select {
		case b = <-free:
			b.in, b.lines = b.in[:0], b.lines[:0]
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	send := func() {
		order <- b
		work <- b
		b = nil
	}
	if err := next(); err != nil {
		return err
	}
	for {
		line, err := br.ReadSlice('\n')
		tooLong := false
		if errors.Is(err, bufio.ErrBufferFull) {
			// Skip the rest of an over-long line; it still gets its output line.
			tooLong, line = true, nil
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
		}
		if err != nil && !errors.Is(err, io.EOF) {
			if b != nil && len(b.lines) > 0 {
				send()
			}
			return fmt.Errorf("read cdrs: %w", err)
		}
		if tooLong || !blank(line) {
			start := len(b.in)
			b.in = append(b.in, line...)
			b.lines = append(b.lines, lineRef{start: start, end: len(b.in), tooLong: tooLong})
		}
		if err != nil { // io.EOF
			break
		}
		if len(b.lines) >= rateBatchLines || len(b.in) >= rateBatchBytes {
			send()
			if writeFailed.Load() {
				return nil // the writer reports its error
			}
			if err := next(); err != nil {
				return err
			}
		}
	}
	if len(b.lines) > 0 {
		send()
	} else {
		free <- b
	}
	return nil
}

func blank(line []byte) bool {
	for _, c := range line {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// rateLine appends the output line of one CDR line to dst.
func (o *offlineRater) rateLine(dst, line []byte, tooLong bool, c *ingest.CDR) []byte {
	if tooLong {
		return appendMismatch(dst, "", rater.ReasonMalformed, "line longer than "+strconv.Itoa(maxLineBytes)+" bytes")
	}
	if err := ingest.Decode(line, c); err != nil {
		detail := err.Error()
		var me *ingest.MalformedError
		if errors.As(err, &me) {
			detail = me.Detail
		}
		return appendMismatch(dst, c.ID, rater.ReasonMalformed, detail)
	}
	number, problem := ingest.CheckNumber(c.Dst)
	if problem != "" {
		return appendMismatch(dst, c.ID, rater.ReasonMalformed, problem)
	}
	p := rater.PriceCall(o.deck, number, c, o.billBy, o.loc)
	if p.Rate == nil {
		return appendMismatch(dst, c.ID, p.Reason, p.Detail)
	}
	dst = append(dst, `{"id":`...)
	dst = appendJSONString(dst, c.ID)
	dst = append(dst, `,"status":"rated","code":`...)
	dst = appendJSONString(dst, p.Rate.Code)
	dst = append(dst, `,"code_name":`...)
	dst = appendJSONString(dst, p.Rate.CodeName)
	dst = append(dst, `,"rate":"`...)
	dst = append(dst, p.Rate.RateString()...)
	dst = append(dst, `","event_time":"`...)
	dst = p.EventTime.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","billed_seconds":`...)
	dst = strconv.AppendInt(dst, p.BilledSeconds, 10)
	dst = append(dst, `,"cost":"`...)
	dst = appendMicro(dst, p.CostMicro)
	return append(dst, "\"}\n"...)
}

func appendMismatch(dst []byte, id string, reason rater.Reason, detail string) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendJSONString(dst, id)
	dst = append(dst, `,"status":"mismatch","reason":"`...)
	dst = append(dst, reason...)
	dst = append(dst, '"')
	if detail != "" {
		dst = append(dst, `,"detail":`...)
		dst = appendJSONString(dst, detail)
	}
	return append(dst, "}\n"...)
}

// appendMicro appends millionths as a decimal with exactly 6 places.
func appendMicro(dst []byte, micro int64) []byte {
	u := uint64(micro)
	if micro < 0 {
		dst = append(dst, '-')
		u = uint64(-micro)
	}
	dst = strconv.AppendUint(dst, u/1e6, 10)
	dst = append(dst, '.')
	frac := u % 1e6
	for div := uint64(1e5); div > 0; div /= 10 {
		dst = append(dst, byte('0'+frac/div%10))
	}
	return dst
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
