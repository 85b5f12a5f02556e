package query

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/parser"
)

// Origin says where a peer gets an attribute's value, which decides whether
// a predicate can be answered from the membership list alone.
type Origin uint8

// The origins of attributes.
const (
	OriginMember Origin = iota + 1 // Serf's member list: name, address
	OriginTag                      // a static Serf tag, set when the agent starts
	OriginLease                    // the peer's lease table, shown in a Serf tag
	OriginProbe                    // probed on the peer: CPU, memory, disk
	OriginLocal                    // computed on the peer: uptime, reliability, rtt
	OriginLedger                   // the peer's ledger of the leases it served (FROM leases)
)

func (o Origin) String() string {
	switch o {
	case OriginMember:
		return "member"
	case OriginTag:
		return "tag"
	case OriginLease:
		return "lease"
	case OriginProbe:
		return "probe"
	case OriginLocal:
		return "local"
	case OriginLedger:
		return "ledger"
	}
	return "?"
}

// InMembership reports whether every peer's value is known to every other
// peer through Serf's membership (member fields and tags).
func (o Origin) InMembership() bool {
	return o == OriginMember || o == OriginTag || o == OriginLease
}

// Attr describes one attribute of a peer's record.
type Attr struct {
	Name   string
	Kind   Kind
	Origin Origin
	Doc    string
	// Min and Max bound the values a peer may report (Clamp); both zero means
	// unbounded.
	Min, Max float64
	// Typical, if not 0, is the most any machine reports in practice, far
	// below Max (which must admit every machine): a sampled value above
	// it that moves an answer contests the answer (run's sample check).
	Typical float64
}

// Catalog is the set of attributes a statement may name. It is immutable
// once built; WithTags returns a new one.
type Catalog struct {
	attrs map[string]Attr
	// fixed are its attributes other than tags, in their order: the
	// built-ins, unless it is another table's (FROM leases).
	fixed []Attr
	// open makes the compiler read a name it does not hold as a tag
	// (Open).
	open bool
}

// Open is c, but a statement compiled with it may name a tag that no
// member c was built from has: in a cloud of pools, a tag the asker's
// pool lacks may be another pool's (gpu, in the pool of GPU machines).
// The compiler reads such a name as a tag, NULL where a peer lacks it,
// and lists it in Plan.Unlisted with the error a closed catalog gives,
// so that the asker can give it when no pool has the tag either.
func (c *Catalog) Open() *Catalog {
	n := *c
	n.open = true
	return &n
}

// UserTag says name may be a tag of the user's: not empty, and not of
// peerq's own (the prefix peerq).
func UserTag(name string) bool { return name != "" && !strings.HasPrefix(name, "peerq") }

// Unlisted is a name a statement read as a tag though its catalog did
// not hold it (Catalog.Open): Err is the error the catalog would have
// given, positioned in the statement's text.
type Unlisted struct {
	Name string
	Err  *parser.Error
}

// The built-in attributes of DESIGN.md §2. Names of these are reserved for
// them: a Serf tag with the same name is ignored by the catalog.
var builtins = []Attr{
	{Name: "node", Kind: KindString, Origin: OriginMember, Doc: "the peer's Serf node name"},
	{Name: "addr", Kind: KindString, Origin: OriginMember, Doc: "the peer's gossip address, host:port"},
	{Name: "cpu_cores", Kind: KindCount, Origin: OriginProbe, Doc: "logical CPU cores", Min: 0, Max: 1 << 20, Typical: 1024},
	{Name: "cpu_load", Kind: KindRatio, Origin: OriginProbe, Doc: "1-minute load average divided by cpu_cores", Min: 0, Max: 1 << 10, Typical: 16},
	{Name: "mem_total", Kind: KindBytes, Origin: OriginProbe, Doc: "physical memory", Min: 0, Max: 1 << 60, Typical: 64 << 40},
	{Name: "mem_free", Kind: KindBytes, Origin: OriginProbe, Doc: "memory available to new work", Min: 0, Max: 1 << 60, Typical: 64 << 40},
	{Name: "disk_total", Kind: KindBytes, Origin: OriginProbe, Doc: "size of the data dir's file system", Min: 0, Max: 1 << 60, Typical: 1 << 50},
	{Name: "disk_free", Kind: KindBytes, Origin: OriginProbe, Doc: "free space on the data dir's file system", Min: 0, Max: 1 << 60, Typical: 1 << 50},
	{Name: "uptime", Kind: KindDuration, Origin: OriginLocal, Doc: "time since the agent started", Min: 0, Max: 1 << 40, Typical: 10 * 365 * 86400},
	{Name: "reliability", Kind: KindRatio, Origin: OriginLocal, Doc: "share of the trailing window (7 days) the agent was up, from its journal; no peer takes a claim above what it saw", Min: 0, Max: 1},
	{Name: "rtt", Kind: KindDuration, Origin: OriginLocal, Doc: "estimated round-trip time to the asking peer (Serf coordinates)", Min: 0, Max: 3600},
	{Name: "subcloud", Kind: KindString, Origin: OriginLease, Doc: "the subcloud the peer is reserved to, or NULL"},
	{Name: "reserved", Kind: KindBool, Origin: OriginLease, Doc: "whether the peer holds a lease"},
	{Name: "subcloud_owner", Kind: KindString, Origin: OriginLease, Doc: "the node that owns the peer's subcloud, or NULL"},
}

