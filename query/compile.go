package query

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/parser"
)

// Compile type-checks stmt against the catalog and compiles it into a Plan.
// Errors are *parser.Error values pointing at the offending column, with the
// prefix the shell shows: "1:8: unknown attribute ...".
func Compile(stmt parser.Statement, cat *Catalog, cfg Config) (*Plan, error) {
	if cfg.MaxRows <= 0 || cfg.MaxRows > MaxK {
		return nil, fmt.Errorf("query: Config.MaxRows %d is outside 1..%d", cfg.MaxRows, MaxK)
	}
	if cfg.MaxGroups <= 0 || cfg.MaxGroups > MaxGroups {
		return nil, fmt.Errorf("query: Config.MaxGroups %d is outside 1..%d", cfg.MaxGroups, MaxGroups)
	}
	if !(cfg.Accuracy > 0 && cfg.Accuracy < 1) {
		return nil, fmt.Errorf("query: Config.Accuracy %v is outside (0,1)", cfg.Accuracy)
	}
	c := &compiler{cat: cat, cfg: cfg}
	var p *Plan
	var err error
	switch s := stmt.(type) {
	case *parser.Explain:
		p, err = Compile(s.Stmt, cat, cfg)
		if p != nil {
			p.Explain = true
			p.Text = s.String()
		}
		return p, err
	case *parser.Select:
		if s.From == nil {
			p, err = c.compileConst(s)
		} else {
			p, err = c.compileSelect(s)
		}
	case *parser.Reserve:
		p, err = c.compileReserve(s)
	case *parser.Release:
		p = &Plan{Kind: PlanLocal, Local: &LocalSpec{Release: s.Name.Name}}
		if len(s.Name.Name) > MaxStringBytes {
			err = parser.Errorf(s.Name.Pos, "subcloud name is longer than %d bytes", MaxStringBytes)
		}
	case *parser.Show:
		p = &Plan{Kind: PlanLocal, Local: &LocalSpec{Show: showOf[s.What]}}
	case *parser.Alter:
		p, err = compileAlter(s)
	case *parser.Watch:
		if s.Select.From == nil {
			return nil, parser.Errorf(s.Select.Pos, "WATCH needs FROM: a SELECT without FROM is a constant, the same at every epoch")
		}
		if p, err = c.compileSelect(s.Select); err == nil {
			p.Watch = &WatchSpec{EverySeconds: DefaultWatchSeconds}
			if s.Every != nil {
				l := s.Every
				switch {
				case l.Kind != parser.LitNumber || l.Unit != parser.UnitDuration:
					err = parser.Errorf(l.Pos, "EVERY needs a duration such as 10s, found %s", l.Raw)
				case l.Num < MinWatchSeconds || l.Num > MaxWatchSeconds:
					err = parser.Errorf(l.Pos, "EVERY %s is outside %s..%s", l.Raw, answer.FormatDuration(MinWatchSeconds), answer.FormatDuration(MaxWatchSeconds))
				default:
					p.Watch.EverySeconds = l.Num
				}
			}
		}
	default:
		return nil, fmt.Errorf("query: unknown statement %T", stmt)
	}
	if err != nil {
		return nil, err
	}
	p.Text = stmt.String()
	p.Unlisted = c.unlisted
	if err := p.Validate(); err != nil {
		// Compile checks every limit with a positioned error first; reaching
		// here means the compiler and Validate disagree.
		return nil, fmt.Errorf("query: compiled plan is invalid: %w", err)
	}
	return p, nil
}

// CompileText parses one statement and compiles it.
func CompileText(text string, cat *Catalog, cfg Config) (*Plan, error) {
	stmt, err := parser.ParseOne(text)
	if err != nil {
		return nil, err
	}
	return Compile(stmt, cat, cfg)
}

