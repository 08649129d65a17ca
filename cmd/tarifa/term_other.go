//go:build !linux

package main

import "io"

// isTerminal reports whether w is a terminal; off Linux it says no, and a
// progress line appears only with --progress.
func isTerminal(io.Writer) bool { return false }
