package query

import (
	"testing"

	"github.com/peerq/peerq/parser"
)

// BenchmarkParseCheckPlan is what a peer spends turning a typical statement
// into a plan: parse, type-check, compile, validate.
func BenchmarkParseCheckPlan(b *testing.B) {
	const src = "SELECT node, mem_free, reliability FROM peers WHERE mem_free >= 4GB AND region IN ('eu', 'us') ORDER BY reliability DESC LIMIT 50"
	cat, cfg := DefaultCatalog(), DefaultConfig()
	b.ReportAllocs()
	for b.Loop() {
		stmt, err := parser.ParseOne(src)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Compile(stmt, cat, cfg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodePlan is what a peer spends to join a query it learns of.
func BenchmarkDecodePlan(b *testing.B) {
	p := compile(b, "SELECT region, COUNT(*), AVG(cpu_load), PERCENTILE(mem_free, 0.9) FROM peers WHERE mem_free >= 4GB GROUP BY region")
	wire, _ := p.Encode()
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(wire); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEvalFilter is the per-record cost of WHERE.
func BenchmarkEvalFilter(b *testing.B) {
	p := compile(b, "SELECT node FROM peers WHERE mem_free >= 4GB AND region IN ('eu', 'us') AND node LIKE 'home-%'")
	b.ReportAllocs()
	for b.Loop() {
		p.Matches(rec)
	}
}