// compiler holds the state of one compilation.
type compiler struct {
	cat   *Catalog
	cfg   Config
	nodes int // expression nodes so far, against MaxExprNodes

	// Aggregate mode: GROUP BY keys by canonical text, and the aggregates
	// and components collected so far.
	grouped   bool
	groupText []string
	groupKind []Kind
	aggs      []Aggregate
	aggText   []string
	// unlisted are the names read as tags though the catalog (open) did
	// not hold them (Plan.Unlisted).
	unlisted []Unlisted
	comps    []Component
}

// scope says what an expression may contain where it appears.
type scope struct {
	clause string // "WHERE", "GROUP BY", ... for messages
	agg    bool   // aggregate mode: attributes only inside aggregates or as group keys
	inAgg  string // the aggregate we are inside, if any
}

func (c *compiler) compileSelect(s *parser.Select) (*Plan, error) {
	p := &Plan{}
	if s.From.Leases {
		// The ledger has its own columns, and several rows a peer: only
		// aggregates add them up (a top-k ranks one entry a peer).
		c.cat, p.Table = LeasesCatalog(), TableLeases
		grouped := len(s.GroupBy) > 0
		for _, it := range s.Items {
			grouped = grouped || !it.Star && hasAggregate(it.Expr)
		}
		if !grouped {
			return nil, parser.Errorf(s.From.Pos, "FROM leases answers aggregates (SUM, COUNT, AVG, MIN, MAX with GROUP BY), not rows: a peer holds several leases; try SELECT owner, SUM(peer_hours) FROM leases GROUP BY owner")
		}
	}
	filter, err := c.compileSource(s.From, s.Where)
	if err != nil {
		return nil, err
	}
	p.Filter = filter
	if s.From.Subcloud != "" {
		p.Subcloud = s.From.Subcloud
	}
	if err := c.applyOptions(p, s.With, false); err != nil {
		return nil, err
	}

	c.grouped = len(s.GroupBy) > 0
	for _, it := range s.Items {
		if !it.Star && hasAggregate(it.Expr) {
			c.grouped = true
		}
	}
	if c.grouped {
		err = c.compileAggregate(p, s)
	} else {
		err = c.compileTopK(p, s)
	}
	if err != nil {
		return nil, err
	}
	// A ledger is each peer's own: nothing of it is in the membership.
	p.FromTags = p.Table == TablePeers && p.readsOnlyMembership()
	return p, nil
}

// compileConst compiles a SELECT without FROM: constants, answered by the
// asking peer at once. It reads no table, so it has no attributes,
// aggregates or *, and nothing to group, order or tune.
func (c *compiler) compileConst(s *parser.Select) (*Plan, error) {
	noFrom := func(pos parser.Pos, what string) error {
		return parser.Errorf(pos, "%s needs FROM: a SELECT without FROM computes constants (add FROM peers)", what)
	}
	switch {
	case len(s.GroupBy) > 0:
		return nil, noFrom(s.GroupBy[0].Position(), "GROUP BY")
	case len(s.OrderBy) > 0:
		return nil, noFrom(s.OrderBy[0].Pos, "ORDER BY")
	case len(s.With) > 0:
		return nil, noFrom(s.With[0].Pos, "WITH")
	}
	exprs := []parser.Expr{s.Where}
	for _, it := range s.Items {
		if it.Star {
			return nil, noFrom(it.Pos, "SELECT *")
		}
		exprs = append(exprs, it.Expr)
	}
	for _, e := range exprs {
		if pos := aggregatePos(e); pos != (parser.Pos{}) {
			return nil, noFrom(pos, "an aggregate")
		}
		var name *parser.Ident
		parser.Walk(e, func(x parser.Expr) bool {
			if id, ok := x.(*parser.Ident); ok && name == nil {
				name = id
			}
			return name == nil
		})
		if name != nil {
			return nil, noFrom(name.Pos, "attribute "+parser.QuoteIdent(name.Name))
		}
	}
	p := &Plan{Kind: PlanLocal, Local: &LocalSpec{Const: true}, K: 1}
	var err error
	if p.Filter, err = c.compileSource(nil, s.Where); err != nil {
		return nil, err
	}
	if p.Columns, err = c.columns(s.Items, scope{clause: "SELECT"}); err != nil {
		return nil, err
	}
	if s.Limit != nil {
		if p.K, err = limit(s.Limit); err != nil {
			return nil, err
		}
		p.K, p.Limited = min(p.K, 1), true
	}
	return p, nil
}

