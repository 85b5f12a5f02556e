package node

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/node/network"
	"github.com/peerq/peerq/node/owner"
	"github.com/peerq/peerq/query"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics is the metrics role: the Prometheus collector (client_golang)
// that package server serves at GET /metrics behind its token (Node.Metrics).
// It keeps only what it observes itself — the two histograms and the
// answers by status, observed as this peer's own statements end, and the
// standing queries (exports) — and reads everything else at scrape time
// from the roles that count it (metricsSource): no second set of
// counters to keep in step.
//
// It has no lock of its own: the histograms are safe for concurrent use,
// the exports have theirs (exports.mu, which guards their latest answers
// and is held only to store or emit them), and each source takes its own
// to copy its snapshot. No lock is held across I/O.
type metrics struct {
	src     metricsSource
	latency *prometheus.HistogramVec // by kind of statement
	rounds  prometheus.Histogram
	answers *prometheus.CounterVec // by status
	exports exports
}

// metricsSource is the peer as the collector reads it: each role's
// counters and gauges as a snapshot. The collector calls them on the
// scrape's goroutine: they must be safe for concurrent use and must not
// block (they copy; none waits on I/O).
type metricsSource struct {
	// runtime is the query runtime's and the lease keeper's counters and
	// gauges (the node: Stats).
	runtime interface{ Stats() Stats }
	// owner is the subclouds this peer owns (owner.Role.Held).
	owner interface{ Held() map[string]owner.View }
	// net is the membership; a network that counts more says so through
	// MemberStates, ExchangeStats and ClockOffsets (the overlay; fakenet
	// does not).
	net interface{ Size() int }
	// pools is the pools role (Node.PoolStats): nothing in a cloud of
	// one pool.
	pools interface{ PoolStats() (PoolStats, bool) }
}

var _ prometheus.Collector = (*metrics)(nil)

func newMetrics(src metricsSource) *metrics {
	return &metrics{src: src,
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "peerq_query_duration_seconds",
			Help:    "Time from a statement asked at this peer to its answer, by kind (aggregate, topk, reserve, local, membership).",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14), // 5 ms .. 41 s
		}, []string{"kind"}),
		rounds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "peerq_query_rounds",
			Help:    "Gossip rounds a statement asked at this peer took to its answer.",
			Buckets: []float64{1, 2, 4, 8, 12, 16, 20, 25, 30, 40, 60, 100},
		}),
		// What an operator alerts on: answers contested (a liar may have
		// bent them) or sampled (a liar did, and the sample answered)
		// where none were before.
		answers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "peerq_answers_total",
			Help: "Answers to statements asked at this peer, by status (exact, converged, sampled, partial, contested: docs/PQL.md).",
		}, []string{"status"}),
	}
}

// observe records a statement's end.
func (m *metrics) observe(plan *query.Plan, res *answer.Answer, took time.Duration) {
	kind := "local"
	switch {
	case plan.Kind == query.PlanReserve:
		kind = "reserve"
	case plan.Kind == query.PlanLocal:
	case plan.FromTags:
		kind = "membership"
	case plan.Kind == query.PlanAggregate:
		kind = "aggregate"
	case plan.Kind == query.PlanTopK:
		kind = "topk"
	}
	m.latency.WithLabelValues(kind).Observe(took.Seconds())
	if res != nil && res.Rounds > 0 {
		m.rounds.Observe(float64(res.Rounds))
	}
	if res != nil && res.Meta != nil && res.Status != "" {
		m.answers.WithLabelValues(res.Status).Inc()
	}
}

