package server

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/reflection"

	"github.com/meshnode/meshnode/internal/buildinfo"
	"github.com/meshnode/meshnode/membership"
)

// metrics are a node's Prometheus metrics, in a registry of its own (no global state, so
// many nodes can live in one process).
type metrics struct {
	registry           *prometheus.Registry
	grpc               *grpcprom.ServerMetrics
	heartbeatsSent     prometheus.Counter
	heartbeatsReceived prometheus.Counter
	heartbeatsLate     prometheus.Counter
	lateness           prometheus.Histogram
	dials              prometheus.Counter
	authFailures       *prometheus.CounterVec
	limitHits          *prometheus.CounterVec
	events             *prometheus.CounterVec
	watchers           prometheus.Gauge
	build              prometheus.Gauge

	// api is the public API whose RPC series are created at the first scrape (handler);
	// apiSeries says they were.
	apiMu     sync.Mutex
	api       reflection.ServiceInfoProvider
	apiSeries bool
}

// newMetrics creates the metrics of one node; cluster is read at scrape time.
func newMetrics(cluster func() *membership.Cluster) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		grpc: grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
			grpcprom.WithHistogramBuckets([]float64{.0005, .001, .005, .01, .05, .1, .5, 1}))),
		heartbeatsSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshnode_heartbeats_sent_total", Help: "Heartbeats sent to peers.",
		}),
		heartbeatsReceived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshnode_heartbeats_received_total", Help: "Heartbeats received from peers.",
		}),
		heartbeatsLate: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshnode_heartbeats_late_total", Help: "Heartbeats that came later than the interval the peer advertised (only those it owed every interval are timed).",
		}),
		lateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "meshnode_heartbeat_lateness_seconds",
			Help:    "How much later than the peer's interval each heartbeat came (0 when on time or not timed).",
			Buckets: []float64{0, .01, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		dials: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshnode_dials_total", Help: "Outbound dials to peers and seeds: first dials and reconnect attempts.",
		}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshnode_auth_failures_total", Help: "Peer streams refused by authentication, by reason.",
		}, []string{"reason"}),
		limitHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshnode_limit_hits_total",
			Help: "Streams or connections of clients not (yet) authenticated that a limit refused or cut, by limit.",
		}, []string{"limit"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshnode_node_events_total", Help: "Membership events, by type and down reason.",
		}, []string{"type", "reason"}),
		watchers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshnode_watchers", Help: "Active WatchEvents streams.",
		}),
		build: buildGauge(buildinfo.Get()),
	}
	m.registry.MustRegister(m.grpc, m.heartbeatsSent, m.heartbeatsReceived, m.heartbeatsLate, m.lateness,
		m.dials, m.authFailures, m.limitHits, m.events, m.watchers, m.build, &stateCollector{cluster: cluster},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// buildGauge is meshnode_build_info: always 1, the build in its labels, as Prometheus
// exporters report theirs.
func buildGauge(b buildinfo.Info) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "meshnode_build_info",
		Help: "The build of meshnode the node runs: always 1, the version, commit, build date and Go version in the labels.",
		ConstLabels: prometheus.Labels{
			"version": b.Version, "commit": b.ShortCommit(), "build_date": b.DateString(),
			"goversion": b.GoVersion, "protocol": strconv.Itoa(membership.ProtocolVersion),
		},
	})
	g.Set(1)
	return g
}

// HeartbeatSent implements membership.MetricsSink.
func (m *metrics) HeartbeatSent() { m.heartbeatsSent.Inc() }

// HeartbeatReceived implements membership.MetricsSink.
func (m *metrics) HeartbeatReceived(gap, interval time.Duration) {
	m.heartbeatsReceived.Inc()
	late := max(gap-interval, 0)
	if late > 0 {
		m.heartbeatsLate.Inc()
	}
	m.lateness.Observe(late.Seconds())
}

// DialStarted implements membership.MetricsSink.
func (m *metrics) DialStarted() { m.dials.Inc() }

// metricsTee sends the engine's measurements to every sink it holds.
type metricsTee []membership.MetricsSink

// HeartbeatSent implements membership.MetricsSink.
func (t metricsTee) HeartbeatSent() {
	for _, s := range t {
		s.HeartbeatSent()
	}
}

// HeartbeatReceived implements membership.MetricsSink.
func (t metricsTee) HeartbeatReceived(gap, interval time.Duration) {
	for _, s := range t {
		s.HeartbeatReceived(gap, interval)
	}
}

// DialStarted implements membership.MetricsSink.
func (t metricsTee) DialStarted() {
	for _, s := range t {
		s.DialStarted()
	}
}

// observe counts an event.
func (m *metrics) observe(e membership.Event) {
	switch e.Type {
	case membership.EventNodeUp:
		m.events.WithLabelValues("node_up", "").Inc()
	case membership.EventNodeDown:
		m.events.WithLabelValues("node_down", e.Reason.String()).Inc()
	}
}

// countAPI has the RPC metrics count the calls of api, whose series (every method with every
// status code, over a hundred) are created at the first scrape.
func (m *metrics) countAPI(api reflection.ServiceInfoProvider) {
	m.apiMu.Lock()
	defer m.apiMu.Unlock()
	m.api = api
}

// handler serves the registry. The first scrape creates the public API's RPC series at zero
// before anything is read, so a scraper sees every one from its first look, as if they had
// been created at start; a node nobody scrapes (one of many in a test or a benchmark process)
// does not hold them, some 80 KB.
func (m *metrics) handler() http.Handler {
	h := promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.createAPISeries()
		h.ServeHTTP(w, r)
	})
}

// createAPISeries creates the public API's RPC series at zero, once, when the API is known.
func (m *metrics) createAPISeries() {
	m.apiMu.Lock()
	defer m.apiMu.Unlock()
	if m.api != nil && !m.apiSeries {
		m.grpc.InitializeMetrics(m.api)
		m.apiSeries = true
	}
}

// stateCollector reports the node table and the streams at scrape time.
type stateCollector struct{ cluster func() *membership.Cluster }

var (
	nodesDesc   = prometheus.NewDesc("meshnode_nodes", "Known nodes by status.", []string{"status"}, nil)
	streamsDesc = prometheus.NewDesc("meshnode_peer_streams", "Peer streams by state (established, pending).", []string{"state"}, nil)
)

// Describe implements prometheus.Collector.
func (s *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- nodesDesc
	ch <- streamsDesc
}

// Collect implements prometheus.Collector.
func (s *stateCollector) Collect(ch chan<- prometheus.Metric) {
	stats := s.cluster().Stats()
	for status, n := range stats.Nodes {
		ch <- prometheus.MustNewConstMetric(nodesDesc, prometheus.GaugeValue, float64(n), status.String())
	}
	ch <- prometheus.MustNewConstMetric(streamsDesc, prometheus.GaugeValue, float64(stats.Streams), "established")
	ch <- prometheus.MustNewConstMetric(streamsDesc, prometheus.GaugeValue, float64(stats.PendingStreams), "pending")
}