// ConstAnswer answers a constant SELECT (Local.Const): its one row, or
// none when its WHERE is not true or its LIMIT is 0.
func (p *Plan) ConstAnswer() *answer.Answer {
	res := &answer.Answer{Columns: p.AnswerColumns()}
	if p.K > 0 && p.Matches(Record{}) {
		res.Rows = [][]Value{p.Project(Record{})}
	}
	return res
}

// compileSource turns FROM and WHERE into one filter.
func (c *compiler) compileSource(src *parser.Source, where parser.Expr) (*Expr, error) {
	var filter *Expr
	if where != nil {
		f, err := c.expr(where, scope{clause: "WHERE"})
		if err != nil {
			return nil, err
		}
		if f.Kind != KindBool && f.Kind != KindNull {
			return nil, parser.Errorf(where.Position(), "WHERE needs a condition, found %s", f.Kind)
		}
		filter = f
	}
	if src != nil && src.Subcloud != "" {
		if len(src.Subcloud) > MaxStringBytes {
			return nil, parser.Errorf(src.Pos, "subcloud name is longer than %d bytes", MaxStringBytes)
		}
		in := &Expr{Op: OpEq, Kind: KindBool, Args: []*Expr{
			{Op: OpAttr, Kind: KindString, Name: "subcloud"},
			constant(Str(src.Subcloud)),
		}}
		filter = and(in, filter)
	}
	return filter, nil
}

// OwnedBy returns a copy of a FROM SUBCLOUD plan that counts only the
// members whose lease is owner's: a subcloud's name belongs to one owner,
// and a peer still holding another owner's lease under the same name (a
// race the loser is undoing) is not a member. Plans of other kinds are
// returned as they are.
func (p *Plan) OwnedBy(owner string) *Plan {
	if p.Subcloud == "" {
		return p
	}
	q := *p
	q.Filter = and(q.Filter, &Expr{Op: OpEq, Kind: KindBool, Args: []*Expr{
		{Op: OpAttr, Kind: KindString, Name: "subcloud_owner"},
		constant(Str(owner)),
	}})
	return &q
}

// Across fixes the owner of a FROM SUBCLOUD statement for a cloud of
// pools (Plan.Owner): pool/name.
func (p *Plan) Across(owner string) *Plan {
	if p.Subcloud == "" {
		return p
	}
	q := *p
	q.Owner = owner
	return &q
}

// MaxListed bounds the members a plan lists (Plan.Members): below the
// decoder's bound on a list (MaxExprNodes); a plan that lists them must
// still fit MaxPlanBytes (Listed's caller encodes it).
const MaxListed = 2000

// Listed has a FROM SUBCLOUD statement that reads only the membership,
// whose owner (Across) is its asker, answered over members, as the
// owner holds them (Plan.ByOwner); nil when there are more than
// MaxListed, or the statement reads more than the membership.
func (p *Plan) Listed(members []string) *Plan {
	if p.Owner == "" || !p.FromTags || len(members) > MaxListed {
		return nil
	}
	q := *p
	q.ByOwner, q.Members = true, slices.Sorted(slices.Values(members))
	return &q
}

func and(a, b *Expr) *Expr {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	return &Expr{Op: OpAnd, Kind: KindBool, Args: []*Expr{a, b}}
}

func constant(v Value) *Expr { return &Expr{Op: OpConst, Kind: v.Kind, Val: &v} }

