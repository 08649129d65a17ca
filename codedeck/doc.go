// Package codedeck holds a rate deck: the dialing codes of one rate table with
// their rates, in an immutable prefix trie.
//
// The layout of the package:
//
//   - csv.go parses the deck CSV contract (DESIGN.md "Rate deck CSV") into
//     Rows, reporting every rejected row with its line number and reason.
//   - profile.go parses the time-profile JSON (DESIGN.md "Time profiles");
//     the profile "all" is built in.
//   - deck.go builds the Deck from Rows and Profiles (from a CSV file or from
//     the catalog's rates table alike) and publishes it through a Holder.
//
// A Deck is built once and never changed, so any number of goroutines may
// read it; a reload builds a new Deck and stores it in the Holder, replacing
// the old one whole while lookups on the old one finish undisturbed.
// Lookup walks the trie along a number and allocates nothing.
//
// Choosing a rate among the candidates is the rater's job (package rater);
// this package only stores the rates of each code grouped by time profile
// and sorted by effective date, with the scaled-integer copies of the money
// fields that the rater's fast path needs.
package codedeck
