package node

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/peerq/peerq/aggregate"
	"github.com/peerq/peerq/fakenet"
	"github.com/peerq/peerq/node/network"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/run"
	"github.com/peerq/peerq/topk"
)

// liar is a peer that lies on the wire. Its runtime is honest — a peer's
// own record is clamped to the catalog's bounds (Node.record) — so the
// lies are written into what it sends: every top-k message carries its
// entry made from the record it claims (reliability 5 where the bound is
// 1, mem_free above its bound), every aggregate message -0.5 for every
// numeric extreme (within MIN(reliability)'s magnitude, below its range).
type liar struct {
	*fakenet.Host
	mu     sync.Mutex
	claims query.Record            // the record it claims
	plans  map[QueryID]*query.Plan // the queries it has seen, to forge their entries
	forged atomic.Int64            // messages it forged
}

func (l *liar) Serve(h network.Handler) error {
	return l.Host.Serve(func(from string, req []byte) ([]byte, error) {
		l.learn(req)
		resp, err := h(from, req)
		if err != nil {
			return resp, err
		}
		return l.rewrite(resp), nil
	})
}

func (l *liar) Exchange(ctx context.Context, peer string, req []byte) ([]byte, error) {
	l.learn(req)
	return l.Host.Exchange(ctx, peer, l.rewrite(req))
}

// learn keeps the plans a batch carries.
func (l *liar) learn(body []byte) {
	b, err := decodeBatch(body)
	if err != nil {
		return
	}
	for _, e := range b.Entries {
		if len(e.Plan) == 0 {
			continue
		}
		if p, err := query.Decode(e.Plan); err == nil {
			l.mu.Lock()
			l.plans[e.ID] = p
			l.mu.Unlock()
		}
	}
}

// rewrite puts the lies into a batch.
func (l *liar) rewrite(body []byte) []byte {
	b, err := decodeBatch(body)
	if err != nil {
		return body
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, e := range b.Entries {
		p := l.plans[e.ID]
		if p == nil || l.claims == nil {
			continue
		}
		switch e.Kind {
		case protoTopK:
			m, err := topk.Decode(e.Msg)
			lie := run.Entry(p, l.claims)
			if err != nil || lie == nil {
				continue
			}
			es := []*topk.Entry{lie}
			for _, x := range m.Entries {
				if x.Node != lie.Node {
					es = append(es, x)
				}
			}
			slices.SortFunc(es, func(a, b *topk.Entry) int {
				if topk.Less(a, b) {
					return -1
				}
				return 1
			})
			m.Entries = es
			b.Entries[i].Msg = m.Encode(nil)
		case protoAggregate:
			m, err := aggregate.Decode(e.Msg)
			if err != nil || len(m.Ext) == 0 {
				continue
			}
			for j := range m.Ext {
				if !m.Ext[j].IsStr {
					m.Ext[j].Num = -0.5
				}
			}
			b.Entries[i].Msg = m.Encode(nil)
		default:
			continue
		}
		l.forged.Add(1)
	}
	return encodeBatch(b)
}

// A peer that reports reliability 5 (bound 0..1) and more free memory
// than any machine has is ranked by nobody: its messages are refused
// where they arrive, so ORDER BY reliability DESC answers the honest top,
// RESERVE claims the honest best, and a MIN is no lower than any peer
// could report.
func TestReceivedValuesChecked(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const n, liarAt = 12, 4
		c := &cluster{net: fakenet.New(fakenet.DefaultConfig())}
		var l *liar
		for i := 0; i < n; i++ {
			rec, tags := SyntheticPeer(1, i)
			h := c.net.Add(query.SyntheticName(i), tags)
			var nw Network = h
			if i == liarAt {
				l = &liar{Host: h, plans: map[QueryID]*query.Plan{}}
				nw = l
			}
			cfg := DefaultConfig(func() query.Record { return rec })
			cfg.Tags, cfg.Seed = tags, uint64(i)+1
			node, err := New(cfg, nw)
			if err != nil {
				t.Fatal(err)
			}
			c.nodes, c.cfgs = append(c.nodes, node), append(c.cfgs, cfg)
		}
		t.Cleanup(c.close)
		claims := c.nodes[liarAt].record()
		claims["reliability"] = query.Num(query.KindRatio, 5)
		claims["mem_free"] = query.Num(query.KindBytes, 1<<62)
		l.mu.Lock()
		l.claims = claims
		l.mu.Unlock()
		var honest []query.Record
		for i, r := range c.records() {
			if i != liarAt {
				honest = append(honest, r)
			}
		}
		liarName := c.nodes[liarAt].Name()
		malformed := func() (sum int64) {
			for i, nd := range c.nodes {
				if i != liarAt {
					sum += nd.Stats().Malformed
				}
			}
			return sum
		}
		asker := c.nodes[0]

		top := compile(t, asker, "SELECT node FROM peers ORDER BY reliability DESC LIMIT 3")
		res := ask(t, asker, top)
		if slices.Contains(res.Nodes, liarName) {
			t.Errorf("the liar is ranked: %v", res.Nodes)
		}
		sameAnswer(t, res, query.Exact(top, honest), top.Text)
		if l.forged.Load() == 0 || malformed() == 0 {
			t.Errorf("the liar forged %d messages, the others refused %d: the lie did not arrive", l.forged.Load(), malformed())
		}

		low := compile(t, asker, "SELECT MIN(reliability), MIN(mem_free) FROM peers")
		res = ask(t, asker, low)
		if rel, mem := res.Rows[0][0], res.Rows[0][1]; rel.Num < 0 || mem.Num < 0 {
			t.Errorf("MIN(reliability) %v, MIN(mem_free) %v: below what any peer could report", rel, mem)
		}
		sameAnswer(t, res, query.Exact(low, honest), low.Text)

		before := malformed()
		res = ask(t, asker, compile(t, asker, "RESERVE 2 FROM peers ORDER BY reliability DESC AS x FOR 1m"))
		want := query.Exact(compile(t, asker, "SELECT node FROM peers WHERE reserved = false ORDER BY reliability DESC LIMIT 2"), honest)
		if slices.Contains(res.Nodes, liarName) || len(res.Nodes) != 2 || !slices.Equal(res.Nodes, want.Nodes) {
			t.Errorf("RESERVE 2 ... ORDER BY reliability DESC took %v, want the honest best %v (the liar is %s)", res.Nodes, want.Nodes, liarName)
		}
		if _, held := c.nodes[liarAt].leases.current(); held {
			t.Error("the liar holds a lease")
		}
		if malformed() == before {
			t.Error("the RESERVE's search met no lie")
		}
	})
}
