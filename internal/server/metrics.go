package server

import (
	"context"
	"google.golang.org/grpc/codes"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rewardpool/rewardpool/internal/drawbatch"
)

// metrics holds the server's Prometheus collectors, in a registry of its
// own so tests can run several servers in one process.
type metrics struct {
	reg *prometheus.Registry

	draws       *prometheus.CounterVec   // pool, item, result
	drawLatency *prometheus.HistogramVec // pool, transport
	requests    *prometheus.CounterVec   // transport, code

	batchSize    *prometheus.HistogramVec // pool
	fsync        *prometheus.HistogramVec // pool
	snapshotTime *prometheus.HistogramVec // pool

	// Children of the vectors used on every request, cached by label
	// values, so a request costs a map read, not a label hash.
	drawCounter *children[prometheus.Counter]  // pool, item, result
	latency     *children[prometheus.Observer] // pool, transport
	request     *children[prometheus.Counter]  // transport, code

	// perItemMax is the largest catalog that gets a series per item
	// (metrics.per_item_max_items); a bigger pool's draws are counted with
	// item="" and its remaining quantities are not exported: a million
	// series would cost the server and the Prometheus more than the pool.
	perItemMax int
	pools      func() *pools // set by New
	sizes      sync.Map      // pool name → *catalogSize
}

// children caches the children of one metric vector by label values (up
// to three; unused ones are "").
type children[V any] struct {
	mu sync.RWMutex
	m  map[[3]string]V
	mk func(labels [3]string) V
}

func newChildren[V any](mk func(labels [3]string) V) *children[V] {
	return &children[V]{m: map[[3]string]V{}, mk: mk}
}

func (c *children[V]) get(labels [3]string) V {
	c.mu.RLock()
	v, ok := c.m[labels]
	c.mu.RUnlock()
	if !ok {
		v = c.mk(labels)
		c.mu.Lock()
		c.m[labels] = v
		c.mu.Unlock()
	}
	return v
}

func newMetrics(version string, perItemMax int) *metrics {
	m := &metrics{
		reg:        prometheus.NewRegistry(),
		perItemMax: perItemMax,
		draws: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rewardpool_draws_total",
			Help: "Draws answered, by pool, item and result: ok and pool_empty were drawn; replayed are remembered answers to a repeated idempotency key (nothing drawn); item is empty for pools of more than metrics.per_item_max_items items.",
		}, []string{"pool", "item", "result"}),
		drawLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rewardpool_draw_duration_seconds",
			Help:    "Time from receiving a draw request to its durable answer.",
			Buckets: prometheus.ExponentialBuckets(25e-6, 2, 16), // 25µs .. ~0.8s
		}, []string{"pool", "transport"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rewardpool_requests_total",
			Help: "API requests by transport and result code.",
		}, []string{"transport", "code"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rewardpool_batch_draws",
			Help:    "Draws per group commit (one write and one fsync).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 17), // 1 .. 65536
		}, []string{"pool"}),
		fsync: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rewardpool_wal_fsync_duration_seconds",
			Help:    "Latency of fsyncs of the write-ahead log.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 2, 16), // 10µs .. ~0.3s
		}, []string{"pool"}),
		snapshotTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rewardpool_snapshot_duration_seconds",
			Help:    "Time to write a snapshot (encode, write, fsync, rename).",
			Buckets: prometheus.ExponentialBuckets(1e-3, 2, 14), // 1ms .. ~8s
		}, []string{"pool"}),
	}
	m.drawCounter = newChildren(func(l [3]string) prometheus.Counter { return m.draws.WithLabelValues(l[0], l[1], l[2]) })
	m.latency = newChildren(func(l [3]string) prometheus.Observer { return m.drawLatency.WithLabelValues(l[0], l[1]) })
	m.request = newChildren(func(l [3]string) prometheus.Counter { return m.requests.WithLabelValues(l[0], l[1]) })
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rewardpool_build_info",
		Help: "Build information; the value is always 1.",
	}, []string{"version", "goversion"})
	buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	m.reg.MustRegister(m.draws, m.drawLatency, m.requests, m.batchSize, m.fsync, m.snapshotTime, buildInfo,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// countRequest counts one API answer by transport and code.
func (m *metrics) countRequest(transport string, code codes.Code) {
	m.request.get([3]string{transport, code.String()}).Inc()
}

// catalogSize is a pool's catalog size as metrics last saw it.
type catalogSize struct {
	once sync.Once // the first look, when a pool is drawn from before any scrape
	n    atomic.Int64
}

func (m *metrics) size(pool string) *catalogSize {
	if v, ok := m.sizes.Load(pool); ok {
		return v.(*catalogSize)
	}
	v, _ := m.sizes.LoadOrStore(pool, &catalogSize{})
	return v.(*catalogSize)
}

// perItem reports whether pool's catalog is small enough for per-item
// series. The size is refreshed at each scrape; a pool drawn from before
// the first scrape is asked once (one State copy, however many requests
// arrive meanwhile: they wait for it).
func (m *metrics) perItem(pool string) bool {
	cs := m.size(pool)
	cs.once.Do(func() {
		if m.pools == nil {
			return
		}
		if p := m.pools(); p != nil && p.entries[pool] != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if st, err := p.engine(pool).State(ctx); err == nil {
				cs.n.Store(int64(len(st.Items)))
			}
		}
	})
	return cs.n.Load() <= int64(m.perItemMax)
}

