package run

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/peerq/peerq/aggregate"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/topk"
)

// The checks of what other peers send (Config.CheckReceived). Peers are
// strangers: every value received is checked where it is used against
// what a peer could have reported — the plan's shape and, for what is an
// attribute, the catalog of the plan's table (its kind, its range, a
// string's length: query.Attr.Check; a peer's own record is clamped to the
// same bounds, so an honest value always passes). The cores call the
// checks on what they would take in — a top-k entry that would enter the
// list, a group not tracked yet, every extreme, histogram bucket and
// sketch — and refuse the whole message (Stats.Rejected), which
// Instance.Step returns as ErrRefused.
//
//   - A top-k entry (CheckEntry): its node is a name a peer could have;
//     its row has the plan's columns, each value of its column's kind and
//     bounds; its sort key is one SortKey could have written
//     (query.Plan.DecodeSortKey), each ORDER BY value within its bounds
//     and equal to what the row says, where the row says it (a column of
//     the same expression, or every attribute the key reads among the
//     row's columns: SELECT node, reliability ... ORDER BY reliability).
//   - A GROUP BY key: the plan's arity, each value as its expression.
//   - A MIN or MAX extreme: its argument's kind and bounds.
//   - A histogram bucket: one that a value within the argument's bounds
//     maps to. Masses (estimates, flows) are checked by the core against
//     Spec's Bounds; sketch registers against the ranks a hash can give.
//
//   - With Config.Seal (the runtime), a top-k entry's proof: the
//     signature of the node it names over the query, the node, the key and
//     the row (EntryMessage), checked last — once per entry and receiver:
//     the core does not check an entry twice, and the runtime's Sealer
//     remembers the signatures it verified. An entry unsigned, or signed
//     by another key, refuses the message (ErrForged).
//
// What a liar can still do: report any value a peer could, about itself —
// reliability 1.0, all memory free — but not about another peer's name
// where entries are sealed (not in the simulator); claim to match the
// WHERE clause; send
// any mass within the bounds' slack to shift a sum or an average, or
// registers (up to the highest rank) that inflate a COUNT DISTINCT; set
// every bit of a top-k's coverage filter, so that the asker may answer
// before it has heard from every peer. An ORDER BY, MIN, MAX, PERCENTILE,
// SUM or GROUP BY over a computed expression (ORDER BY mem_free/cpu_cores)
// has no catalog bound: there only the kind and finiteness are checked
// (and, for a sort key, agreement with the row when the row carries what
// the key reads), so a liar can rank itself first, or set an extreme or a
// sum, with any finite value of the right kind.

// ErrRefused is returned by Instance.Step for a message the core refused:
// of the wrong shape for the plan, or holding a value no peer could have
// reported.
var ErrRefused = errors.New("run: message refused: not of the plan's shape, or a value out of the catalog's bounds")

// catalogOf is the catalog of the table p reads.
func catalogOf(p *query.Plan) *query.Catalog {
	if p.Table == query.TableLeases {
		return query.LeasesCatalog()
	}
	return query.DefaultCatalog()
}

// checkValue checks a value another peer sent for expression e, as e
// evaluates on a peer's clamped record: an attribute the catalog knows
// within its bounds; any other value of e's kind (numbers of any numeric
// kind), finite (DecodeRow and DecodeSortKey see to it), a tag of at most
// query.MaxStringBytes.
func checkValue(cat *query.Catalog, e *query.Expr, v query.Value) error {
	if v.IsNull() {
		return nil
	}
	if e.Op == query.OpAttr {
		if a, ok := cat.Lookup(e.Name); ok {
			return a.Check(v)
		}
	}
	if v.Kind != e.Kind && !(v.Kind.Numeric() && e.Kind.Numeric()) {
		return fmt.Errorf("run: %s holds a %s, want %s", e, v.Kind, e.Kind)
	}
	if e.Op == query.OpAttr && len(v.Str) > query.MaxStringBytes {
		return fmt.Errorf("run: %s of %d bytes", e, len(v.Str))
	}
	return nil
}

// ErrForged wraps the refusal of a record that is not signed by the node
// it names: unsigned, altered, or signed for another query.
var ErrForged = errors.New("run: not signed by the node it names")

// entryProof is the domain of a top-k entry's signature (EntryMessage).
const entryProof = "peerq topk entry v1"

