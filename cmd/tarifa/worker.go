package main

import (
	"context"
	"errors"
	"io"
)

// runWorker is a placeholder until its work lands.
func runWorker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not implemented yet")
}