// ledgerAttrs are the columns of FROM leases: a row per lease a peer
// served, from its own ledger. A lease is metered from its grant to the
// last renewal the peer answered (or its release): the same span its
// owner accounts for.
var ledgerAttrs = []Attr{
	{Name: "node", Kind: KindString, Origin: OriginLedger, Doc: "the peer that served the lease"},
	{Name: "subcloud", Kind: KindString, Origin: OriginLedger, Doc: "the subcloud it served"},
	{Name: "owner", Kind: KindString, Origin: OriginLedger, Doc: "the node that owned the subcloud"},
	{Name: "peer_hours", Kind: KindNumber, Origin: OriginLedger, Doc: "hours served: from the grant to the last renewal or the release, on the owner's clock, as the owner's signed receipts show", Min: 0, Max: 1 << 20},
	{Name: "receipted", Kind: KindBool, Origin: OriginLedger, Doc: "whether the owner's signed receipts back the row (a row without them counts no hours)"},
	{Name: "started_ago", Kind: KindDuration, Origin: OriginLedger, Doc: "how long ago the lease was granted", Min: 0, Max: 1 << 40},
	{Name: "ended_ago", Kind: KindDuration, Origin: OriginLedger, Doc: "how long ago it was last renewed or released; 0 while it is held", Min: 0, Max: 1 << 40},
	{Name: "open", Kind: KindBool, Origin: OriginLedger, Doc: "whether the peer still holds it"},
}

var leasesCatalog = func() *Catalog {
	c := &Catalog{attrs: map[string]Attr{}, fixed: ledgerAttrs}
	for _, a := range ledgerAttrs {
		c.attrs[a.Name] = a
	}
	return c
}()

// LeasesCatalog is the catalog of FROM leases.
func LeasesCatalog() *Catalog { return leasesCatalog }

// WellKnownTags are the Serf tags DESIGN.md names; the default catalog
// knows them even before a cluster reports them.
var WellKnownTags = []string{"region", "zone", "arch", "os", "owner", "class", "pool"}

// builtinAttrs indexes builtins by name.
var builtinAttrs = func() map[string]Attr {
	m := make(map[string]Attr, len(builtins))
	for _, a := range builtins {
		m[a.Name] = a
	}
	return m
}()

// defaultCatalog is built once: catalogs are immutable.
var defaultCatalog = (&Catalog{attrs: builtinAttrs}).WithTags(WellKnownTags...)

// DefaultCatalog returns the built-in attributes and the well-known tags.
func DefaultCatalog() *Catalog { return defaultCatalog }

// WithTags returns a catalog that also knows the given Serf tags, as
// strings. Tags that shadow a built-in, or that peerq uses internally
// (names starting with "peerq"), are left out.
func (c *Catalog) WithTags(names ...string) *Catalog {
	n := &Catalog{attrs: make(map[string]Attr, len(c.attrs)+len(names))}
	for k, v := range c.attrs {
		n.attrs[k] = v
	}
	for _, name := range names {
		if _, ok := n.attrs[name]; ok || !UserTag(name) {
			continue
		}
		n.attrs[name] = Attr{Name: name, Kind: KindString, Origin: OriginTag, Doc: "Serf tag"}
	}
	return n
}

// Lookup finds an attribute by name: exactly, or else case-insensitively
// when only one attribute matches that way.
func (c *Catalog) Lookup(name string) (Attr, bool) {
	if a, ok := c.attrs[name]; ok {
		return a, true
	}
	var found []Attr
	for k, a := range c.attrs {
		if strings.EqualFold(k, name) {
			found = append(found, a)
		}
	}
	if len(found) == 1 {
		return found[0], true
	}
	return Attr{}, false
}

