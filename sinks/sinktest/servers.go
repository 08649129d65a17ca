package sinktest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tarifa/tarifa/sinks"
)

// Server is a private database server a test may stop and start again, for
// outage tests that must not disturb the shared local stack.
type Server struct {
	DSN   string
	start func() error
	stop  func()
	pid   func() int
}

// PID is the process id of the running server (PostgreSQL's postmaster),
// for a benchmark that reads its CPU time; 0 when it is not running.
func (s *Server) PID() int { return s.pid() }

// Start starts the server again on its existing data and waits until it
// answers.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
}

// Stop stops the server (fast shutdown) and waits for it to exit.
func (s *Server) Stop() { s.stop() }

const pgBin = "/usr/lib/postgresql/15/bin"

// StartPostgres starts a private PostgreSQL 15 on a free loopback port with a
// fresh data directory, removed at cleanup. It needs root (initdb runs as
// the postgres user through runuser), as the local stack does. It does not
// fsync: outage tests need a server they can stop, not a durable one.
func StartPostgres(t testing.TB) *Server {
	t.Helper()
	return StartPostgresWith(t, "fsync = off\nmax_connections = 100\n")
}

// StartPostgresWith is StartPostgres with conf (postgresql.conf lines)
// instead of its settings and env added to the server's environment: a
// benchmark starts one configured as the local stack's is, durable.
func StartPostgresWith(t testing.TB, conf string, env ...string) *Server {
	t.Helper()
	dir, err := os.MkdirTemp("", "tarifa-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data := filepath.Join(dir, "data")
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) error {
		out, err := exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %v\n%s", filepath.Base(name), err, out)
		}
		return nil
	}
	if out, err := exec.Command("chown", "postgres:", dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v %s", err, out)
	}
	if err := run(pgBin+"/initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	conf = fmt.Sprintf("%s\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\n", conf, port, dir)
	f, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(conf)
	f.Close()
	logFile := filepath.Join(dir, "log")
	s := &Server{DSN: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/tarifa?sslmode=disable", port)}
	s.start = func() error {
		return run("env", append(env, pgBin+"/pg_ctl", "-D", data, "-l", logFile, "-w", "-t", "60", "start")...)
	}
	s.stop = func() { _ = run(pgBin+"/pg_ctl", "-D", data, "-m", "fast", "-w", "stop") }
	s.pid = func() int {
		raw, err := os.ReadFile(filepath.Join(data, "postmaster.pid"))
		if err != nil {
			return 0
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(raw), "\n", 2)[0]))
		return pid
	}
	s.Start(t)
	t.Cleanup(s.stop)
	return s
}

// StartClickHouse starts a private ClickHouse on free loopback ports with a
// fresh data directory, removed at cleanup.
func StartClickHouse(t testing.TB) *Server {
	t.Helper()
	return startClickHouse(t, freePort(t), "")
}

// StartClickHouseIn is StartClickHouse with its files in dir (for example
// one from JournaledDir) and profile (the XML inside the default settings
// profile of users.xml, as the local stack's).
func StartClickHouseIn(t testing.TB, dir, profile string) *Server {
	t.Helper()
	return startClickHouseIn(t, dir, freePort(t), "", profile)
}

// startClickHouse starts a private ClickHouse whose native port is tcp,
// with extra elements (XML) in its config.
func startClickHouse(t testing.TB, tcp int, extra string) *Server {
	t.Helper()
	return startClickHouseIn(t, t.TempDir(), tcp, extra, "")
}

func startClickHouseIn(t testing.TB, dir string, tcp int, extra, profile string) *Server {
	t.Helper()
	http := freePort(t)
	config := fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>%[1]s/server.log</log><errorlog>%[1]s/error.log</errorlog></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>%[2]d</http_port>
  <tcp_port>%[3]d</tcp_port>
  <path>%[1]s/data/</path>
  <tmp_path>%[1]s/tmp/</tmp_path>
  <user_files_path>%[1]s/user_files/</user_files_path>
  <users_config>%[1]s/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  <timezone>UTC</timezone>
%[4]s
</yandex>
`, dir, http, tcp, extra)
	users := `<?xml version="1.0"?>
<yandex>
  <profiles><default>%s</default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
`
	users = fmt.Sprintf(users, profile)
	if err := os.WriteFile(filepath.Join(dir, "config.xml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.xml"), []byte(users), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := "/usr/sbin/clickhouse-server"
	if _, err := os.Stat(bin); err != nil {
		bin = "/usr/bin/clickhouse-server"
	}
	s := &Server{DSN: fmt.Sprintf("clickhouse://127.0.0.1:%d/tarifa", tcp)}
	var cmd *exec.Cmd
	s.start = func() error {
		cmd = exec.Command(bin, "--config-file="+filepath.Join(dir, "config.xml"))
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start clickhouse: %w", err)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(tcp))
		for i := 0; i < 300; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			conn, err := sinks.OpenClickHouse(ctx, "clickhouse://"+addr+"/default")
			cancel()
			if err == nil {
				conn.Close()
				return nil
			}
			time.Sleep(100 * time.Millisecond)
		}
		out, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return fmt.Errorf("private clickhouse on %s did not answer within 30s\n%s", addr, out)
	}
	s.pid = func() int {
		if cmd == nil || cmd.Process == nil {
			return 0
		}
		return cmd.Process.Pid
	}
	s.stop = func() {
		if cmd == nil || cmd.Process == nil {
			return
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		cmd = nil
	}
	s.Start(t)
	t.Cleanup(s.stop)
	t.Cleanup(func() {
		// Runs before the stop above and the removal of dir: a failed
		// test shows what the server had to say.
		if out, _ := os.ReadFile(filepath.Join(dir, "error.log")); t.Failed() && len(out) > 0 {
			t.Logf("clickhouse on port %d, error log (last 4 KiB):\n%s", tcp, out[max(0, len(out)-4096):])
		}
	})
	return s
}

// Open connects to existing servers and migrates them, without creating or
// dropping anything else (for private servers of StartPostgres and
// StartClickHouse).
func Open(t testing.TB, pgDSN, chDSN string) *DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := sinks.EnsurePostgresDatabase(ctx, pgDSN); err != nil {
		t.Fatal(err)
	}
	pg, err := sinks.OpenPostgres(ctx, pgDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Close)
	if _, err := sinks.MigratePostgres(ctx, pg, quiet()); err != nil {
		t.Fatal(err)
	}
	if err := sinks.EnsureClickHouseDatabase(ctx, chDSN); err != nil {
		t.Fatal(err)
	}
	ch, err := sinks.OpenClickHouse(ctx, chDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.Close() })
	if _, err := sinks.MigrateClickHouse(ctx, ch, quiet()); err != nil {
		t.Fatal(err)
	}
	return &DB{PGDSN: pgDSN, CHDSN: chDSN, PG: pg, CH: ch, Name: "tarifa"}
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