func (c *compiler) compileTopK(p *Plan, s *parser.Select) error {
	p.Kind = PlanTopK
	cols, err := c.columns(s.Items, scope{clause: "SELECT"})
	if err != nil {
		return err
	}
	p.Columns = cols
	if p.Order, err = c.orderKeys(s.OrderBy, s.Items, cols, scope{clause: "ORDER BY"}); err != nil {
		return err
	}
	if len(p.Order) == 0 {
		// Without ORDER BY the answer is still deterministic: by node name.
		p.Order = []OrderKey{{Expr: &Expr{Op: OpAttr, Kind: KindString, Name: "node"}}}
	}
	p.K = c.cfg.MaxRows
	if s.Limit != nil {
		if p.K, err = limit(s.Limit); err != nil {
			return err
		}
		p.Limited = true
	}
	return nil
}

func (c *compiler) compileAggregate(p *Plan, s *parser.Select) error {
	p.Kind = PlanAggregate
	p.MaxGroups = c.cfg.MaxGroups
	if len(s.GroupBy) > MaxGroupKeys {
		return parser.Errorf(s.GroupBy[MaxGroupKeys].Position(), "GROUP BY has more than %d keys", MaxGroupKeys)
	}
	for _, g := range s.GroupBy {
		if hasAggregate(g) {
			return parser.Errorf(aggregatePos(g), "aggregates are not allowed in GROUP BY")
		}
		e, err := c.expr(g, scope{clause: "GROUP BY"})
		if err != nil {
			return err
		}
		p.GroupBy = append(p.GroupBy, e)
		c.groupText = append(c.groupText, g.String())
		c.groupKind = append(c.groupKind, e.Kind)
	}
	// COUNT(*) comes first: it tells which groups exist and how many peers
	// each holds, and gossip averaging needs it to turn means into sums.
	c.addComponent(CompCount, nil)
	for _, it := range s.Items {
		if it.Star {
			return parser.Errorf(it.Pos, "* cannot be used with GROUP BY or aggregates")
		}
	}
	cols, err := c.columns(s.Items, scope{clause: "SELECT", agg: true})
	if err != nil {
		return err
	}
	p.Columns = cols
	if p.Order, err = c.orderKeys(s.OrderBy, s.Items, cols, scope{clause: "ORDER BY", agg: true}); err != nil {
		return err
	}
	if s.Limit != nil {
		if p.K, err = limit(s.Limit); err != nil {
			return err
		}
		p.Limited = true
	}
	if len(c.aggs) > MaxAggregates {
		return parser.Errorf(s.Pos, "statement has %d aggregates, more than the limit of %d", len(c.aggs), MaxAggregates)
	}
	p.Aggs, p.Components = c.aggs, c.comps
	return nil
}

func (c *compiler) compileReserve(r *parser.Reserve) (*Plan, error) {
	p := &Plan{Kind: PlanReserve}
	if r.From != nil && r.From.Subcloud != "" {
		return nil, parser.Errorf(r.From.Pos, "RESERVE FROM SUBCLOUD is not possible: a peer holds one lease at a time, and the members of %s hold theirs", parser.QuoteIdent(r.From.Subcloud))
	}
	n, err := positiveInt(r.Count, "RESERVE", MaxReserve)
	if err != nil {
		return nil, err
	}
	if len(r.Name.Name) > MaxStringBytes {
		return nil, parser.Errorf(r.Name.Pos, "subcloud name is longer than %d bytes", MaxStringBytes)
	}
	spec := &ReserveSpec{Name: r.Name.Name, N: n, LeaseSeconds: c.cfg.LeaseSeconds}
	if r.For != nil {
		if spec.LeaseSeconds, err = leaseDuration(r.For, "FOR"); err != nil {
			return nil, err
		}
	}
	spec.NoRepair = r.NoRepair
	p.Reserve = spec
	filter, err := c.compileSource(nil, r.Where)
	if err != nil {
		return nil, err
	}
	// Only free peers are candidates. A peer whose lease table is unknown
	// reads as NULL and is left out.
	free := &Expr{Op: OpEq, Kind: KindBool, Args: []*Expr{
		{Op: OpAttr, Kind: KindBool, Name: "reserved"}, constant(Bool(false)),
	}}
	p.Filter = and(filter, free)
	if err := c.applyOptions(p, r.With, true); err != nil {
		return nil, err
	}
	if p.Order, err = c.orderKeys(r.OrderBy, nil, nil, scope{clause: "ORDER BY"}); err != nil {
		return nil, err
	}
	if len(p.Order) == 0 {
		// Without ORDER BY, the most reliable free peers are the candidates.
		p.Order = []OrderKey{{Expr: &Expr{Op: OpAttr, Kind: KindRatio, Name: "reliability"}, Desc: true}}
	}
	// The candidates carry only their name: the owner claims them by name
	// (the membership knows where they are), and the answer is the
	// subcloud, not the ranking. A smaller list is a faster search.
	p.Columns = []Column{
		{Name: "node", Kind: KindString, Expr: &Expr{Op: OpAttr, Kind: KindString, Name: "node"}},
	}
	slack := max(int(math.Ceil(float64(n)*c.cfg.ReserveSlack)), 4)
	p.K = min(n+slack, MaxK)
	p.Limited = true
	p.FromTags = p.readsOnlyMembership()
	return p, nil
}

