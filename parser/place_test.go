package parser

import (
	"reflect"
	"testing"
)

// PlaceOf finds the clause, the enclosing calls and the table.
func TestPlaceOf(t *testing.T) {
	for _, c := range []struct {
		before, after string
		want          Place
	}{
		{"SELECT ", "", Place{Statement: "SELECT", Clause: "SELECT"}},
		{"SELECT MAX(", ") FROM leases GROUP BY owner", Place{Statement: "SELECT", Clause: "SELECT", Calls: []string{"max"},
			SelectCalls: []string{"max"}, GroupBy: true, GroupKeys: []string{"owner"}, Table: "leases"}},
		{"SELECT node FROM peers WHERE ", "", Place{Statement: "SELECT", Clause: "WHERE", Table: "peers"}},
		{"SHOW MEMBERS; EXPLAIN WATCH SELECT region, COUNT(*) FROM SUBCLOUD a GROUP BY region, LOWER(zone) ORDER BY ", "",
			Place{Statement: "WATCH", Clause: "ORDER BY", SelectCalls: []string{"count"}, GroupBy: true, GroupKeys: []string{"region"}, Table: "subcloud"}},
		{"RESERVE 5 FROM peers ORDER BY ", "", Place{Statement: "RESERVE", Clause: "ORDER BY", Table: "peers"}},
		{"SELECT node FROM peers WHERE region = 'e", "", Place{Statement: "SELECT", Clause: "WHERE", Table: "peers"}},
	} {
		got := PlaceOf(c.before, c.after)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q|%q:\n got %+v\nwant %+v", c.before, c.after, got, c.want)
		}
	}
}
