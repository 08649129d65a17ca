package main

import (
	"context"
	"errors"
	"io"
)

// runCatalog is a placeholder until its work lands.
func runCatalog(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not implemented yet")
}
