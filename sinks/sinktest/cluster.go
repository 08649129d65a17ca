package sinktest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ClusterName is the name of the cluster StartClickHouseCluster configures
// (remote_servers), for tarifa migrate --clickhouse-cluster.
const ClusterName = "tarifa"

// Cluster is a test's private ClickHouse cluster: a ZooKeeper and one
// ClickHouse server per shard, each a process of its own on loopback ports
// that do not clash with the shared stack.
type Cluster struct {
	Name string // the cluster's name in every server's remote_servers
	// Servers are the ClickHouse servers, one per shard; their DSNs name
	// the database "tarifa" (use WithDatabase for another).
	Servers   []*Server
	ZooKeeper string // host:port of the ZooKeeper
}

// WithDatabase returns a DSN of server i for database name.
func (c *Cluster) WithDatabase(t testing.TB, i int, name string) string {
	return withDatabase(t, c.Servers[i].DSN, name)
}

// StartClickHouseCluster starts ZooKeeper (Debian's zookeeper package, its
// jar run as a process of the test, installed when missing) and a
// ClickHouse 18.16 server per shard, one replica each, configured as
// cluster ClusterName with internal replication, the macros {shard} and
// {replica}, and distributed DDL; everything stops and is removed at
// cleanup.
func StartClickHouseCluster(t testing.TB, shards int) *Cluster {
	t.Helper()
	zk := startZooKeeper(t)
	ports := make([]int, shards)
	for i := range ports {
		ports[i] = freePort(t)
	}
	var remote strings.Builder
	for _, p := range ports {
		fmt.Fprintf(&remote, "<shard><internal_replication>true</internal_replication><replica><host>127.0.0.1</host><port>%d</port></replica></shard>", p)
	}
	c := &Cluster{Name: ClusterName, ZooKeeper: zk}
	for i, p := range ports {
		extra := fmt.Sprintf(`  <interserver_http_host>127.0.0.1</interserver_http_host>
  <interserver_http_port>%d</interserver_http_port>
  <zookeeper><node><host>127.0.0.1</host><port>%s</port></node><session_timeout_ms>30000</session_timeout_ms></zookeeper>
  <macros><shard>%02d</shard><replica>ch%d</replica></macros>
  <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
  <remote_servers><%s>%s</%[5]s></remote_servers>`, freePort(t), zk[strings.LastIndexByte(zk, ':')+1:], i+1, i+1, ClusterName, remote.String())
		c.Servers = append(c.Servers, startClickHouse(t, p, extra))
	}
	return c
}

// startZooKeeper runs a standalone ZooKeeper on a free loopback port with
// a fresh data directory and returns its address.
func startZooKeeper(t testing.TB) string {
	t.Helper()
	const jar = "/usr/share/java/zookeeper.jar"
	Install(t, "zookeeper", jar)
	dir := t.TempDir()
	port := freePort(t)
	cfg := fmt.Sprintf("tickTime=2000\ndataDir=%s/data\nclientPort=%d\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n"+
		"4lw.commands.whitelist=srvr\nmaxClientCnxns=0\n", dir, port)
	if err := os.WriteFile(filepath.Join(dir, "zoo.cfg"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "zookeeper.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	// The jar's manifest names the jars it needs, so the classpath is one jar.
	cmd := exec.Command("java", "-Xmx256m", "-Dzookeeper.jmx.log4j.disable=true", "-cp", jar,
		"org.apache.zookeeper.server.ZooKeeperServerMain", filepath.Join(dir, "zoo.cfg"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start zookeeper: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for i := 0; i < 300; i++ {
		if zkOK(addr) {
			return addr
		}
		select {
		case <-exited:
			out, _ := os.ReadFile(filepath.Join(dir, "zookeeper.log"))
			t.Fatalf("zookeeper exited\n%s", out)
		case <-time.After(100 * time.Millisecond):
		}
	}
	out, _ := os.ReadFile(filepath.Join(dir, "zookeeper.log"))
	t.Fatalf("zookeeper on %s did not answer within 30s\n%s", addr, out)
	return ""
}

// zkOK asks ZooKeeper "srvr": it says its mode only once it serves
// requests ("ruok" answers earlier, and a ClickHouse 18.16 whose first
// ZooKeeper session is refused can crash in its DDL worker).
func zkOK(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("srvr")); err != nil {
		return false
	}
	out, _ := io.ReadAll(bufio.NewReader(c))
	return strings.Contains(string(out), "Mode: standalone")
}
