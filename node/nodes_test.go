package node

import (
	"testing"
	"time"

	"github.com/peerq/peerq/fakenet"
)

// A member that fails is listed as departed, with when this peer saw it
// go, and its node page says so; a reserved member's page shows its
// lease, its owner's the subcloud it owns.
func TestNodeInfo(t *testing.T) {
	t.Parallel()
	fake(t, 6, fakenet.DefaultConfig(), func(t *testing.T, c *cluster) {
		elapse(time.Second)
		asker := c.nodes[0]
		ask(t, asker, compile(t, asker, "RESERVE 2 AS pair FOR 10m"))
		elapse(time.Second) // the members' tags spread
		owner, ok := asker.NodeInfo(asker.Name())
		if !ok || !owner.Self || owner.Status != "alive" || len(owner.Owns) != 1 {
			t.Fatalf("the owner's page: %+v (%v)", owner, ok)
		}
		owns := owner.Owns[0]
		if owns.Subcloud != "pair" || len(owns.Members) != 2 || owns.EarliestExpiry == nil || owns.Source != "its owner's table" {
			t.Errorf("owned: %+v", owns)
		}
		member, ok := asker.NodeInfo(owns.Members[0])
		if !ok || member.Self || member.Lease == nil || member.Lease.Subcloud != "pair" || member.Lease.Owner != asker.Name() || member.Lease.Expires == nil {
			t.Errorf("a member's page: %+v (%v)", member, ok)
		}
		if _, ok := member.Tags[TagSubcloud]; ok {
			t.Errorf("a member's tags show its lease: %v", member.Tags)
		}
		if from, ok := c.nodes[1].NodeInfo(owns.Members[0]); !ok || from.Lease == nil || from.Lease.Owner != asker.Name() {
			t.Errorf("the member's page at another agent: %+v", from)
		}
		if o, _ := c.nodes[1].NodeInfo(asker.Name()); len(o.Owns) != 1 || o.Owns[0].Source != "members' tags" {
			t.Errorf("the owner's page at another agent: %+v", o.Owns)
		}

		victim := c.nodes[5].Name()
		before := time.Now()
		c.kill(5)
		elapse(fakenet.DefaultConfig().Detect + time.Second)
		dep := asker.Departed()
		if len(dep) != 1 || dep[0].Name != victim || dep[0].Status != "failed" || dep[0].LastSeen == nil || dep[0].LastSeen.Before(before) {
			t.Fatalf("departed: %+v", dep)
		}
		page, ok := asker.NodeInfo(victim)
		if !ok || page.Status != "failed" || page.LastSeen == nil || page.Tags["region"] == "" {
			t.Errorf("the failed member's page: %+v (%v)", page, ok)
		}
		if _, ok := asker.NodeInfo("no-such-peer"); ok {
			t.Error("a page for a name never seen")
		}
		c.restart(t, 5)
		elapse(time.Second)
		if dep := asker.Departed(); len(dep) != 0 {
			t.Errorf("departed after it came back: %+v", dep)
		}
	})
}
