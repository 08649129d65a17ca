package codedeck

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugeCopy returns a copy of the trie's nodes in memory the kernel is asked
// to back with transparent huge pages (where THP is set to "madvise", as on
// Debian). A lookup in a large deck touches one node per digit, scattered
// over tens of megabytes: with 4 KiB pages nearly every step also misses the
// TLB. Small decks, or a kernel that says no, keep ordinary pages.
func hugeCopy(nodes []node) []node {
	const huge = 2 << 20
	size := len(nodes) * int(unsafe.Sizeof(node{}))
	if size < 4*huge {
		return nodes
	}
	// Allocate 2 MiB more than needed so the slice can start on a huge-page
	// boundary, and advise before the first touch, so faults get huge pages.
	raw := make([]byte, size+huge)
	off := (huge - int(uintptr(unsafe.Pointer(&raw[0]))%huge)) % huge
	buf := raw[off : off+size]
	_ = unix.Madvise(buf, unix.MADV_HUGEPAGE)
	out := unsafe.Slice((*node)(unsafe.Pointer(&buf[0])), len(nodes))
	copy(out, nodes)
	return out
}

// adviseHuge asks for huge pages for the 2 MiB-aligned interior of a large
// allocation that has not been written yet (Go hands out fresh, untouched
// memory for large objects), so that the first writes fault in huge pages.
// The memory holds pointers, so it must stay Go-allocated; this is advice
// only and changes nothing if the pages are already there.
func adviseHuge(p unsafe.Pointer, size int) {
	const huge = 2 << 20
	if size < 4*huge {
		return
	}
	skip := int((huge - uintptr(p)%huge) % huge)
	n := (size - skip) &^ (huge - 1)
	if n <= 0 {
		return
	}
	_ = unix.Madvise(unsafe.Slice((*byte)(unsafe.Add(p, skip)), n), unix.MADV_HUGEPAGE)
}