var (
	descExchanges        = prometheus.NewDesc("peerq_exchanges_total", "Gossip exchanges: out (this peer started them) and in (it answered them).", []string{"direction"}, nil)
	descFailures         = prometheus.NewDesc("peerq_exchange_failures_total", "Exchanges this peer started that got no answer.", nil, nil)
	descBytes            = prometheus.NewDesc("peerq_exchange_bytes_total", "Bytes of gossip exchanges, sent and received.", []string{"direction"}, nil)
	descRounds           = prometheus.NewDesc("peerq_rounds_total", "Gossip rounds this peer ran.", nil, nil)
	descJoined           = prometheus.NewDesc("peerq_queries_joined_total", "Queries of other peers this peer joined.", nil, nil)
	descAnnounced        = prometheus.NewDesc("peerq_queries_announced_total", "Announcements of young queries this peer sent to peers beyond its round's partner (the plan alone: Config.Fanout).", nil, nil)
	descAnnouncedHolders = prometheus.NewDesc("peerq_queries_announced_holders_total", "Announcements this peer sent that a peer holding the query already answered (a peer stops announcing a query after run.StopAnnouncing of them).", nil, nil)
	descHandedOver       = prometheus.NewDesc("peerq_queries_handed_over_total", "Queries this peer handed over in its replies to peers that asked it something and were not known to hold them (the plan alone).", nil, nil)
	descRefused          = prometheus.NewDesc("peerq_queries_refused_total", "Queries refused: to join (max_queries) or to ask (overloaded).", []string{"reason"}, nil)
	descRunning          = prometheus.NewDesc("peerq_queries_running", "Query instances this peer takes part in now.", nil, nil)
	descAsking           = prometheus.NewDesc("peerq_queries_asking", "Statements this peer asks now.", nil, nil)
	descQueued           = prometheus.NewDesc("peerq_queries_queued", "Statements waiting for a place to be asked.", nil, nil)
	descMembers          = prometheus.NewDesc("peerq_members", "Members this peer's Serf knows, by state (alive, leaving, left, failed); alive includes itself.", []string{"state"}, nil)
	descRefusedLease     = prometheus.NewDesc("peerq_lease_requests_refused_total", "Lease and name requests refused, and owners' answers ignored: forged (not signed by the owner they name), made for an earlier incarnation of this peer, or signed by an owner's new key (owner_key_changed: it lost its data dir; the lease lapses); relay_forged: replies of members of other pools a relay passed on unsigned by them.", []string{"reason"}, nil)
	descForgedRecords    = prometheus.NewDesc("peerq_records_refused_total", "Records other peers sent (top-k entries) refused as not signed by the node they name: unsigned, altered, or written for another node or query.", []string{"reason"}, nil)
	descTagFailures      = prometheus.NewDesc("peerq_tag_update_failures_total", "Tag updates (the lease, the storage fault) Serf refused.", nil, nil)
	descBadLeaseTags     = prometheus.NewDesc("peerq_lease_tags_malformed_total", "Members' lease tags (subcloud_until, subcloud_since) that did not parse, counted once per member and tag when first seen; the lease is read with that time unknown.", nil, nil)
	descUnreadable       = prometheus.NewDesc("peerq_queries_unreadable_total", "Statements asked at this peer whose answer could not be read: each ended at once, partial, with the reason.", nil, nil)
	descStorageFault     = prometheus.NewDesc("peerq_storage_fault", "1 while this peer's data dir cannot be written (it grants no lease and owns no new subcloud).", nil, nil)
	descSkewedPeers      = prometheus.NewDesc("peerq_clock_skewed_peers", "Peers whose clock, as this peer's exchanges measured it lately, is off by more than the replay window.", nil, nil)
	descLease            = prometheus.NewDesc("peerq_lease_held", "1 if this peer holds a lease (is a member of a subcloud).", nil, nil)
	descOwned            = prometheus.NewDesc("peerq_subclouds_owned", "Subclouds this peer owns.", nil, nil)
	descSubMembers       = prometheus.NewDesc("peerq_subcloud_members", "Members of a subcloud this peer owns.", []string{"subcloud"}, nil)
	descSubTarget        = prometheus.NewDesc("peerq_subcloud_target", "The size this peer keeps a subcloud it owns at.", []string{"subcloud"}, nil)
	descRepairs          = prometheus.NewDesc("peerq_subcloud_repairs_total", "Members claimed in place of lost ones, per subcloud this peer owns.", []string{"subcloud"}, nil)
	descPeerHours        = prometheus.NewDesc("peerq_subcloud_peer_hours", "The owner's account of a subcloud's use, in peer-hours.", []string{"subcloud"}, nil)
	descMalformed        = prometheus.NewDesc("peerq_decoder_rejections_total", "Exchanges, plans and messages refused as malformed.", nil, nil)
	descPoolGateway      = prometheus.NewDesc("peerq_pool_gateway", "In a cloud of pools: 1 while this peer is one of its pool's gateways in the cloud pool, else 0.", []string{"pool"}, nil)
	descCloudPools       = prometheus.NewDesc("peerq_cloud_pools", "At a gateway: the pools its view of the cloud pool holds: those listed now, and for 10 minutes those that lost every gateway.", nil, nil)
	descCloudPoolsShort  = prometheus.NewDesc("peerq_cloud_pools_short", "At a gateway: the pools of its view with fewer gateways than each should have (3 by default): there, one gateway that lies or hangs leaves the others to agree alone, or no majority at all.", nil, nil)
	descGatewaysFailing  = prometheus.NewDesc("peerq_gateways_failing", "In a cloud of pools: gateways this peer asks last now, because a relay or a statement through them got no answer lately (a gateway that hangs while Serf lists it alive).", nil, nil)
	descRelays           = prometheus.NewDesc("peerq_relays_total", "Lease requests this peer relayed as a gateway: way out (for a member of its pool, to another pool) or in (from another pool, to a member of its own), by result: delivered, unreachable (the member is not live in its pool), failed (no answer in time, or refused).", []string{"way", "result"}, nil)
	descGatewayFailures  = prometheus.NewDesc("peerq_gateway_failures_total", "In a cloud of pools: relays and statements through a gateway that got no answer, as this peer noted them (each makes it ask that gateway last for a while: peerq_gateways_failing); one that hangs fails again each time its note runs out, at most 10 minutes apart.", nil, nil)
	descGatewayBusy      = prometheus.NewDesc("peerq_gateway_busy_total", "Vouches and relays this gateway refused at its limits: 64 at once for its own pool's members (each told to retry in a second), and apart 64 relays from other pools to them, 16 from one sending gateway (which tries the pool's next gateway).", nil, nil)
	descPoolRuns         = prometheus.NewDesc("peerq_pool_runs_total", "Statements this peer ran in its pool for the cloud as a gateway, by the status of the pool's partial it reported (exact, converged, sampled, partial, contested, failed).", []string{"status"}, nil)
	descAuthFailures     = prometheus.NewDesc("peerq_exchange_auth_failures_total", "Exchange frames refused: failed authentication (auth), replayed (replay), connections refused at the limit (connections), out of the replay window either way (clock_skew); identity changes of a live member refused (identity_conflict).", []string{"reason"}, nil)
)

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descExchanges, descFailures, descBytes, descRounds, descJoined, descAnnounced, descAnnouncedHolders, descHandedOver, descRefused,
		descRunning, descAsking, descQueued, descMembers, descLease, descOwned, descSubMembers, descSubTarget,
		descRepairs, descPeerHours, descMalformed, descForgedRecords, descAuthFailures, descExport, descExportEpoch, descExportFailures,
		descRefusedLease, descTagFailures, descBadLeaseTags, descUnreadable, descStorageFault, descSkewedPeers,
		descPoolGateway, descCloudPools, descCloudPoolsShort, descGatewaysFailing, descRelays, descGatewayBusy, descPoolRuns, descGatewayFailures} {
		ch <- d
	}
	m.latency.Describe(ch)
	m.rounds.Describe(ch)
	m.answers.Describe(ch)
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	st := m.src.runtime.Stats()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	flag := func(d *prometheus.Desc, on bool) {
		v := 0.0
		if on {
			v = 1
		}
		gauge(d, v)
	}
	counter(descExchanges, st.Exchanges, "out")
	counter(descExchanges, st.Served, "in")
	counter(descFailures, st.Failed)
	counter(descBytes, st.BytesSent, "sent")
	counter(descBytes, st.BytesReceived, "received")
	counter(descRounds, st.Rounds)
	counter(descJoined, st.Joined)
	counter(descAnnounced, st.Announced)
	counter(descAnnouncedHolders, st.AnnouncedHolders)
	counter(descHandedOver, st.HandedOver)
	counter(descRefused, st.Refused, "max_queries")
	counter(descRefused, st.Overloaded, "overloaded")
	counter(descMalformed, st.Malformed)
	gauge(descRunning, float64(st.Running))
	gauge(descAsking, float64(st.Asking))
	gauge(descQueued, float64(st.Queued))
	net := m.src.net
	var states map[string]int
	if s, ok := net.(interface{ MemberStates() map[string]int }); ok {
		states = s.MemberStates()
	}
	if states != nil {
		for state, k := range states {
			gauge(descMembers, float64(k), state)
		}
	} else {
		gauge(descMembers, float64(net.Size()), "alive")
	}
	flag(descLease, st.LeaseHeld)
	owned := m.src.owner.Held()
	names := make([]string, 0, len(owned))
	for name := range owned {
		names = append(names, name)
	}
	sort.Strings(names)
	gauge(descOwned, float64(len(names)))
	for _, name := range names {
		o := owned[name]
		gauge(descSubMembers, float64(len(o.Members)), name)
		gauge(descSubTarget, float64(o.Info.Target), name)
		counter(descRepairs, int64(o.Info.Repairs), name)
		gauge(descPeerHours, o.Info.PeerHours, name)
	}
	if s, ok := net.(interface {
		ExchangeStats() (rejected, replays, refusedConns, skewed, conflicts int64)
	}); ok {
		rejected, replays, refused, skewed, conflicts := s.ExchangeStats()
		counter(descAuthFailures, rejected, "auth")
		counter(descAuthFailures, replays, "replay")
		counter(descAuthFailures, refused, "connections")
		counter(descAuthFailures, skewed, "clock_skew")
		counter(descAuthFailures, conflicts, "identity_conflict")
	}
	counter(descRefusedLease, st.Forged, "forged")
	counter(descRefusedLease, st.OwnerKeyChanged, "owner_key_changed")
	counter(descRefusedLease, st.StaleIncarnation, "stale_incarnation")
	counter(descRefusedLease, st.RelayForged, "relay_forged")
	counter(descForgedRecords, st.ForgedRecords, "forged")
	counter(descTagFailures, st.TagFailures)
	counter(descBadLeaseTags, st.BadLeaseTags)
	counter(descUnreadable, st.Unreadable)
	flag(descStorageFault, st.StorageFault)
	if o, ok := net.(interface {
		ClockOffsets() map[string]time.Duration
	}); ok {
		skewed := 0
		for _, off := range o.ClockOffsets() {
			if off > network.ReplayWindow || -off > network.ReplayWindow {
				skewed++
			}
		}
		gauge(descSkewedPeers, float64(skewed))
	}
	if m.src.pools != nil {
		if ps, ok := m.src.pools.PoolStats(); ok {
			collectPools(ps, gauge, counter)
		}
	}
	m.latency.Collect(ch)
	m.rounds.Collect(ch)
	m.answers.Collect(ch)
	m.exports.collect(ch)
}