// Describe is the catalog as SHOW ATTRIBUTES answers it (and the shell's
// \d TABLE): a row per attribute with its kind, source and description.
func (c *Catalog) Describe() *answer.Answer {
	col := func(name string) answer.Column { return answer.Column{Name: name, Kind: KindString} }
	res := &answer.Answer{Columns: []answer.Column{col("attribute"), col("kind"), col("source"), col("description")}}
	for _, a := range c.Attrs() {
		res.Rows = append(res.Rows, []Value{Str(a.Name), Str(a.Kind.String()), Str(a.Origin.String()), Str(a.Doc)})
	}
	return res
}

// DescribeTable describes a table by name, as \d does in the shell:
// its columns with the default catalog's kinds and descriptions (an
// agent's own catalog, SHOW ATTRIBUTES, also knows its cluster's tags);
// nil for a name that is no table.
func DescribeTable(name string) *answer.Answer {
	switch strings.ToLower(name) {
	case "peers":
		return DefaultCatalog().Describe()
	case "leases":
		return LeasesCatalog().Describe()
	}
	return nil
}

// Attrs lists the attributes sorted: built-ins in catalog order, then tags
// by name.
func (c *Catalog) Attrs() []Attr {
	out := make([]Attr, 0, len(c.attrs))
	fixed := c.fixed
	if fixed == nil {
		fixed = builtins
	}
	for _, b := range fixed {
		out = append(out, c.attrs[b.Name])
	}
	var tags []Attr
	for _, a := range c.attrs {
		if a.Origin == OriginTag {
			tags = append(tags, a)
		}
	}
	sort.Slice(tags, func(i, j int) bool { return tags[i].Name < tags[j].Name })
	return append(out, tags...)
}

// Names lists the attribute names, for completion and suggestions.
func (c *Catalog) Names() []string {
	attrs := c.Attrs()
	names := make([]string, len(attrs))
	for i, a := range attrs {
		names[i] = a.Name
	}
	return names
}

// suggest returns a "did you mean" suffix for an unknown name, or "".
func (c *Catalog) suggest(name string) string {
	if s := parser.Suggest(name, c.Names()); s != "" {
		return " (did you mean " + s + "?)"
	}
	return ""
}

// maxMagnitude bounds the numbers of attributes without a range: beyond,
// a value is no measurement (Clamp makes it NULL).
const maxMagnitude = 1e300

// Clamp validates and bounds a value a peer reports for attribute a: a value
// of the wrong kind, NaN or infinite, or a string longer than
// MaxStringBytes, becomes NULL; a number outside the attribute's range is
// clamped to it.
func (a Attr) Clamp(v Value) Value {
	if v.IsNull() {
		return v
	}
	if a.Kind.Numeric() != v.Kind.Numeric() || !a.Kind.Numeric() && a.Kind != v.Kind {
		return Null
	}
	if !a.Kind.Numeric() {
		if len(v.Str) > MaxStringBytes {
			return Null
		}
		return v
	}
	if v.Num != v.Num || v.Num > maxMagnitude || v.Num < -maxMagnitude {
		return Null
	}
	v.Kind = a.Kind
	if a.Min != 0 || a.Max != 0 {
		v.Num = max(a.Min, min(a.Max, v.Num))
	}
	return v
}

// Check reports whether v is a value a peer could report for a: one that
// Clamp leaves as it is (NULL, or of a's kind, finite, within a's range, a
// string of at most MaxStringBytes). Values received from other peers are
// checked, not clamped: a peer's own record is clamped, so a value Check
// refuses was forged on the way.
func (a Attr) Check(v Value) error {
	switch {
	case v.IsNull():
		return nil
	case v.Kind != a.Kind:
		return fmt.Errorf("query: %s holds a %s, want %s", a.Name, v.Kind, a.Kind)
	case a.Kind == KindString && len(v.Str) > MaxStringBytes:
		return fmt.Errorf("query: %s of %d bytes, more than %d", a.Name, len(v.Str), MaxStringBytes)
	case !a.Kind.Numeric():
		return nil
	case !finite(v.Num) || math.Abs(v.Num) > maxMagnitude:
		return fmt.Errorf("query: %s = %v is no measurement", a.Name, v.Num)
	case (a.Min != 0 || a.Max != 0) && (v.Num < a.Min || v.Num > a.Max):
		return fmt.Errorf("query: %s = %v outside %v..%v", a.Name, v.Num, a.Min, a.Max)
	}
	return nil
}

// Clamp applies Attr.Clamp to every attribute of r the catalog knows, in
// place, and returns r.
func (c *Catalog) Clamp(r Record) Record {
	for name, v := range r {
		if a, ok := c.attrs[name]; ok {
			r[name] = a.Clamp(v)
		}
	}
	return r
}