func compileAlter(a *parser.Alter) (*Plan, error) {
	if len(a.Name.Name) > MaxStringBytes {
		return nil, parser.Errorf(a.Name.Pos, "subcloud name is longer than %d bytes", MaxStringBytes)
	}
	spec := &AlterSpec{Name: a.Name.Name}
	if a.Resize != nil {
		n, err := positiveInt(a.Resize, "RESIZE TO", MaxReserve)
		if err != nil {
			return nil, err
		}
		spec.Resize = n
	} else {
		secs, err := leaseDuration(a.Extend, "EXTEND FOR")
		if err != nil {
			return nil, err
		}
		spec.ExtendSeconds = secs
	}
	return &Plan{Kind: PlanLocal, Local: &LocalSpec{Alter: spec}}, nil
}

// leaseDuration reads a lease length (FOR, EXTEND FOR) within the limits.
func leaseDuration(l *parser.Literal, what string) (float64, error) {
	if l.Kind != parser.LitNumber || l.Unit != parser.UnitDuration {
		return 0, parser.Errorf(l.Pos, "%s needs a duration such as 2h, found %s", what, l.Raw)
	}
	if l.Num < MinLeaseSeconds || l.Num > MaxLeaseSeconds {
		return 0, parser.Errorf(l.Pos, "lease %s is outside %s..%s", l.Raw,
			answer.FormatDuration(MinLeaseSeconds), answer.FormatDuration(MaxLeaseSeconds))
	}
	return l.Num, nil
}

// applyOptions reads WITH options into the plan.
func (c *compiler) applyOptions(p *Plan, opts []*parser.Option, reserve bool) error {
	p.Accuracy = c.cfg.Accuracy
	seen := map[parser.OptionName]bool{}
	for _, o := range opts {
		if seen[o.Name] {
			return parser.Errorf(o.Pos, "option %s is given twice", o.Name)
		}
		seen[o.Name] = true
		v := o.Value
		switch o.Name {
		case parser.OptRounds:
			n, err := positiveInt(v, "ROUNDS", MaxRounds)
			if err != nil {
				return err
			}
			p.Rounds = n
		case parser.OptTimeout:
			if v.Unit != parser.UnitDuration || v.Num <= 0 {
				return parser.Errorf(v.Pos, "TIMEOUT needs a positive duration such as 10s, found %s", v.Raw)
			}
			p.TimeoutSeconds = v.Num
		case parser.OptAccuracy:
			if (v.Unit != parser.UnitPercent && v.Unit != parser.UnitNone) || !(v.Num > 0 && v.Num < 1) {
				return parser.Errorf(v.Pos, "ACCURACY needs a relative error between 0 and 1 such as 1%% or 0.01, found %s", v.Raw)
			}
			p.Accuracy = v.Num
		case parser.OptAtLeast:
			if !reserve {
				return parser.Errorf(o.Pos, "AT LEAST applies only to RESERVE")
			}
			m, err := positiveInt(v, "AT LEAST", MaxReserve)
			if err != nil {
				return err
			}
			if m > p.Reserve.N {
				return parser.Errorf(v.Pos, "AT LEAST %d is more than the %d peers reserved", m, p.Reserve.N)
			}
			p.Reserve.AtLeast = m
		case parser.OptKey:
			if !reserve {
				return parser.Errorf(o.Pos, "KEY applies only to RESERVE")
			}
			if v.Str == "" || len(v.Str) > 128 {
				return parser.Errorf(v.Pos, "KEY needs 1 to 128 bytes, found %d", len(v.Str))
			}
			p.Reserve.Key = v.Str
		}
	}
	return nil
}

