package main

import (
	"context"
	"errors"
	"io"
)

// runAPI is a placeholder until its work lands.
func runAPI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not implemented yet")
}
