package parser

import (
	"github.com/alecthomas/participle/v2"
	"github.com/alecthomas/participle/v2/lexer"
)

// The parse tree. One struct per grammar rule, in the style of participle's
// _examples/sql, except that each precedence level repeats its operator
// ({ op operand }) so that chains such as a + b - c * d parse; lower.go folds
// the repetitions into left-associative binary nodes of the AST.

// reserved are the words that can never be a name. Other words of the
// language (PEERS, SUBCLOUD, ROUNDS, COUNT, ...) are matched case-insensitively
// where they are expected but stay usable as attribute names: "subcloud" is
// both a source keyword and an attribute of the catalog.
var reserved = []string{
	"SELECT", "FROM", "WHERE", "GROUP", "BY", "ORDER", "LIMIT", "AS", "AND", "OR",
	"NOT", "IN", "BETWEEN", "LIKE", "IS", "NULL", "TRUE", "FALSE", "ASC", "DESC",
	"RESERVE", "RELEASE", "SHOW", "EXPLAIN", "WITH", "FOR", "DISTINCT",
}

var pqlLexer = lexer.MustSimple([]lexer.SimpleRule{
	{Name: "Comment", Pattern: `--[^\n]*|/\*(?s:.*?)\*/`},
	{Name: "Whitespace", Pattern: `\s+`},
	{Name: "Keyword", Pattern: `(?i)\b(?:` + keywordAlternation() + `)\b`},
	// A number and its unit are one token, so "4 GB" (with a space) is not a size.
	{Name: "Number", Pattern: `(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?:[a-zA-Z]+(?:\d+(?:\.\d*)?[a-zA-Z]+)*|%)?`},
	{Name: "Ident", Pattern: `[a-zA-Z_][a-zA-Z0-9_]*`},
	{Name: "QIdent", Pattern: `"(?:[^"]|"")*"`},
	{Name: "String", Pattern: `'(?:[^'\\]|\\.|'')*'`},
	{Name: "Op", Pattern: `<>|!=|<=|>=|[-+*/%=<>(),;]`},
})

func keywordAlternation() string {
	s := ""
	for i, k := range reserved {
		if i > 0 {
			s += "|"
		}
		s += k
	}
	return s
}

type gScript struct {
	Stmts []*gStatement `parser:"';'* ( @@ ( ';'+ @@ )* ';'* )?"`
}

type gStatement struct {
	Pos     lexer.Position
	Explain *gExplain `parser:"  @@"`
	Inner   *gInner   `parser:"| @@"`
}

type gExplain struct {
	Pos   lexer.Position
	Inner *gInner `parser:"'EXPLAIN' @@"`
}

type gInner struct {
	Pos     lexer.Position
	Select  *gSelect  `parser:"  @@"`
	Reserve *gReserve `parser:"| @@"`
	Release *gRelease `parser:"| @@"`
	Show    *gShow    `parser:"| @@"`
	Alter   *gAlter   `parser:"| @@"`
	Watch   *gWatch   `parser:"| @@"`
}

type gWatch struct {
	Pos    lexer.Position
	Select *gSelect `parser:"'WATCH' @@"`
	Every  *gNumber `parser:"( 'EVERY' @@ )?"`
}

type gSelect struct {
	Pos     lexer.Position
	Items   []*gItem     `parser:"'SELECT' @@ ( ',' @@ )*"`
	From    *gSource     `parser:"( 'FROM' @@ )?"`
	Where   *gOr         `parser:"( 'WHERE' @@ )?"`
	GroupBy []*gOr       `parser:"( 'GROUP' 'BY' @@ ( ',' @@ )* )?"`
	OrderBy []*gOrderKey `parser:"( 'ORDER' 'BY' @@ ( ',' @@ )* )?"`
	Limit   *gNumber     `parser:"( 'LIMIT' @@ )?"`
	With    []*gOption   `parser:"( 'WITH' @@ ( ',' @@ )* )?"`
}

type gItem struct {
	Pos   lexer.Position
	Star  bool    `parser:"  @'*'"`
	Expr  *gOr    `parser:"| @@"`
	Alias *gIdent `parser:"  ( 'AS' @@ )?"`
}

type gSource struct {
	Pos      lexer.Position
	Peers    bool    `parser:"  @'PEERS'"`
	Subcloud *gIdent `parser:"| 'SUBCLOUD' @@"`
	Leases   bool    `parser:"| @'LEASES'"`
}

type gOrderKey struct {
	Pos  lexer.Position
	Expr *gOr   `parser:"@@"`
	Dir  string `parser:"@( 'ASC' | 'DESC' )?"`
}

type gOption struct {
	Pos      lexer.Position
	Rounds   *gNumber `parser:"  'ROUNDS' @@"`
	Timeout  *gNumber `parser:"| 'TIMEOUT' @@"`
	Accuracy *gNumber `parser:"| 'ACCURACY' @@"`
	AtLeast  *gNumber `parser:"| 'AT' 'LEAST' @@"`
	Key      *gString `parser:"| 'KEY' @@"`
}