// poolRunStatuses are the statuses a pool's partial can have
// (peerq_pool_runs_total).
var poolRunStatuses = []string{answer.StatusExact, answer.StatusConverged, answer.StatusSampled, answer.StatusPartial, answer.StatusContested, statusFailed}

// collectPools emits the pools role's series (a cloud of pools only).
func collectPools(ps PoolStats, gauge func(*prometheus.Desc, float64, ...string), counter func(*prometheus.Desc, int64, ...string)) {
	gateway := 0.0
	if ps.Gateway {
		gateway = 1
	}
	gauge(descPoolGateway, gateway, ps.Pool)
	if ps.Gateway {
		gauge(descCloudPools, float64(ps.Pools))
		gauge(descCloudPoolsShort, float64(ps.Short))
	}
	gauge(descGatewaysFailing, float64(ps.Failing))
	counter(descGatewayFailures, ps.Failures)
	for way, name := range relayWays {
		for i, result := range relayResults {
			counter(descRelays, ps.Relays[way][i], name, result)
		}
	}
	counter(descGatewayBusy, ps.Busy)
	// Every status from the start, at 0 until it happens: a series that
	// appears at its first increment hides that increment from rate().
	for _, status := range poolRunStatuses {
		counter(descPoolRuns, ps.Runs[status], status)
	}
	for _, status := range slices.Sorted(maps.Keys(ps.Runs)) {
		if !slices.Contains(poolRunStatuses, status) {
			counter(descPoolRuns, ps.Runs[status], status)
		}
	}
}

