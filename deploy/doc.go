// Package deploy holds Tarifa's deployment files, and its tests check them
// with real tools where this machine has them and with parsers where it
// does not (no container engine runs here):
//
//   - local/: the local stack of `make up` (PostgreSQL, ClickHouse, a dev
//     Kafka broker), used by `make demo` and `make test`;
//   - Dockerfile: the one image, every subcommand of the tarifa binary;
//   - compose/: Kafka (KRaft), ClickHouse, PostgreSQL 16, migrations, two
//     workers, the API and console, Prometheus and Grafana on one host;
//   - kubernetes/: base/ (Tarifa), dependencies/ (a one-node trial set of
//     the servers), monitoring/ (Prometheus Operator rules and scrape
//     config, the Grafana dashboard);
//   - systemd/: units for bare-metal hosts;
//   - prometheus/: alert rules with promtool unit tests, the scrape config;
//   - grafana/: the dashboard and its provisioning.
//
// The go test of this package runs promtool (Debian's prometheus package,
// installed when missing) and systemd-analyze, and parses the compose and
// Kubernetes files to check what would otherwise only fail on a real
// cluster: names that refer to each other, probes on the right ports,
// variables the binary reads.
package deploy
