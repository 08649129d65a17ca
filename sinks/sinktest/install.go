package sinktest

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
)

var installMu sync.Mutex

// Install makes sure the Debian package pkg is installed, judged by the
// file it provides at path, installing it with apt-get when it is missing
// (as root, like deploy/local/stack.sh does for the local stack), so that a
// fresh machine or CI gets the real program instead of a skipped test.
// Debian packages that start a system service on install are kept from
// starting it. Safe for concurrent use by tests and test processes.
func Install(t testing.TB, pkg, path string) {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		return
	}
	installMu.Lock()
	defer installMu.Unlock()
	// Other test binaries of the same `go test ./...` may install at the
	// same time: one at a time, machine-wide.
	lock, err := os.OpenFile(os.TempDir()+"/tarifa-apt.lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // closed next
	if _, err := os.Stat(path); err == nil {
		return
	}
	if os.Geteuid() != 0 {
		t.Fatalf("%s is missing and installing Debian's %s needs root", path, pkg)
	}
	const policy = "/usr/sbin/policy-rc.d"
	if _, err := os.Stat(policy); os.IsNotExist(err) {
		if err := os.WriteFile(policy, []byte("#!/bin/sh\nexit 101\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(policy)
	}
	run := func(args ...string) error {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %v: %v\n%s", args, err, out)
		}
		return nil
	}
	install := []string{"-o", "DPkg::Lock::Timeout=600", "install", "-y", "-qq", "--no-install-recommends", pkg}
	if err := run(install...); err != nil {
		// A fresh machine has no package lists yet.
		if uerr := run("-o", "DPkg::Lock::Timeout=600", "update", "-qq"); uerr != nil {
			t.Fatal(uerr)
		}
		if err := run(install...); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("installed %s but %s is still missing", pkg, path)
	}
}
