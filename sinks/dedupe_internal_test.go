package sinks

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"testing"
)

// fnvKey is a dedupe key as the rater makes it: FNV-128a of switch and id.
func fnvKey(id string) (k [16]byte) {
	h := fnv.New128a()
	h.Write([]byte("sw1\x00" + id))
	h.Sum(k[:0])
	return k
}

// batchRefs is n refs of sequential call ids (as switches number them),
// every tenth a repeat of an earlier one.
func batchRefs(n int) []keyRef {
	rng := rand.New(rand.NewPCG(1, 2))
	refs := make([]keyRef, n)
	for i := range refs {
		id := i
		if i > 0 && rng.IntN(10) == 0 {
			id = rng.IntN(i)
		}
		refs[i] = newRef(fnvKey(fmt.Sprintf("call-%d", id)), int32(i), false)
	}
	return refs
}

// TestSortRefs checks the radix sort against a stable comparison sort in
// the same order: repeated keys keep batch order, for batches on both sides
// of the small-batch cut-off, and keys whose first halves are equal (all
// but never with real keys) are ordered by their second halves.
func TestSortRefs(t *testing.T) {
	twins := func(n int) []keyRef {
		refs := batchRefs(n)
		for i := 1; i < len(refs); i += 3 {
			refs[i].hi, refs[i].lo = refs[i-1].hi, refs[i-1].lo^uint64(i)*0x9e3779b97f4a7c15
		}
		return refs
	}
	for _, refs := range [][]keyRef{batchRefs(0), batchRefs(1), batchRefs(7), batchRefs(255), batchRefs(256), batchRefs(1000),
		batchRefs(5000), batchRefs(50_000), twins(300), twins(5000)} {
		want := slices.Clone(refs)
		slices.SortStableFunc(want, byKey)
		if got := sortRefs(refs); !slices.Equal(got, want) {
			t.Errorf("n=%d: sortRefs differs from a stable sort by key", len(refs))
		}
	}
}

// TestKeyOrder checks that the key order is PostgreSQL's order of uuids
// (bytewise), which the claims and look-ups rely on to visit the index in
// order.
func TestKeyOrder(t *testing.T) {
	refs := sortRefs(batchRefs(5000))
	for i := 1; i < len(refs); i++ {
		a, b := refs[i-1].key(), refs[i].key()
		if string(a[:]) > string(b[:]) {
			t.Fatalf("key %d sorts before key %d but is bytewise greater", i-1, i)
		}
	}
}

// TestLocate finds the first ref of every key of a sorted batch.
func TestLocate(t *testing.T) {
	refs := sortRefs(batchRefs(5000))
	for i, r := range refs {
		want := i
		for want > 0 && byKey(refs[want-1], r) == 0 {
			want--
		}
		if got := locate(refs, r.key()); got != want {
			t.Fatalf("key %d located at %d, want %d", i, got, want)
		}
	}
}

func BenchmarkSortRefs(b *testing.B) {
	refs := batchRefs(50_000)
	in := make([]keyRef, len(refs))
	for b.Loop() {
		copy(in, refs)
		sortRefs(in)
	}
}
