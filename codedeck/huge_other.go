//go:build !linux

package codedeck

import "unsafe"

// hugeCopy is a no-op where transparent huge pages are not available.
func hugeCopy(nodes []node) []node { return nodes }

// adviseHuge is a no-op where transparent huge pages are not available.
func adviseHuge(unsafe.Pointer, int) {}
