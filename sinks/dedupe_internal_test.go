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

// TestSortRefs checks the bucketed sort against a stable comparison sort in
// the same order: repeated keys keep batch order, for batches on both sides
// of the small-batch cut-off.
func TestSortRefs(t *testing.T) {
	for _, n := range []int{0, 1, 7, 1000, 1 << 10, 5000, 50_000} {
		refs := batchRefs(n)
		want := slices.Clone(refs)
		slices.SortStableFunc(want, byKey)
		if got := sortRefs(refs); !slices.Equal(got, want) {
			t.Errorf("n=%d: sortRefs differs from a stable sort by key", n)
		}
	}
}

// TestFind finds every key of a sorted batch, in order and out of order.
func TestFind(t *testing.T) {
	refs := sortRefs(batchRefs(5000))
	at := 0
	for i, r := range refs {
		if i > 0 && byKey(refs[i-1], r) == 0 {
			continue // find returns the first of equal keys
		}
		if at = find(refs, r.key(), at); at != i {
			t.Fatalf("in order: key %d found at %d", i, at)
		}
	}
	for _, i := range []int{4000, 10, 2500, 0} {
		if j := find(refs, refs[i].key(), 3000); byKey(refs[j], refs[i]) != 0 {
			t.Fatalf("out of order: key %d found at %d", i, j)
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
