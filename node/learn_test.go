package node

import (
	"context"
	"fmt"
	"github.com/peerq/peerq/identity"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/peerq/peerq/node/network"
)

// A gateway tells its pool's members addresses of other pools' gateways,
// one of each pool in turn, at most maxLearnedSeeds, and every pool the
// cloud pool holds (its own too: the member leaves its own out).
func TestLearnFrom(t *testing.T) {
	now := time.Unix(1e6, 0)
	gw := func(pool, name, addr string) network.Member {
		return network.Member{Name: name + "." + pool + ".1", Addr: addr, Tags: map[string]string{TagPool: pool, TagGateway: name}}
	}
	ms := []network.Member{
		gw("a", "a0", "10.0.0.1:7948"), gw("a", "a1", "10.0.0.2:7948"), gw("a", "a2", "10.0.0.3:7948"),
		gw("b", "b0", "10.0.1.1:7948"), gw("b", "b1", "10.0.1.2:7948"),
		gw("c", "c0", "10.0.2.1:7948"),
		{Name: "stray", Addr: "10.0.9.9:7948", Tags: map[string]string{TagPool: "d"}}, // no gateway tag: not a gateway
	}
	l := learnFrom(ms, "a", now)
	if want := []string{"10.0.1.1:7948", "10.0.2.1:7948", "10.0.1.2:7948"}; !slices.Equal(l.seeds, want) {
		t.Errorf("seeds %v, want %v (other pools' gateways, one of each in turn)", l.seeds, want)
	}
	if len(l.pools) != 3 || l.pools["a"] != now || l.pools["b"] != now || l.pools["c"] != now {
		t.Errorf("pools %v, want a, b and c", l.pools)
	}
	var many []network.Member
	for i := range 20 {
		many = append(many, gw(fmt.Sprintf("p%02d", i), "g", fmt.Sprintf("10.1.%d.1:7948", i)))
	}
	if l := learnFrom(many, "p00", now); len(l.seeds) != maxLearnedSeeds || slices.Contains(l.seeds, "10.1.0.1:7948") || len(l.pools) != 20 {
		t.Errorf("20 pools: seeds %v, %d pools", l.seeds, len(l.pools))
	}
}

// What a gateway tells is checked before it is kept: bounded, each
// address HOST:PORT, each name a pool's.
func TestCheckLearned(t *testing.T) {
	now := time.Unix(1e6, 0)
	long := strings.Repeat("x", maxPoolName+1)
	var tooMany []string
	for i := range maxLearnedSeeds + 1 {
		tooMany = append(tooMany, fmt.Sprintf("10.0.0.%d:7948", i))
	}
	for _, c := range []struct {
		name string
		r    poolResp
		err  string
	}{
		{"good", poolResp{Seeds: []string{"10.0.0.1:7948", "[::1]:7948", "host.example:9"}, Held: []string{"a", "b"}}, ""},
		{"too many addresses", poolResp{Seeds: tooMany}, "more than"},
		{"no port", poolResp{Seeds: []string{"10.0.0.1"}}, "not a cloud pool address"},
		{"port 0", poolResp{Seeds: []string{"10.0.0.1:0"}}, "not a cloud pool address"},
		{"no host", poolResp{Seeds: []string{":7948"}}, "not a cloud pool address"},
		{"port not a number", poolResp{Seeds: []string{"10.0.0.1:http"}}, "not a cloud pool address"},
		{"empty name", poolResp{Held: []string{""}}, "not a pool's name"},
		{"long name", poolResp{Held: []string{long}}, "not a pool's name"},
		{"not UTF-8", poolResp{Held: []string{"a\xff"}}, "not a pool's name"},
	} {
		l, err := checkLearned(c.r, "a", now)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: %v, want %q", c.name, err, c.err)
		case c.err == "" && (len(l.seeds) != 3 || len(l.pools) != 1 || l.pools["b"] != now):
			t.Errorf("%s: kept %v (its own pool a left out)", c.name, l)
		}
	}
}

// A peer that becomes a gateway counts the pools it learned as seen: if
// the cloud pool it joins holds none of them (none of their addresses
// answered), its answers name them, partial, for PoolMemory — they were
// left out of its view, and the pool answered exact over itself.
func TestLearnedPoolsAreSeen(t *testing.T) {
	now := time.Unix(1e6, 0)
	cloud := &aloneCloud{}
	p := &pools{cfg: Config{Pool: "b", Gateways: 3, Cloud: cloud, PoolMemory: 10 * time.Minute}, lan: aloneLAN{name: "b3"},
		now: func() time.Time { return now }, seen: map[string]time.Time{}, logf: func(string, ...any) {}}
	p.ctx = t.Context()
	p.learned = learnedCloud{seeds: []string{"10.0.0.1:7948"}, pools: map[string]time.Time{"a": now.Add(-time.Minute), "old": now.Add(-11 * time.Minute)}}
	for range gatewayStreak {
		p.tend()
	}
	if p.cloudNet() == nil {
		t.Fatal("never joined the cloud pool")
	}
	if !slices.Equal(cloud.learned, []string{"10.0.0.1:7948"}) {
		t.Errorf("joined through %v, want the learned address", cloud.learned)
	}
	var names []string
	for _, v := range p.view(p.cloudNet()) {
		names = append(names, v.Name)
		if v.Name == "a" && len(v.Gateways) != 0 {
			t.Errorf("pool a has gateways %v", v.Gateways)
		}
	}
	if want := []string{"a", "b"}; !slices.Equal(names, want) {
		t.Errorf("view %v, want %v (a learned a minute ago, missing; old learned past PoolMemory)", names, want)
	}
}

// aloneLAN is a pool of one member, this peer.
type aloneLAN struct {
	Network
	name string
}

func (n aloneLAN) Name() string              { return n.name }
func (n aloneLAN) Members() []network.Member { return []network.Member{{Name: n.name}} }
func (n aloneLAN) EachMember(f func(string)) { f(n.name) }
func (n aloneLAN) Member(name string) (network.Member, bool) {
	return network.Member{Name: n.name}, name == n.name
}

// aloneCloud is a cloud pool that nobody else is in.
type aloneCloud struct{ learned []string }

func (c *aloneCloud) Join(_ context.Context, name, pool string, _ *identity.Key, _, learned []string) (CloudNetwork, error) {
	c.learned = learned
	return aloneCloudNet{m: network.Member{Name: name + "." + pool + ".1", Tags: map[string]string{TagPool: pool, TagGateway: name}}}, nil
}

type aloneCloudNet struct {
	CloudNetwork
	m network.Member
}

func (c aloneCloudNet) Members() []network.Member   { return []network.Member{c.m} }
func (c aloneCloudNet) Serve(network.Handler) error { return nil }
func (c aloneCloudNet) Size() int                   { return 1 }