// EntryMessage is what a top-k entry's proof signs: the query (Config.
// Query), the entry's node, sort key and row, each with its length.
func EntryMessage(query []byte, e *topk.Entry) []byte {
	out := make([]byte, 0, len(entryProof)+len(query)+len(e.Node)+len(e.Key)+len(e.Row)+4*binary.MaxVarintLen64)
	out = append(out, entryProof...)
	for _, f := range [][]byte{query, []byte(e.Node), e.Key, e.Row} {
		out = binary.AppendUvarint(out, uint64(len(f)))
		out = append(out, f...)
	}
	return out
}

// extremeProof is the domain of a MIN or MAX extreme's signature
// (ExtremeMessage).
const extremeProof = "peerq extreme v1"

// ExtremeMessage is what an extreme's proof signs: the query, the
// witness's name, the slot (its group and component) and the value.
func ExtremeMessage(query []byte, e aggregate.Extreme) []byte {
	out := make([]byte, 0, len(extremeProof)+len(query)+len(e.Node)+len(e.Str)+4*binary.MaxVarintLen64+9)
	out = append(out, extremeProof...)
	for _, f := range [][]byte{query, []byte(e.Node)} {
		out = binary.AppendUvarint(out, uint64(len(f)))
		out = append(out, f...)
	}
	out = binary.AppendUvarint(out, e.Slot)
	if e.IsStr {
		out = append(out, 1)
		out = binary.AppendUvarint(out, uint64(len(e.Str)))
		return append(out, e.Str...)
	}
	out = append(out, 0)
	return binary.LittleEndian.AppendUint64(out, math.Float64bits(e.Num))
}

// entryCheck checks top-k entries of one plan; what it can derive from
// the plan alone is worked out once.
type entryCheck struct {
	p   *query.Plan
	cat *query.Catalog
	// seal checks each entry's proof, for query (Config.Seal, Query).
	seal  Sealer
	query []byte
	// reliability bounds a node's reliability claims (Config.Reliability).
	reliability func(node string) (float64, bool)
	// attrs holds, per column, the attribute a column that is one carries
	// (not the node, which the entry carries), or "".
	attrs []string
	// keyCol holds, per ORDER BY key, the column of the same expression,
	// or -1; keyEval whether the key reads only attributes the row
	// carries (or the node), so that it can be evaluated on them.
	keyCol  []int
	keyEval []bool
	evals   bool // some keyEval
	// relFloor is the least reliability the plan's WHERE requires of a
	// member (reliabilityFloor), 0 for none: a member whose own claim
	// passes it, but that this peer saw up less, is refused, although
	// the entry need not carry its claim.
	relFloor float64
}

func newEntryCheck(p *query.Plan) *entryCheck {
	c := &entryCheck{p: p, cat: catalogOf(p), attrs: make([]string, len(p.Columns))}
	if p.Table == query.TablePeers {
		c.relFloor = reliabilityFloor(p.Filter)
	}
	carried := map[string]bool{"node": true}
	for i, col := range p.Columns {
		if col.Expr != nil && col.Expr.Op == query.OpAttr && !isNode(col) {
			c.attrs[i] = col.Expr.Name
			carried[col.Expr.Name] = true
		}
	}
	for _, k := range p.Order {
		at := -1
		for i, col := range p.Columns {
			if col.Expr != nil && col.Expr.String() == k.Expr.String() {
				at = i
				break
			}
		}
		eval := true
		walk(k.Expr, func(e *query.Expr) {
			if e.Op == query.OpAttr && !carried[e.Name] {
				eval = false
			}
		})
		c.keyCol, c.keyEval = append(c.keyCol, at), append(c.keyEval, eval && at < 0)
		c.evals = c.evals || eval && at < 0
	}
	return c
}