// export is a standing query whose latest answer /metrics shows as gauges
// (--export): cloud-wide metrics with no central collector.
type export struct {
	name string // its label, export="name"
	text string
	ans  *answer.Answer // the latest complete epoch's; nil before the first shown
	err  error
}

// exports are a node's standing queries, as the collector shows them. It
// is safe for concurrent use.
type exports struct {
	mu       sync.Mutex
	list     []*export
	failures int64 // epochs that failed or were partial
}

// add lists e, whose name no other export may have: it is the series'
// identity in Prometheus.
func (x *exports) add(e *export) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, o := range x.list {
		if o.name == e.name {
			return fmt.Errorf("node: two exports named %q (%q and %q): give each its own name", e.name, o.text, e.text)
		}
	}
	x.list = append(x.list, e)
	return nil
}

// epoch takes an epoch's answer of e (or its error): a complete one
// replaces the last, any other counts as a failure. Until e shows its
// first answer, a complete one is shown only if settled (the membership
// had not changed for a while when it came): one taken while members
// still arrive — an agent that has just started counts itself alone,
// COUNT(*) 1 — is not the cloud's.
func (x *exports) epoch(e *export, ans *answer.Answer, err error, settled bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	complete := ans != nil && ans.Meta != nil && !ans.Meta.Flagged()
	if complete && (e.ans != nil || settled) {
		e.ans = ans
	}
	e.err = err
	if !complete {
		x.failures++
	}
}

