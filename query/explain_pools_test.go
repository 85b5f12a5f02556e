package query

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/peerq/peerq/answer"
)

// TestExplainPools: the cloud level of EXPLAIN says what the asker knows —
// the pools at a gateway, that the gateways know them elsewhere — how many
// runs a pool makes and what a report carries; a statement FROM SUBCLOUD
// says which pool answers it; a RESERVE says it reaches every pool; a
// statement with no gossip has no second level.
func TestExplainPools(t *testing.T) {
	shape := CloudShape{Pool: "eu", PoolPeers: 250, Gateways: 3, Asked: 2, Mine: []string{"a", "b", "c"}, PollEvery: 0.1, Timeout: 60}
	gw := shape
	gw.Pools = []string{"eu", "us"}
	for _, c := range []struct {
		src   string
		shape CloudShape
		want  []string
		not   []string
	}{
		{"SELECT COUNT(*), SUM(mem_free) FROM peers", shape,
			[]string{"levels:", "runs the statement as above", "sample check", "within accuracy", "liars:", "250 in this peer's pool, eu", "this peer is not one", "an honest pool runs it 2 times", "means of the 3 components", "most of its 3 gateways",
				"cloud hops:  4 exchanges one after the other beside the slowest pool's rounds", "each of its 2 gateways asked"},
			[]string{"as this gateway sees it", "for the 2 pools"}},
		{"SELECT node FROM peers ORDER BY mem_free DESC LIMIT 7", gw,
			[]string{"2 in the cloud pool as this gateway sees it: eu, us", "top-7 list", "for the 2 pools"}, []string{"not one"}},
		{"RESERVE 2 FROM peers ORDER BY mem_free DESC AS x FOR 1m", shape,
			[]string{"claims:", "in every pool", "levels:", "top-6 list"}, []string{"pool only"}},
		{"SELECT 1 + 1", shape, nil, []string{"levels:", "pools:"}},
		{"SELECT COUNT(*) FROM SUBCLOUD analytics", shape,
			[]string{"levels:", "analytics's members may be in any pool", "this peer's pool's, else the one pool"}, []string{"by owner:"}},
		{"SELECT COUNT(*) FROM peers", shape, []string{"levels:", "from its gateways' member lists", "to the last digit"}, []string{"subcloud:", "sample check", "liars:"}},
		{"SELECT MEDIAN(mem_free) FROM peers", shape, []string{"the pool's sample stands in"}, nil},
		{"SELECT SUM(mem_free) FROM peers", shape, []string{"liars:"}, []string{"stands in"}},
		{"SELECT MEDIAN(peer_hours) FROM leases", shape, []string{"liars:"}, []string{"stands in"}},
		{"SELECT pool, COUNT(*) FROM SUBCLOUD analytics GROUP BY pool", shape, []string{"runs the statement as above"}, []string{"member lists"}},
	} {
		got := ExplainPools(compile(t, c.src), c.shape)
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: lacks %q:\n%s", c.src, w, got)
			}
		}
		for _, w := range c.not {
			if strings.Contains(got, w) {
				t.Errorf("%s: has %q:\n%s", c.src, w, got)
			}
		}
	}
	// The cloud level's bytes: a pool's, and the cloud's at a gateway,
	// which knows the pools.
	top := compile(t, "SELECT node FROM peers ORDER BY mem_free DESC LIMIT 50")
	pool := 2 * 2 * (len(top.Text) + 2*ReportBytes + top.PartialBytes())
	if got := top.CloudBytes(2); got != pool {
		t.Errorf("a top-50's cloud bytes a pool: %d, want %d", got, pool)
	}
	for _, want := range []string{"cloud bytes: ≈" + answer.FormatBytes(float64(pool)) + " a pool", "≈" + answer.FormatBytes(float64(2*pool)) + " for the 2 pools"} {
		if got := ExplainPools(top, gw); !strings.Contains(got, want) {
			t.Errorf("lacks %q:\n%s", want, got)
		}
	}
	if top.PartialBytes() >= top.MessageBytes(250) {
		t.Errorf("a top-50's partial (%d B) is not smaller than its gossip message (%d B), which carries the reserve and the filter", top.PartialBytes(), top.MessageBytes(250))
	}
}

// At its owner, which lists its members, a FROM SUBCLOUD statement that
// reads only the membership is answered from member lists.
func TestExplainPoolsAtOwner(t *testing.T) {
	plan := compile(t, "SELECT COUNT(*) FROM SUBCLOUD analytics").Across("eu/o1").Listed([]string{"m1", "us/m2"})
	got := ExplainPools(plan, CloudShape{Pool: "eu", PoolPeers: 250, Gateways: 3, Asked: 2, Mine: []string{"g1", "g2", "g3"}})
	for _, want := range []string{"by owner:", "lists its 2 members", "from its gateways' member lists"} {
		if !strings.Contains(got, want) {
			t.Errorf("lacks %q:\n%s", want, got)
		}
	}
}

// TestListed: only a FROM SUBCLOUD statement that reads only the
// membership, with its owner fixed, lists its members; a plan that lists
// them without an owner, or for gossip, is refused on the wire.
func TestListed(t *testing.T) {
	tags := compile(t, "SELECT COUNT(*) FROM SUBCLOUD analytics").Across("eu/o1")
	gossip := compile(t, "SELECT AVG(mem_free) FROM SUBCLOUD analytics").Across("eu/o1")
	if l := tags.Listed([]string{"us/m2", "m1"}); l == nil || !l.FromMemberLists() || !slices.Equal(l.Members, []string{"m1", "us/m2"}) || l.Validate() != nil {
		t.Fatalf("a tag-only statement at its owner: %+v", l)
	}
	if tags.FromMemberLists() || gossip.Listed([]string{"m1"}) != nil || compile(t, "SELECT COUNT(*) FROM SUBCLOUD analytics").Listed(nil) != nil {
		t.Fatal("listed without an owner, or for a statement that reads more than the membership")
	}
	many := make([]string, MaxListed)
	for i := range many {
		many[i] = fmt.Sprintf("pool%d/peer-%06d", i%10, i)
	}
	l := tags.Listed(many)
	if l == nil {
		t.Fatalf("%d members not listed", MaxListed)
	}
	if b, err := l.Encode(); err != nil {
		t.Fatalf("%d listed members of 16 bytes do not encode: %v", MaxListed, err)
	} else if back, err := Decode(b); err != nil || len(back.Members) != MaxListed {
		t.Fatalf("%d listed members do not decode: %v", MaxListed, err)
	}
	if tags.Listed(append(many, "one/more")) != nil {
		t.Fatalf("%d members listed", MaxListed+1)
	}
	bad := *tags
	bad.ByOwner, bad.Members, bad.Owner = true, []string{"m1"}, ""
	if bad.Validate() == nil {
		t.Fatal("a plan listing members without an owner passed Validate")
	}
	bad = *gossip
	bad.ByOwner, bad.Members = true, []string{"m1"}
	if bad.Validate() == nil {
		t.Fatal("a gossip plan listing members passed Validate")
	}
}