// reliabilityFloor is the least reliability filter requires of a
// member: the largest c of its top-level AND terms reliability >= c,
// reliability > c, c <= reliability, c < reliability and reliability
// BETWEEN c AND d; 0 when it has none. (A member evaluates the WHERE on
// its own record, its own claim of reliability among it; this is what
// its entry says of that claim, whichever columns it carries.)
func reliabilityFloor(filter *query.Expr) float64 {
	if filter == nil {
		return 0
	}
	if filter.Op == query.OpAnd {
		floor := 0.0
		for _, a := range filter.Args {
			floor = max(floor, reliabilityFloor(a))
		}
		return floor
	}
	isRel := func(e *query.Expr) bool { return e.Op == query.OpAttr && e.Name == "reliability" }
	constant := func(e *query.Expr) (float64, bool) {
		if e.Op != query.OpConst || e.Val == nil || !e.Val.Kind.Numeric() {
			return 0, false
		}
		return e.Val.Num, true
	}
	if len(filter.Args) < 2 {
		return 0
	}
	a, b := filter.Args[0], filter.Args[1]
	switch filter.Op {
	case query.OpGe, query.OpGt, query.OpBetween:
		if c, ok := constant(b); ok && isRel(a) {
			return max(c, 0)
		}
	}
	switch filter.Op {
	case query.OpLe, query.OpLt:
		if c, ok := constant(a); ok && isRel(b) {
			return max(c, 0)
		}
	}
	return 0
}

func walk(e *query.Expr, fn func(*query.Expr)) {
	if e == nil {
		return
	}
	fn(e)
	for _, a := range e.Args {
		walk(a, fn)
	}
}

// CheckEntry checks a top-k entry received from another peer against the
// plan and its catalog (see the top of check.go). The runtime's cores
// call it (Config.CheckReceived) on every entry that would enter a list.
func CheckEntry(p *query.Plan, e *topk.Entry) error { return newEntryCheck(p).check(e) }

func (c *entryCheck) check(e *topk.Entry) error {
	if e.Node == "" {
		return errors.New("run: a top-k entry without a node")
	}
	if err := checkValue(c.cat, nodeExpr, query.Str(e.Node)); err != nil {
		return fmt.Errorf("run: a top-k entry's node: %w", err)
	}
	if c.relFloor > 0 && c.reliability != nil {
		if most, ok := c.reliability(e.Node); ok && most < c.relFloor {
			floor, seen := apart(c.relFloor, most)
			return fmt.Errorf("%w: %s passes WHERE reliability >= %s on its own claim, and this peer saw it up at most %s of the window", ErrImplausible, e.Node, floor, seen)
		}
	}
	row, err := query.DecodeRow(e.Row)
	if err != nil || len(row) != len(c.p.Columns) {
		return fmt.Errorf("run: a top-k row of %d values for %d columns", len(row), len(c.p.Columns))
	}
	for i, v := range row {
		col := c.p.Columns[i]
		if isNode(col) && !v.IsNull() {
			return fmt.Errorf("run: column %s is carried by the entry, not the row", col.Name)
		}
		if err := checkValue(c.cat, col.Expr, v); err != nil {
			return fmt.Errorf("run: column %s: %w", col.Name, err)
		}
		if err := c.plausible(e.Node, col.Expr, v); err != nil {
			return err
		}
	}
	keys, err := c.p.DecodeSortKey(e.Key)
	if err != nil {
		return fmt.Errorf("run: %s's entry: %w", e.Node, err)
	}
	var rec query.Record
	if c.evals {
		rec = query.Record{"node": query.Str(e.Node)}
		for i, name := range c.attrs {
			if name != "" {
				rec[name] = row[i]
			}
		}
	}
	for i, k := range c.p.Order {
		v := keys[i]
		if err := checkValue(c.cat, k.Expr, v); err != nil {
			return fmt.Errorf("run: %s's sort key: %w", e.Node, err)
		}
		if err := c.plausible(e.Node, k.Expr, v); err != nil {
			return err
		}
		var want query.Value
		switch at := c.keyCol[i]; {
		case at >= 0 && isNode(c.p.Columns[at]):
			want = query.Str(e.Node)
		case at >= 0:
			want = row[at]
		case c.keyEval[i]:
			want = query.Eval(k.Expr, rec)
		default:
			continue // only the bounds say anything about it
		}
		if !same(v, want) {
			return fmt.Errorf("run: %s's sort key says %s = %v, its row %v", e.Node, k.Expr, v, want)
		}
	}
	if c.seal == nil {
		return nil
	}
	if err := c.seal.Verify(e.Node, EntryMessage(c.query, e), e.Proof); err != nil {
		return fmt.Errorf("run: %s's entry: %w", e.Node, err)
	}
	return nil
}

