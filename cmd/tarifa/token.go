package main

import (
	"context"
	"errors"
	"io"
)

// runToken is a placeholder until its work lands.
func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not implemented yet")
}
