package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/identity"
	"github.com/peerq/peerq/node/network"
	"github.com/peerq/peerq/parser"
	"github.com/peerq/peerq/query"
)

// A gateway knows the pools the cloud pool holds and the other pools'
// gateways' addresses; each member gets its own few of those
// (rendezvous hashing), not every member the same.
func TestHeldBy(t *testing.T) {
	gw := func(pool, name, addr string) network.Member {
		return network.Member{Name: name + "." + pool + ".1", Addr: addr, Tags: map[string]string{TagPool: pool, TagGateway: name}}
	}
	ms := []network.Member{
		gw("a", "a0", "10.0.0.1:7948"), gw("a", "a1", "10.0.0.2:7948"), gw("a", "a2", "10.0.0.3:7948"),
		gw("b", "b0", "10.0.1.1:7948"), gw("b", "b1", "10.0.1.2:7948"),
		gw("c", "c0", "10.0.2.1:7948"),
		{Name: "stray", Addr: "10.0.9.9:7948", Tags: map[string]string{TagPool: "d"}}, // no gateway tag: not a gateway
	}
	h := heldBy(ms, "a")
	if want := []string{"10.0.1.1:7948", "10.0.1.2:7948", "10.0.2.1:7948"}; !slices.Equal(h.addrs, want) {
		t.Errorf("addresses %v, want %v (other pools' gateways)", h.addrs, want)
	}
	if want := []string{"a", "b", "c"}; !slices.Equal(h.names, want) || h.sum != namesDigest(want) || h.sum == namesDigest([]string{"a", "b"}) {
		t.Errorf("pools %v (digest %x), want %v", h.names, h.sum, want)
	}
	var many []string
	for i := range 300 {
		many = append(many, fmt.Sprintf("10.1.%d.%d:7948", i/100, i%100))
	}
	firsts := map[string]bool{}
	for i := range 50 {
		seeds := pickSeeds(many, fmt.Sprintf("m%d", i), maxLearnedSeeds)
		if len(seeds) != maxLearnedSeeds || !slices.Equal(seeds, pickSeeds(many, fmt.Sprintf("m%d", i), maxLearnedSeeds)) {
			t.Fatalf("m%d: %v, not %d, or not the same twice", i, seeds, maxLearnedSeeds)
		}
		for _, a := range seeds {
			if !slices.Contains(many, a) {
				t.Fatalf("m%d: %s is not one of the addresses", i, a)
			}
		}
		firsts[seeds[0]] = true
	}
	if len(firsts) < 30 { // 50 members, 300 addresses: about 46 distinct
		t.Errorf("50 members' first addresses: only %d distinct", len(firsts))
	}
	if got := pickSeeds(many[:3], "m0", maxLearnedSeeds); len(got) != 3 {
		t.Errorf("3 addresses: picked %v", got)
	}
}

// A member keeps what any gateway told it for PoolMemory: a gateway that
// leaves pools out (a liar, or one that started a cloud pool of its own)
// does not make them forgotten.
func TestLearnedHeard(t *testing.T) {
	now := time.Unix(1e6, 0)
	var l learnedCloud
	l.heard([]string{"a", "b", "c"}, "a", now, 10*time.Minute)
	l.heard([]string{"a"}, "a", now.Add(5*time.Minute), 10*time.Minute)
	if _, ok := l.pools["b"]; !ok || len(l.pools) != 2 {
		t.Errorf("after a list without b and c: %v", l.pools)
	}
	l.heard([]string{"a", "c"}, "a", now.Add(10*time.Minute), 10*time.Minute)
	if _, ok := l.pools["b"]; ok || l.pools["c"] != now.Add(10*time.Minute) {
		t.Errorf("b not heard of for 10 minutes is kept, or c not renewed: %v", l.pools)
	}
	if got := (&learnedCloud{seeds: []string{"x", "y"}}).next(3); !slices.Equal(got, []string{"y"}) {
		t.Errorf("the 4th try's address: %v", got)
	}
}