// plausible checks a value node claims for expression e against this
// peer's observations: its reliability no higher than it saw.
func (c *entryCheck) plausible(node string, e *query.Expr, v query.Value) error {
	if c.reliability == nil || e.Op != query.OpAttr || e.Name != "reliability" || v.IsNull() {
		return nil
	}
	if most, ok := c.reliability(node); ok && v.Num > most {
		claim, seen := apart(v.Num, most)
		return fmt.Errorf("%w: %s claims reliability %s, this peer saw it up at most %s of the window", ErrImplausible, node, claim, seen)
	}
	return nil
}

// nodeExpr is the node attribute, whose bounds an entry's node must keep.
var nodeExpr = &query.Expr{Op: query.OpAttr, Kind: query.KindString, Name: "node"}

// same reports whether two values are the same ORDER BY value.
func same(a, b query.Value) bool {
	if a.IsNull() || b.IsNull() {
		return a.IsNull() && b.IsNull()
	}
	if a.Kind != b.Kind && !(a.Kind.Numeric() && b.Kind.Numeric()) {
		return false
	}
	return query.Compare(a, b) == 0
}

// validKey checks a GROUP BY key from another peer as GroupResults will
// read it: the plan's arity, each value as its GROUP BY expression.
func validKey(p *query.Plan) func([]byte) bool {
	cat := catalogOf(p)
	return func(key []byte) bool {
		if len(p.GroupBy) == 0 {
			return len(key) == 0 // ungrouped: the one group has no key
		}
		keys, err := query.DecodeRow(key)
		if err != nil || len(keys) != len(p.GroupBy) {
			return false
		}
		for i, g := range p.GroupBy {
			if checkValue(cat, g, keys[i]) != nil {
				return false
			}
		}
		return true
	}
}

// validExtreme checks a MIN or MAX extreme from another peer as
// GroupResults will read it: a string for a string argument, else a number
// of the argument's kind, within its bounds.
//
// With cfg.Seal, the extreme must also be signed by the witness it names
// (ExtremeMessage): an extreme is a value its node vouched for.
func validExtreme(p *query.Plan, cfg Config) func(int, aggregate.Extreme) bool {
	cat := catalogOf(p)
	return func(comp int, x aggregate.Extreme) bool {
		if cfg.Seal != nil {
			if x.Node == "" || cfg.IDOf != nil && cfg.IDOf(x.Node) != x.Witness ||
				cfg.Seal.Verify(x.Node, ExtremeMessage(cfg.Query, x), x.Proof) != nil {
				return false
			}
		}
		if comp >= len(p.Components) || p.Components[comp].Arg == nil {
			return false
		}
		arg := p.Components[comp].Arg
		var v query.Value
		switch {
		case arg.Kind == query.KindString && x.IsStr:
			v = query.Str(x.Str)
		case arg.Kind.Numeric() && !x.IsStr:
			v = query.Num(arg.Kind, x.Num)
		default:
			return false
		}
		return checkValue(cat, arg, v) == nil
	}
}

// validBucket checks a histogram bucket from another peer: for an argument
// with bounds, one that a value within them maps to (buckets are ordered
// as their values, HistValue).
func validBucket(p *query.Plan) func(int, int) bool {
	type span struct {
		lo, hi  float64
		checked bool
	}
	cat := catalogOf(p)
	spans := make([]span, len(p.Components))
	for i, c := range p.Components {
		if c.Kind != query.CompQuantile || c.Arg == nil || c.Arg.Op != query.OpAttr {
			continue
		}
		if a, ok := cat.Lookup(c.Arg.Name); ok && (a.Min != 0 || a.Max != 0) {
			spans[i] = span{aggregate.HistValue(aggregate.HistBucket(a.Min)), aggregate.HistValue(aggregate.HistBucket(a.Max)), true}
		}
	}
	return func(comp, bucket int) bool {
		if comp >= len(spans) || !spans[comp].checked {
			return true
		}
		v := aggregate.HistValue(bucket)
		return v >= spans[comp].lo && v <= spans[comp].hi
	}
}

// apart formats two different shares with as few digits as tell them
// apart, 3 at least: a claim of 1 against a bound of 0.99991 (53 s of
// a week) reads "1.0000" and "0.9999", not "1.000" and "1.000".
func apart(a, b float64) (string, string) {
	for d := 3; ; d++ {
		x, y := strconv.FormatFloat(a, 'f', d, 64), strconv.FormatFloat(b, 'f', d, 64)
		if x != y || d == 12 {
			return x, y
		}
	}
}