type gReserve struct {
	Pos      lexer.Position
	Count    *gNumber     `parser:"'RESERVE' @@"`
	From     *gSource     `parser:"( 'FROM' @@ )?"`
	Where    *gOr         `parser:"( 'WHERE' @@ )?"`
	OrderBy  []*gOrderKey `parser:"( 'ORDER' 'BY' @@ ( ',' @@ )* )?"`
	Name     *gIdent      `parser:"'AS' @@"`
	For      *gNumber     `parser:"( 'FOR' @@ )?"`
	NoRepair bool         `parser:"@( 'NO' 'REPAIR' )?"`
	With     []*gOption   `parser:"( 'WITH' @@ ( ',' @@ )* )?"`
}

type gAlter struct {
	Pos    lexer.Position
	Name   *gIdent  `parser:"'ALTER' 'SUBCLOUD' @@"`
	Resize *gNumber `parser:"( 'RESIZE' 'TO' @@"`
	Extend *gNumber `parser:"| 'EXTEND' 'FOR' @@ )"`
}

type gRelease struct {
	Pos  lexer.Position
	Name *gIdent `parser:"'RELEASE' @@"`
}

type gShow struct {
	Pos  lexer.Position
	What string `parser:"'SHOW' @( 'SUBCLOUDS' | 'ATTRIBUTES' | 'MEMBERS' | 'POOLS' | 'EVENTS' )"`
}

// Expressions, loosest first.

type gOr struct {
	Pos  lexer.Position
	Left *gAnd   `parser:"@@"`
	Rest []*gAnd `parser:"( 'OR' @@ )*"`
}

type gAnd struct {
	Pos  lexer.Position
	Left *gNot   `parser:"@@"`
	Rest []*gNot `parser:"( 'AND' @@ )*"`
}

type gNot struct {
	Pos lexer.Position
	Not *gNot `parser:"  'NOT' @@"`
	Cmp *gCmp `parser:"| @@"`
}

type gCmp struct {
	Pos  lexer.Position
	Left *gAdd     `parser:"@@"`
	Tail *gCmpTail `parser:"@@?"`
}

type gCmpTail struct {
	Pos  lexer.Position
	Op   *gCmpOp  `parser:"  @@"`
	Is   *gIsNull `parser:"| @@"`
	Pred *gPred   `parser:"| @@"`
}

type gCmpOp struct {
	Op    string `parser:"@( '=' | '!=' | '<>' | '<=' | '>=' | '<' | '>' )"`
	Right *gAdd  `parser:"@@"`
}

type gIsNull struct {
	Not bool `parser:"'IS' @'NOT'? 'NULL'"`
}

type gPred struct {
	Pos     lexer.Position
	Not     bool      `parser:"@'NOT'?"`
	In      []*gOr    `parser:"( 'IN' '(' @@ ( ',' @@ )* ')'"`
	Between *gBetween `parser:"| 'BETWEEN' @@"`
	Like    *gAdd     `parser:"| 'LIKE' @@ )"`
}

type gBetween struct {
	Low  *gAdd `parser:"@@ 'AND'"`
	High *gAdd `parser:"@@"`
}

type gAdd struct {
	Pos  lexer.Position
	Left *gMul     `parser:"@@"`
	Rest []*gAddOp `parser:"@@*"`
}

type gAddOp struct {
	Pos   lexer.Position
	Op    string `parser:"@( '+' | '-' )"`
	Right *gMul  `parser:"@@"`
}

type gMul struct {
	Pos  lexer.Position
	Left *gUnary   `parser:"@@"`
	Rest []*gMulOp `parser:"@@*"`
}

type gMulOp struct {
	Pos   lexer.Position
	Op    string  `parser:"@( '*' | '/' | '%' )"`
	Right *gUnary `parser:"@@"`
}

type gUnary struct {
	Pos  lexer.Position
	Neg  *gUnary   `parser:"  '-' @@"`
	Prim *gPrimary `parser:"| @@"`
}

type gPrimary struct {
	Pos    lexer.Position
	Number *gNumber `parser:"  @@"`
	String *gString `parser:"| @@"`
	Bool   string   `parser:"| @( 'TRUE' | 'FALSE' )"`
	Null   bool     `parser:"| @'NULL'"`
	Name   *gName   `parser:"| @@"`
	Sub    *gOr     `parser:"| '(' @@ ')'"`
}

type gName struct {
	Pos  lexer.Position
	Name *gIdent `parser:"@@"`
	Call *gCall  `parser:"@@?"`
}

type gCall struct {
	Pos      lexer.Position
	Star     bool   `parser:"'(' ( @'*'"`
	Distinct bool   `parser:"    | @'DISTINCT'?"`
	Args     []*gOr `parser:"      @@ ( ',' @@ )* )? ')'"`
	// Trim is AVG(x) TRIM 1%: the trimmed mean.
	Trim *gNumber `parser:"( 'TRIM' @@ )?"`
}

type gNumber struct {
	Pos lexer.Position
	Raw string `parser:"@Number"`
}

type gString struct {
	Pos lexer.Position
	Raw string `parser:"@String"`
}

type gIdent struct {
	Pos    lexer.Position
	Plain  string `parser:"  @Ident"`
	Quoted string `parser:"| @QIdent"`
}

var grammar = participle.MustBuild[gScript](
	participle.Lexer(pqlLexer),
	participle.Elide("Comment", "Whitespace"),
	participle.CaseInsensitive("Keyword", "Ident"),
	participle.UseLookahead(3),
)
