package transport

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are etcd's etcd_network_* peer metrics, with etcd's names, label
// names, help texts and buckets, so existing dashboards keep working. Label
// values are member IDs in hex without leading zeros, as etcd prints them.
type metrics struct {
	sentBytes     *prometheus.CounterVec   // To
	receivedBytes *prometheus.CounterVec   // From
	sentFailures  *prometheus.CounterVec   // To
	recvFailures  *prometheus.CounterVec   // From
	rtt           *prometheus.HistogramVec // To
	activePeers   *prometheus.GaugeVec     // Local, Remote
	disconnected  *prometheus.CounterVec   // Local, Remote

	snapSend         *prometheus.CounterVec   // To
	snapSendFailures *prometheus.CounterVec   // To
	snapSendSeconds  *prometheus.HistogramVec // To
	snapSendInflight *prometheus.GaugeVec     // To
	snapRecv         *prometheus.CounterVec   // From
	snapRecvFailures *prometheus.CounterVec   // From
	snapRecvSeconds  *prometheus.HistogramVec // From
	snapRecvInflight *prometheus.GaugeVec     // From
}

func idLabel(id uint64) string { return strconv.FormatUint(id, 16) }

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "etcd", Subsystem: "network", Name: name, Help: help}, labels)
	}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "etcd", Subsystem: "network", Name: name, Help: help}, labels)
	}
	histogram := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "etcd", Subsystem: "network", Name: name, Help: help, Buckets: buckets}, labels)
	}
	// Snapshot transfers: 100ms doubling to 51.2s; round trips: 100µs
	// doubling to about 3.3s (etcd's buckets).
	snapBuckets := prometheus.ExponentialBuckets(0.1, 2, 10)
	m := &metrics{
		sentBytes:     counter("peer_sent_bytes_total", "The total number of bytes sent to peers.", "To"),
		receivedBytes: counter("peer_received_bytes_total", "The total number of bytes received from peers.", "From"),
		sentFailures:  counter("peer_sent_failures_total", "The total number of send failures from peers.", "To"),
		recvFailures:  counter("peer_received_failures_total", "The total number of receive failures from peers.", "From"),
		rtt: histogram("peer_round_trip_time_seconds", "Round-Trip-Time histogram between peers",
			prometheus.ExponentialBuckets(0.0001, 2, 16), "To"),
		activePeers:  gauge("active_peers", "The current number of active peer connections.", "Local", "Remote"),
		disconnected: counter("disconnected_peers_total", "The total number of disconnected peers.", "Local", "Remote"),

		snapSend:         counter("snapshot_send_success", "Total number of successful snapshot sends", "To"),
		snapSendFailures: counter("snapshot_send_failures", "Total number of snapshot send failures", "To"),
		snapSendSeconds:  histogram("snapshot_send_total_duration_seconds", "Total latency distributions of v3 snapshot sends", snapBuckets, "To"),
		snapSendInflight: gauge("snapshot_send_inflights_total", "Total number of inflight snapshot sends", "To"),
		snapRecv:         counter("snapshot_receive_success", "Total number of successful snapshot receives", "From"),
		snapRecvFailures: counter("snapshot_receive_failures", "Total number of snapshot receive failures", "From"),
		snapRecvSeconds:  histogram("snapshot_receive_total_duration_seconds", "Total latency distributions of v3 snapshot receives", snapBuckets, "From"),
		snapRecvInflight: gauge("snapshot_receive_inflights_total", "Total number of inflight snapshot receives", "From"),
	}
	if reg == nil {
		return m, nil
	}
	for i, c := range m.collectors() {
		if err := reg.Register(c); err != nil {
			// Roll back only ours: Unregister matches by descriptor, so
			// unregistering the rest would remove whoever holds the names.
			for _, r := range m.collectors()[:i] {
				reg.Unregister(r)
			}
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		m.sentBytes, m.receivedBytes, m.sentFailures, m.recvFailures, m.rtt, m.activePeers, m.disconnected,
		m.snapSend, m.snapSendFailures, m.snapSendSeconds, m.snapSendInflight,
		m.snapRecv, m.snapRecvFailures, m.snapRecvSeconds, m.snapRecvInflight,
	}
}

func (m *metrics) unregister(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	for _, c := range m.collectors() {
		reg.Unregister(c)
	}
}

// forget drops the series of a removed peer, so removed members do not
// accumulate.
func (m *metrics) forget(id uint64) {
	l := idLabel(id)
	for _, v := range []*prometheus.CounterVec{m.sentBytes, m.receivedBytes, m.sentFailures, m.recvFailures,
		m.snapSend, m.snapSendFailures, m.snapRecv, m.snapRecvFailures} {
		v.DeleteLabelValues(l)
	}
	for _, v := range []*prometheus.HistogramVec{m.rtt, m.snapSendSeconds, m.snapRecvSeconds} {
		v.DeleteLabelValues(l)
	}
	for _, v := range []*prometheus.GaugeVec{m.snapSendInflight, m.snapRecvInflight} {
		v.DeleteLabelValues(l)
	}
	m.activePeers.DeletePartialMatch(prometheus.Labels{"Remote": l})
	m.disconnected.DeletePartialMatch(prometheus.Labels{"Remote": l})
}