// What a gateway tells is checked before it is kept: bounded, each
// address an IP and a port, each name a pool's, in order.
func TestCheckLearned(t *testing.T) {
	long := strings.Repeat("x", maxPoolName+1)
	var tooMany []string
	for i := range maxLearnedSeeds + 1 {
		tooMany = append(tooMany, fmt.Sprintf("10.0.0.%d:7948", i))
	}
	for _, c := range []struct {
		name     string
		r        poolResp
		loopback bool
		err      string
	}{
		{"good", poolResp{Seeds: []string{"10.0.0.1:7948", "[2001:db8::1]:7948"}, Held: []string{"a", "b"}}, false, ""},
		{"unchanged", poolResp{Seeds: []string{"10.0.0.1:7948"}, Unchanged: true}, false, ""},
		{"loopback, agents on one machine", poolResp{Seeds: []string{"127.0.0.1:7948"}}, true, ""},
		{"loopback, told a peer on a network", poolResp{Seeds: []string{"127.0.0.1:7948"}}, false, "not a cloud pool address"},
		{"too many addresses", poolResp{Seeds: tooMany}, false, "more than"},
		{"a host name", poolResp{Seeds: []string{"host.example:7948"}}, false, "not a cloud pool address"},
		{"no port", poolResp{Seeds: []string{"10.0.0.1"}}, false, "not a cloud pool address"},
		{"port 0", poolResp{Seeds: []string{"10.0.0.1:0"}}, false, "not a cloud pool address"},
		{"unspecified", poolResp{Seeds: []string{"0.0.0.0:7948"}}, false, "not a cloud pool address"},
		{"multicast", poolResp{Seeds: []string{"224.0.0.1:7948"}}, false, "not a cloud pool address"},
		{"port not a number", poolResp{Seeds: []string{"10.0.0.1:http"}}, false, "not a cloud pool address"},
		{"empty name", poolResp{Held: []string{""}}, false, "not a pool's name"},
		{"long name", poolResp{Held: []string{long}}, false, "not a pool's name"},
		{"not UTF-8", poolResp{Held: []string{"a\xff"}}, false, "not a pool's name"},
		{"out of order", poolResp{Held: []string{"b", "a"}}, false, "not a pool's name"},
		{"twice", poolResp{Held: []string{"a", "a"}}, false, "not a pool's name"},
		{"unchanged with a list", poolResp{Held: []string{"a"}, Unchanged: true}, false, "said to be unchanged"},
	} {
		err := checkLearned(c.r, c.loopback)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: %v, want %q", c.name, err, c.err)
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
		now: func() time.Time { return now }, logf: func(string, ...any) {}}
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

// A gateway tells a member its own few addresses, and the pools' names
// only when they changed since the list the member was told last.
func TestTell(t *testing.T) {
	now := time.Unix(1e6, 0)
	p := &pools{cfg: Config{Pool: "a", PoolMemory: 10 * time.Minute}, lan: aloneLAN{name: "a0"}}
	if r := p.tell("m1", nil); !strings.Contains(r.Err, "not in the cloud pool") {
		t.Errorf("not a gateway: %+v", r)
	}
	p.cloud = aloneCloudNet{}
	gw := func(pool, name, addr string) network.Member {
		return network.Member{Name: name, Addr: addr, Tags: map[string]string{TagPool: pool, TagGateway: name}}
	}
	p.holding([]network.Member{gw("a", "a0", "10.0.0.1:7948"), gw("b", "b0", "10.0.1.1:7948"), gw("c", "c0", "10.0.2.1:7948")}, now)
	r := p.tell("m1", nil)
	if !slices.Equal(r.Held, []string{"a", "b", "c"}) || r.Unchanged || len(r.Seeds) != 2 || slices.Contains(r.Seeds, "10.0.0.1:7948") {
		t.Fatalf("first ask: %+v", r)
	}
	var sum [8]byte
	binary.BigEndian.PutUint64(sum[:], namesDigest(r.Held))
	if r := p.tell("m1", sum[:]); !r.Unchanged || r.Held != nil || len(r.Seeds) != 2 {
		t.Errorf("the same list again: %+v", r)
	}
	binary.BigEndian.PutUint64(sum[:], namesDigest([]string{"a", "b"}))
	if r := p.tell("m1", sum[:]); r.Unchanged || len(r.Held) != 3 {
		t.Errorf("a list that changed: %+v", r)
	}
	if _, ok := p.learned.pools["b"]; !ok || len(p.learned.seeds) != 2 {
		t.Errorf("the gateway keeps what it would tell, for when it is not one: %+v", p.learned)
	}
}

// An asker given no --cloud-join whose cloud pool holds no pool but its
// own, while it learned of other pools' gateways, answers partial: when
// every gateway of two pools died at once, each pool's new gateways knew
// only the other's dead ones, and once PoolMemory had passed a pool
// answered exact over itself.
func TestCutOffByWhatWasLearned(t *testing.T) {
	p := &pools{cfg: Config{Pool: "b"}, lan: aloneLAN{name: "b1"}}
	views := map[string]poolView{"b": {Name: "b", Gateways: []string{"b1"}}}
	if why := p.cutOff(views); why != "" {
		t.Errorf("nothing learned: %q", why)
	}
	p.learned.seeds = []string{"10.0.0.1:7948"}
	if why := p.cutOff(views); !strings.Contains(why, "learned of other pools' gateways at 10.0.0.1:7948") {
		t.Errorf("learned, alone: %q", why)
	}
	views["a"] = poolView{Name: "a", Gateways: []string{"a0"}}
	if why := p.cutOff(views); why != "" {
		t.Errorf("another pool there: %q", why)
	}
}

// A tag the asker's pool lacks is unknown only when every pool answered
// and a majority of each pool's listed gateways say it lacks it: one
// lying gateway can neither make a pool lack it nor have it; a pool that
// did not answer leaves a warning, not an error.
func TestUnknownEverywhere(t *testing.T) {
	perr := &parser.Error{Pos: parser.Pos{Line: 1, Column: 34}, Msg: `unknown attribute "gpu"`}
	plan := &query.Plan{Unlisted: []query.Unlisted{{Name: "gpu", Err: perr}}}
	reports := func(lack ...bool) []verified {
		var out []verified
		for _, l := range lack {
			v := verified{}
			if l {
				v.body.Lacks = []string{"gpu"}
			}
			out = append(out, v)
		}
		return out
	}
	chosen := &verified{}
	cases := []struct {
		name    string
		a, b    []verified
		bAnswer bool
		err     bool
		warning bool
	}{
		{"no pool has it", reports(true, true, true), reports(true, true, true), true, true, false},
		{"one of b's gateways says b lacks it", reports(true, true, true), reports(true, false, false), true, false, false},
		{"one of b's gateways says b has it", reports(true, true, true), reports(true, true, false), true, true, false},
		{"b's only report says it lacks it", reports(true, true, true), reports(true), true, false, false},
		{"b did not answer", reports(true, true, true), nil, false, false, true},
	}
	for _, c := range cases {
		decided := []pooled{{ps: answer.PoolStatus{Pool: "a", Gateways: 3}, chosen: chosen}, {ps: answer.PoolStatus{Pool: "b", Gateways: 3}}}
		if c.bAnswer {
			decided[1].chosen = chosen
		}
		var warning string
		err := unknownEverywhere(plan, decided, map[string][]verified{"a": c.a, "b": c.b}, &warning)
		var pe *parser.Error
		if c.err != (err != nil) || c.err && (!errors.As(err, &pe) || pe.Pos != perr.Pos) {
			t.Errorf("%s: %v, want an error at 1:34: %v", c.name, err, c.err)
		}
		if c.warning != (warning != "") {
			t.Errorf("%s: warning %q, want one: %v", c.name, warning, c.warning)
		}
	}
}

// A pool's tags (SHOW ATTRIBUTES) are those a majority of its listed
// gateways name: one lying gateway can neither add a tag to its pool nor
// hide one, nor say there are more than a report names. Mutation: taking
// any gateway's word fails the first two cases.
func TestTagsByPool(t *testing.T) {
	report := func(more int, tags ...string) verified {
		v := verified{}
		v.body.Tags, v.body.MoreTags = tags, more
		return v
	}
	chosen := &verified{}
	cases := []struct {
		name    string
		reports []verified
		listed  int
		want    []string
		more    int
	}{
		{"a liar adds a tag", []verified{report(0, "gpu"), report(0, "gpu"), report(0, "fake", "gpu")}, 3, []string{"gpu"}, 0},
		{"a liar hides one", []verified{report(0, "gpu", "ssd"), report(0, "gpu", "ssd"), report(0, "ssd")}, 3, []string{"gpu", "ssd"}, 0},
		{"a liar says there are more", []verified{report(0, "gpu"), report(0, "gpu"), report(9, "gpu")}, 3, []string{"gpu"}, 0},
		{"two say more", []verified{report(4, "gpu"), report(5, "gpu"), report(0, "gpu")}, 3, []string{"gpu"}, 4},
		{"one report of three listed", []verified{report(0, "gpu")}, 3, nil, 0},
		{"two of three listed agree", []verified{report(0, "gpu"), report(0, "gpu")}, 3, []string{"gpu"}, 0},
	}
	for _, c := range cases {
		decided := []pooled{{ps: answer.PoolStatus{Pool: "b", Gateways: c.listed}, chosen: chosen}, {ps: answer.PoolStatus{Pool: "c", Gateways: 3}}}
		got := tagsByPool(decided, map[string][]verified{"b": c.reports})
		if !slices.Equal(got["b"].names, c.want) || got["b"].more != c.more {
			t.Errorf("%s: %v, %d more; want %v, %d more", c.name, got["b"].names, got["b"].more, c.want, c.more)
		}
		if _, in := got["c"]; in {
			t.Errorf("%s: pool c, which did not answer, has tags %v", c.name, got["c"])
		}
	}
}

// A report names tags only when asked, in order, not built in nor
// peerq's own, and as many as it may.
func TestTagsOK(t *testing.T) {
	asked := &query.Plan{ListTags: true}
	many := make([]string, maxPoolTags)
	for i := range many {
		many[i] = fmt.Sprintf("t%04d", i)
	}
	cases := []struct {
		name string
		plan *query.Plan
		tags []string
		more int
		ok   bool
	}{
		{"asked", asked, []string{"gpu", "ssd"}, 0, true},
		{"not asked", &query.Plan{}, []string{"gpu"}, 0, false},
		{"none, not asked", &query.Plan{}, nil, 0, true},
		{"out of order", asked, []string{"ssd", "gpu"}, 0, false},
		{"twice", asked, []string{"gpu", "gpu"}, 0, false},
		{"built in", asked, []string{"cpu_cores"}, 0, false},
		{"peerq's own", asked, []string{"peerq_id"}, 0, false},
		{"well known", asked, []string{"zone"}, 0, false},
		{"empty", asked, []string{""}, 0, false},
		{"the most, and more", asked, many, 7, true},
		{"more, though not the most", asked, []string{"gpu"}, 7, false},
		{"more than the most", asked, append(slices.Clone(many), "zz"), 0, false},
		{"negative more", asked, many, -1, false},
	}
	for _, c := range cases {
		if got := tagsOK(c.plan, c.tags, c.more); got != c.ok {
			t.Errorf("%s: %v, want %v", c.name, got, c.ok)
		}
	}
}

// The pools an asker knows of that its coordinators' views leave out are
// named in its answer, partial: a coordinator that died as it answered
// listed none. Mutation: without them, the answer is exact over pool b.
func TestKnownPoolsNamed(t *testing.T) {
	now := time.Unix(1e6, 0)
	p := &pools{cfg: Config{Pool: "b", Gateways: 3, PoolMemory: 10 * time.Minute}, lan: aloneLAN{name: "b1"},
		now: func() time.Time { return now }, logf: func(string, ...any) {}}
	p.learned.pools = map[string]time.Time{"a": now.Add(-time.Minute), "old": now.Add(-11 * time.Minute)}
	plan, err := query.CompileText("SELECT COUNT(*) FROM peers", query.DefaultCatalog(), query.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	a, _, err := p.combine(plan, newQueryID(), poolResp{Done: true}, p.lan.Members(), now)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ps := range a.Meta.Pools {
		names = append(names, ps.Pool)
		if ps.Pool == "a" && ps.Status != StatusPartial {
			t.Errorf("pool a, known and not listed: %s", ps.Status)
		}
	}
	if !slices.Equal(names, []string{"a", "b"}) || a.Meta.Status != StatusPartial || !strings.Contains(a.Meta.Reason, "pool a:") {
		t.Errorf("pools %v, %s (%s): want a named partial beside b, old forgotten", names, a.Meta.Status, a.Meta.Reason)
	}
	// What an answer's coordinators list is known from then on, as what
	// a gateway tells: the next answer that lists nothing names it.
	// Mutation: without heardOf, c is not named.
	if _, _, err := p.combine(plan, newQueryID(), poolResp{Done: true, Pools: []poolView{{Name: "c"}, {Name: strings.Repeat("x", maxPoolName+1)}}}, p.lan.Members(), now); err != nil {
		t.Fatal(err)
	}
	if got := p.otherPools(); !slices.Equal(got, []string{"a", "c"}) {
		t.Errorf("known after an answer that listed c (and a name too long): %v, want a and c", got)
	}
}

// A pool is answered for by the gateways that a majority of its own
// roster say are its gateways now (reportBody.Roster), while the cloud
// pool still lists ones that died; one liar can drop no honest gateway.
// Mutation: without current, the first two cases keep all six listed;
// without its subset check, the one with a gateway not listed yet fails.
func TestCurrentRoster(t *testing.T) {
	view := func(names ...string) poolView {
		v := poolView{Name: "b"}
		for _, n := range names {
			v.Gateways, v.Keys, v.at = append(v.Gateways, n), append(v.Keys, []byte(n)), append(v.at, n+".cloud")
		}
		return v
	}
	rep := func(gateway string, roster ...string) verified {
		v := verified{gateway: gateway}
		v.body.Roster = roster
		return v
	}
	dead := []string{"d1", "d2", "d3"}
	cases := []struct {
		name    string
		listed  poolView
		reports []verified
		want    []string // the gateways that count; nil: as listed
		kept    int      // reports that count
	}{
		{"the new gateways, the dead still listed", view(append(dead, "h1", "h2", "h3")...),
			[]verified{rep("h1", "h1", "h2", "h3"), rep("h2", "h1", "h2", "h3"), rep("h3", "h1", "h2", "h3")}, []string{"h1", "h2", "h3"}, 3},
		{"two of the new", view(append(dead, "h1", "h2", "h3")...),
			[]verified{rep("h1", "h1", "h2", "h3"), rep("h3", "h1", "h2", "h3")}, []string{"h1", "h2", "h3"}, 2},
		{"one of the new", view(append(dead, "h1", "h2", "h3")...),
			[]verified{rep("h1", "h1", "h2", "h3")}, nil, 1},
		{"a liar says the pool is itself", view("h1", "h2", "L"),
			[]verified{rep("L", "L")}, nil, 1},
		{"a liar names dead ones", view(append(dead, "h1", "h2", "L")...),
			[]verified{rep("h1", "L", "h1", "h2"), rep("h2", "L", "h1", "h2"), rep("L", "L", "d1", "d2")}, []string{"h1", "h2", "L"}, 3},
		{"a liar names gateways not listed", view(append(dead, "h1", "h2", "L")...),
			[]verified{rep("L", "L", "x", "y"), rep("h1", "L", "h1", "h2")}, nil, 2},
		{"a roster with a gateway not listed yet", view(append(dead, "h1", "h2")...),
			[]verified{rep("h1", "h1", "h2", "h3"), rep("h2", "h1", "h2", "h3")}, nil, 2}, // no key for h3: as listed, until it is
		{"a roster its reporter is not in", view(append(dead, "h1", "h2", "h3")...),
			[]verified{rep("d1", "h1", "h2", "h3"), rep("h1", "h1", "h2", "h3")}, nil, 2},
		{"two rosters as large", view("a1", "a2", "a3", "b1", "b2", "b3"),
			[]verified{rep("a1", "a1", "a2", "a3"), rep("a2", "a1", "a2", "a3"), rep("b1", "b1", "b2", "b3"), rep("b2", "b1", "b2", "b3")}, nil, 4},
		{"older gateways, no roster", view(append(dead, "h1", "h2", "h3")...),
			[]verified{rep("h1"), rep("h2"), rep("h3")}, nil, 3},
		{"a pool of two", view("x", "y"), []verified{rep("x", "x", "y"), rep("y", "x", "y")}, nil, 2},
	}
	for _, c := range cases {
		got, kept := current(c.listed, c.reports, 3)
		want := c.want
		if want == nil {
			want = c.listed.Gateways
		}
		if !slices.Equal(got.Gateways, want) || len(kept) != c.kept || len(got.Keys) != len(want) || len(got.at) != len(want) {
			t.Errorf("%s: gateways %v (%d keys), %d reports kept; want %v, %d", c.name, got.Gateways, len(got.Keys), len(kept), want, c.kept)
		}
		for i, g := range got.Gateways {
			if string(got.Keys[i]) != g || got.at[i] != g+".cloud" {
				t.Errorf("%s: gateway %s with key %q at %s", c.name, g, got.Keys[i], got.at[i])
			}
		}
	}
}

// A gateway's failure logged again within the interval is held back, and
// the next line says how many were; keys apart are apart.
func TestQuietLog(t *testing.T) {
	var lines []string
	logf := func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) }
	q := quietLog{every: time.Minute}
	t0 := time.Unix(1e6, 0)
	for i := range 10 {
		q.logf(logf, t0.Add(time.Duration(i)*time.Second), "g1", "g1 failed %d", i)
	}
	q.logf(logf, t0.Add(5*time.Second), "g2", "g2 failed")
	q.logf(logf, t0.Add(70*time.Second), "g1", "g1 failed %d", 70)
	q.logf(logf, t0.Add(200*time.Second), "g1", "g1 failed %d", 200)
	want := []string{"g1 failed 0", "g2 failed", "g1 failed 70 (and 9 more like it in the last 1m10s)", "g1 failed 200"}
	if !slices.Equal(lines, want) {
		t.Fatalf("logged %q, want %q", lines, want)
	}
	// Its keys stay bounded.
	for i := range 3 * maxQuietKeys {
		q.logf(func(string, ...any) {}, t0.Add(time.Duration(300+i)*time.Minute), fmt.Sprint(i), "x")
	}
	if len(q.seen) > maxQuietKeys {
		t.Fatalf("%d keys kept, more than %d", len(q.seen), maxQuietKeys)
	}
}

