package sinktest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// JournaledDir returns an empty directory on an ext4 filesystem with a
// journal, removed at cleanup: the temporary directory itself when its
// filesystem has one, else a sparse ext4 image of its own mounted there (as
// root, as deploy/local/stack.sh does for the local stack's ClickHouse).
// ClickHouse 18.16 creates and deletes two files per column for every part;
// on an ext4 without a journal every new file scans past the inodes freed in
// the last minutes, which would make a private server measure slower than
// the stack's.
func JournaledDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if !noJournalExt4(dir) {
		return dir
	}
	img := filepath.Join(dir, "volume.img")
	mnt := filepath.Join(dir, "volume")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range [][]string{
		{"truncate", "-s", "32G", img},
		{"mkfs.ext4", "-q", "-F", img},
		{"mount", "-o", "loop,discard,noatime", img, mnt},
	} {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("journaled volume: %s: %v\n%s", strings.Join(cmd, " "), err, out)
		}
	}
	// Registered after the server's own cleanups: it runs once they stopped it.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("journaled volume: umount %s: %v\n%s", mnt, err, out)
		}
	})
	return mnt
}

// noJournalExt4 reports whether dir lies on an ext4 mounted without a
// journal (its options in /proc/fs/ext4 carry no data= mode).
func noJournalExt4(dir string) bool {
	out, err := exec.Command("findmnt", "-n", "--nofsroot", "-o", "FSTYPE,SOURCE", "--target", dir).Output()
	if err != nil {
		return false
	}
	f := strings.Fields(string(out))
	if len(f) != 2 || f[0] != "ext4" {
		return false
	}
	dev, err := filepath.EvalSymlinks(f[1])
	if err != nil {
		return false
	}
	opts, err := os.ReadFile(filepath.Join("/proc/fs/ext4", filepath.Base(dev), "options"))
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(opts), "\n") {
		if strings.HasPrefix(l, "data=") {
			return false
		}
	}
	return true
}