// countOutcomes counts the draws of one answered request from its batch
// table: counts[x] draws had table entry x (b.Items, then b.Errors).
// Replayed answers are all replayed or none (a request is answered from
// memory as a whole). One counter update per distinct outcome, not per
// draw, and one read lock for all of them.
func (m *metrics) countOutcomes(pool string, b *drawbatch.Batch, counts []uint64, replayed bool) {
	perItem := m.perItem(pool)
	key := func(x int) [3]string {
		k := [3]string{pool, "", "ok"}
		if x < len(b.Items) && perItem {
			k[1] = b.Items[x]
		}
		switch {
		case replayed:
			k[2] = "replayed"
		case x >= len(b.Items):
			k = [3]string{pool, "", "pool_empty"}
		}
		return k
	}
	c := m.drawCounter
	missed := false
	c.mu.RLock()
	for x, n := range counts {
		if n == 0 {
			continue
		}
		if v, ok := c.m[key(x)]; ok {
			v.Add(float64(n))
			counts[x] = 0
		} else {
			missed = true
		}
	}
	c.mu.RUnlock()
	if missed { // first time seen: get creates the series
		for x, n := range counts {
			if n > 0 {
				c.get(key(x)).Add(float64(n))
			}
		}
	}
}

// observer adapts one pool's engine measurements to the histograms.
type observer struct {
	batch, fsync, snapshot prometheus.Observer
}

func (m *metrics) observer(pool string) *observer {
	return &observer{
		batch:    m.batchSize.WithLabelValues(pool),
		fsync:    m.fsync.WithLabelValues(pool),
		snapshot: m.snapshotTime.WithLabelValues(pool),
	}
}

func (o *observer) Batch(requests, draws, records int) {
	if draws > 0 {
		o.batch.Observe(float64(draws))
	}
}
func (o *observer) Sync(took time.Duration, err error) { o.fsync.Observe(took.Seconds()) }
func (o *observer) Snapshot(seq uint64, took time.Duration, err error) {
	if err == nil {
		o.snapshot.Observe(took.Seconds())
	}
}

// poolCollector reads each engine's counters and state at scrape time:
// remaining quantity per item, last request id, seq, WAL bytes, fsyncs.
type poolCollector struct {
	pools func() *pools
	m     *metrics

	remaining, lastID, seq, walBytes, syncs, snapshots, records *prometheus.Desc
}

func newPoolCollector(p func() *pools, m *metrics) *poolCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &poolCollector{
		m:         m,
		pools:     p,
		remaining: d("rewardpool_item_remaining", "Remaining quantity per item (-1 = unlimited); only for pools of at most metrics.per_item_max_items items.", "pool", "item"),
		lastID:    d("rewardpool_last_request_id", "Last request id handed out.", "pool"),
		seq:       d("rewardpool_wal_seq", "Sequence number of the last log record.", "pool"),
		walBytes:  d("rewardpool_wal_bytes_total", "Record bytes appended to the write-ahead log since start.", "pool"),
		syncs:     d("rewardpool_wal_fsyncs_total", "Fsyncs of the write-ahead log since start.", "pool"),
		snapshots: d("rewardpool_snapshots_total", "Snapshots written since start.", "pool"),
		records:   d("rewardpool_wal_records_total", "Log records written since start.", "pool"),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.remaining, c.lastID, c.seq, c.walBytes, c.syncs, c.snapshots, c.records} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	p := c.pools()
	if p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, name := range p.names {
		e := p.engine(name)
		stats := e.Stats()
		ch <- prometheus.MustNewConstMetric(c.walBytes, prometheus.CounterValue, float64(stats.WALBytes), name)
		ch <- prometheus.MustNewConstMetric(c.syncs, prometheus.CounterValue, float64(stats.Syncs), name)
		ch <- prometheus.MustNewConstMetric(c.snapshots, prometheus.CounterValue, float64(stats.Snapshots), name)
		ch <- prometheus.MustNewConstMetric(c.records, prometheus.CounterValue, float64(stats.Records), name)
		st, err := e.State(ctx)
		if err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.lastID, prometheus.GaugeValue, float64(st.LastRequestID), name)
		ch <- prometheus.MustNewConstMetric(c.seq, prometheus.GaugeValue, float64(st.Seq), name)
		cs := c.m.size(name)
		cs.once.Do(func() {})
		cs.n.Store(int64(len(st.Items)))
		if len(st.Items) > c.m.perItemMax {
			continue
		}
		for _, it := range st.Items {
			ch <- prometheus.MustNewConstMetric(c.remaining, prometheus.GaugeValue, float64(it.Quantity), name, it.ID)
		}
	}
}