// limit reads LIMIT n: 0 is allowed, as in SQL (no rows; the asking peer
// answers it alone, see Plan.Empty).
func limit(l *parser.Literal) (int, error) {
	if l.Kind == parser.LitNumber && l.Unit == parser.UnitNone && l.Num == 0 {
		return 0, nil
	}
	return positiveInt(l, "LIMIT", MaxK)
}

// positiveInt reads a whole-number literal in 1..limit.
func positiveInt(l *parser.Literal, what string, limit int) (int, error) {
	if l.Kind != parser.LitNumber || l.Unit != parser.UnitNone || l.Num != math.Trunc(l.Num) {
		return 0, parser.Errorf(l.Pos, "%s needs a whole number, found %s", what, l.Raw)
	}
	if l.Num < 1 {
		return 0, parser.Errorf(l.Pos, "%s must be at least 1, found %s", what, l.Raw)
	}
	if l.Num > float64(limit) {
		return 0, parser.Errorf(l.Pos, "%s %s is above the limit of %d", what, l.Raw, limit)
	}
	return int(l.Num), nil
}

// columns compiles the SELECT list, expanding *.
func (c *compiler) columns(items []*parser.SelectItem, sc scope) ([]Column, error) {
	var cols []Column
	for _, it := range items {
		if it.Star {
			for _, a := range c.cat.Attrs() {
				cols = append(cols, Column{Name: a.Name, Kind: a.Kind, Expr: &Expr{Op: OpAttr, Kind: a.Kind, Name: a.Name}})
			}
			continue
		}
		e, err := c.expr(it.Expr, sc)
		if err != nil {
			return nil, err
		}
		name := it.Alias
		if name == "" {
			name = it.Expr.String()
			if id, ok := it.Expr.(*parser.Ident); ok {
				name = id.Name
			}
		}
		cols = append(cols, Column{Name: name, Kind: e.Kind, Expr: e})
	}
	if len(cols) > MaxColumns {
		return nil, parser.Errorf(items[0].Pos, "statement selects %d columns, more than the limit of %d", len(cols), MaxColumns)
	}
	return cols, nil
}

// orderKeys compiles ORDER BY. A key may name a column by alias, or by its
// position in the SELECT list (from 1), or be any expression.
func (c *compiler) orderKeys(keys []*parser.OrderKey, items []*parser.SelectItem, cols []Column, sc scope) ([]OrderKey, error) {
	if len(keys) > MaxOrderKeys {
		return nil, parser.Errorf(keys[MaxOrderKeys].Pos, "ORDER BY has more than %d keys", MaxOrderKeys)
	}
	var out []OrderKey
	for _, k := range keys {
		e, err := c.orderExpr(k.Expr, items, cols, sc)
		if err != nil {
			return nil, err
		}
		if e.Kind == KindNull {
			return nil, parser.Errorf(k.Expr.Position(), "ORDER BY NULL orders nothing")
		}
		out = append(out, OrderKey{Expr: e, Desc: k.Desc})
	}
	return out, nil
}

