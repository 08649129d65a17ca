package rater

import (
	"math/rand/v2"
	"testing"
)

// TestMovesIsDeltas: an XDR moves a balance exactly when Deltas reports a
// movement, over every combination of what decides it (status, malformed,
// costs, the term side's reason and client).
func TestMovesIsDeltas(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	pick := func(vs ...int64) int64 { return vs[rng.IntN(len(vs))] }
	for i := 0; i < 20000; i++ {
		x := &XDR{Malformed: rng.IntN(4) == 0}
		x.Rating.Status = []string{"rated", "mismatch", ""}[rng.IntN(3)]
		x.Rating.Orig = Leg{ClientID: pick(0, 1, 2), CostMicro: pick(0, 1, -5, 1_000_000)}
		x.Rating.Term = Leg{ClientID: pick(0, 10), CostMicro: pick(0, 3, -2), Reason: []Reason{ReasonNone, ReasonUnknownDestination}[rng.IntN(2)]}
		moved := false
		x.Deltas(func(int64, int64) { moved = true })
		if x.Moves() != moved {
			t.Fatalf("%+v: Moves() = %v, Deltas moved = %v", x.Rating, x.Moves(), moved)
		}
	}
}
