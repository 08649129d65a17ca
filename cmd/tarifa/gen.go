package main

import (
	"context"
	"errors"
	"io"
)

// runGen is a placeholder until its work lands.
func runGen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not implemented yet")
}