var (
	descExport         = prometheus.NewDesc("peerq_export_value", "A standing query's latest answer (--export): one gauge per group and aggregate column; group is the GROUP BY keys joined by '/'.", []string{"export", "column", "group"}, nil)
	descExportEpoch    = prometheus.NewDesc("peerq_export_epoch", "The epoch of a standing query's latest complete answer.", []string{"export"}, nil)
	descExportFailures = prometheus.NewDesc("peerq_export_failures_total", "Epochs of standing queries that failed or were partial (the last complete answer stays).", nil, nil)
)

// collect emits the standing queries' latest answers.
func (x *exports) collect(ch chan<- prometheus.Metric) {
	x.mu.Lock()
	defer x.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descExportFailures, prometheus.CounterValue, float64(x.failures))
	for _, e := range x.list {
		if e.ans == nil {
			continue
		}
		id := e.name
		ch <- prometheus.MustNewConstMetric(descExportEpoch, prometheus.GaugeValue, float64(e.ans.Meta.Epoch), id)
		groupCols := map[int]bool{}
		for j, c := range e.ans.Columns {
			if c.Kind == answer.KindString || c.Kind == answer.KindBool {
				groupCols[j] = true
			}
		}
		text := e.ans.Text()
		for r, row := range e.ans.Rows {
			var keys []string
			for j := range row {
				if groupCols[j] {
					keys = append(keys, text[r][j])
				}
			}
			for j, v := range row {
				if groupCols[j] {
					continue
				}
				if x, ok := gauge(v); ok {
					ch <- prometheus.MustNewConstMetric(descExport, prometheus.GaugeValue, x, id, e.ans.Columns[j].Name, strings.Join(keys, "/"))
				}
			}
		}
	}
}

// gauge is a value as a gauge reads it: its raw value (a count or a size
// is whole, as the API writes it); NULL and text are not.
func gauge(v answer.Value) (float64, bool) {
	switch x := v.Raw().(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	}
	return 0, false
}