func (c *compiler) orderExpr(x parser.Expr, items []*parser.SelectItem, cols []Column, sc scope) (*Expr, error) {
	if lit, ok := x.(*parser.Literal); ok && lit.IsInt() && cols != nil {
		i := int(lit.Num)
		if i < 1 || i > len(cols) {
			return nil, parser.Errorf(lit.Pos, "ORDER BY position %s is not in the select list (1..%d)", lit.Raw, len(cols))
		}
		return cols[i-1].Expr, nil
	}
	if id, ok := x.(*parser.Ident); ok {
		// As in SQL, an output column's alias wins over an attribute.
		for i, it := range items {
			if it.Alias != "" && strings.EqualFold(it.Alias, id.Name) {
				return cols[c.columnIndex(items, i)].Expr, nil
			}
		}
	}
	return c.expr(x, sc)
}

// columnIndex maps an item index to its column index (* expands).
func (c *compiler) columnIndex(items []*parser.SelectItem, item int) int {
	n := 0
	for i := 0; i < item; i++ {
		if items[i].Star {
			n += len(c.cat.Attrs())
		} else {
			n++
		}
	}
	return n
}

// readsOnlyMembership reports whether every attribute p reads is in Serf's
// membership (member fields and tags), so that the asking peer can answer
// it from its member list.
func (p *Plan) readsOnlyMembership() bool {
	for _, e := range p.exprs() {
		if !readsOnlyMembership(e) {
			return false
		}
	}
	return true
}

// readsOnlyMembership reports whether e reads only attributes every peer
// knows of every other through Serf membership. Only built-ins can be
// anything else: any other name is a tag (tags cannot shadow built-ins), so
// no catalog is needed.
func readsOnlyMembership(e *Expr) bool {
	ok := true
	walkExpr(e, func(x *Expr) {
		if a, builtin := builtinAttrs[x.Name]; x.Op == OpAttr && builtin && !a.Origin.InMembership() {
			ok = false
		}
	})
	return ok
}

// exprs lists every expression of the plan evaluated on peers' records.
func (p *Plan) exprs() []*Expr {
	var out []*Expr
	if p.Filter != nil {
		out = append(out, p.Filter)
	}
	out = append(out, p.GroupBy...)
	for _, c := range p.Components {
		if c.Arg != nil {
			out = append(out, c.Arg)
		}
	}
	if p.Kind != PlanAggregate {
		for _, c := range p.Columns {
			out = append(out, c.Expr)
		}
		for _, k := range p.Order {
			out = append(out, k.Expr)
		}
	}
	return out
}

func walkExpr(e *Expr, fn func(*Expr)) {
	if e == nil {
		return
	}
	fn(e)
	for _, a := range e.Args {
		walkExpr(a, fn)
	}
}

func hasAggregate(e parser.Expr) bool { return aggregatePos(e) != (parser.Pos{}) }

func aggregatePos(e parser.Expr) parser.Pos {
	var pos parser.Pos
	parser.Walk(e, func(x parser.Expr) bool {
		if call, ok := x.(*parser.Call); ok && pos == (parser.Pos{}) {
			if _, isAgg := aggNames[strings.ToLower(call.Name)]; isAgg {
				pos = call.Pos
				return false
			}
		}
		return pos == (parser.Pos{})
	})
	return pos
}

// showOf maps the parser's SHOW to the plan's: the plan's wire format must
// not depend on the parser's enum numbering.
var showOf = map[parser.ShowWhat]Show{
	parser.ShowSubclouds:  ShowSubclouds,
	parser.ShowAttributes: ShowAttributes,
	parser.ShowMembers:    ShowMembers,
	parser.ShowPools:      ShowPools,
	parser.ShowEvents:     ShowEvents,
}

// Reads lists, sorted and once each, the attributes the plan reads from a
// peer's record: what a peer must show of itself for another to evaluate
// the plan on it (run's sample check asks sampled peers for these alone).
func (p *Plan) Reads() []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range p.exprs() {
		walkExpr(e, func(x *Expr) {
			if x.Op == OpAttr && !seen[x.Name] {
				seen[x.Name] = true
				out = append(out, x.Name)
			}
		})
	}
	slices.Sort(out)
	return out
}
