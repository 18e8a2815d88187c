// Package deploy holds what runs dbx outside Go: the Grafana dashboard
// (grafana/dbx.json), the Prometheus alert rules (prometheus/dbx-alerts.yml),
// the systemd unit and the example config file. It has no Go code but its
// test, which fails when a dashboard or rule query names a metric that a
// running cluster does not export (a renamed metric breaks the build, not
// the pager).
package deploy
