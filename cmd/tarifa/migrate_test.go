package main

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tarifa/tarifa/sinks/sinktest"
)

// TestMigrateCommand runs the real binary: the first run creates both
// databases and applies every migration, the second applies nothing.
func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	bin := buildTarifa(t)
	pg, ch := sinktest.PostgresDSN(t), sinktest.ClickHouseDSN(t)
	first, stderr, code := runBin(t, bin, "migrate", "--pg-dsn", pg, "--clickhouse-dsn", ch)
	if code != 0 || !strings.Contains(first, "applied") {
		t.Fatalf("first migrate: exit %d\n%s%s", code, first, stderr)
	}
	second, stderr, code := runBin(t, bin, "migrate", "--pg-dsn", pg, "--clickhouse-dsn", ch)
	if code != 0 || strings.Count(second, "up to date") != 2 {
		t.Fatalf("second migrate: exit %d, want both databases up to date\n%s%s", code, second, stderr)
	}
}

// TestMigrateUnreachable points migrate at a server that accepts TCP but
// never answers: it must give up within 10 s, name the target, hide the
// password and exit 1.
func TestMigrateUnreachable(t *testing.T) {
	t.Parallel()
	bin := buildTarifa(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // accept and hold connections, answering nothing
		var held []net.Conn
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	addr := ln.Addr().String()
	for _, args := range [][]string{
		{"--pg-dsn", "postgres://billing:s3cret@" + addr + "/tarifa?sslmode=disable"},
		{"--pg-dsn", os.Getenv("TARIFA_PG_DSN"), "--clickhouse-dsn", "clickhouse://billing:s3cret@" + addr + "/tarifa"},
	} {
		if args[1] == "" {
			args[1] = defaultPGDSN
		}
		start := time.Now()
		cmd := exec.Command(bin, append([]string{"migrate"}, args...)...)
		out, err := cmd.CombinedOutput()
		took := time.Since(start)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Fatalf("migrate %v: err %v, want exit status 1\n%s", args, err, out)
		}
		if took > 10*time.Second {
			t.Errorf("migrate %v took %v to give up, want under 10 s", args, took)
		}
		if !strings.Contains(string(out), addr) || strings.Contains(string(out), "s3cret") || !strings.Contains(string(out), "xxxxx") {
			t.Errorf("migrate %v said %q: want the target %s named and the password masked", args, out, addr)
		}
	}
}