// A gateway listed twice in the cloud pool under the same key (a join that
// timed out after a seed took its state, then a second join) counts once,
// at its latest join's name; a gateway of the same name with another key
// is another. Mutation: without the check, pool b lists b1 three times.
func TestViewListsAGatewayOnce(t *testing.T) {
	key := func(seed byte) identity.Public {
		k, err := identity.New(rand.NewChaCha8([32]byte{seed}))
		if err != nil {
			t.Fatal(err)
		}
		return k.Public()
	}
	k1, k2, k9 := key(1), key(2), key(9)
	gw := func(cloudName, name string, k identity.Public) network.Member {
		return network.Member{Name: cloudName, Key: k, Tags: map[string]string{TagPool: "b", TagGateway: name}}
	}
	p := &pools{cfg: Config{Pool: "a"}, now: func() time.Time { return time.Unix(1e6, 0) }}
	views := p.view(listedCloud{ms: []network.Member{gw("b1.b.2", "b1", k1), gw("b2.b.1", "b2", k2), gw("b1.b.3", "b1", k1), gw("b1.b.1", "b1", k9)}})
	if len(views) != 1 {
		t.Fatalf("views %+v, want pool b's", views)
	}
	v := views[0]
	if !slices.Equal(v.Gateways, []string{"b1", "b2", "b1"}) || !slices.Equal(v.at, []string{"b1.b.3", "b2.b.1", "b1.b.1"}) {
		t.Errorf("pool b: gateways %v at %v; want b1 at its latest join, b2, and the other key's b1", v.Gateways, v.at)
	}
	if joinNumber("b1.b.12") != 12 || joinNumber("b1") != 0 || joinNumber("b1.b.x") != 0 {
		t.Error("joinNumber misreads a cloud name")
	}
}

// listedCloud is a cloud pool whose members are ms.
type listedCloud struct {
	CloudNetwork
	ms []network.Member
}

func (c listedCloud) Members() []network.Member { return c.ms }
