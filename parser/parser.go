package parser

import (
	"strings"

	"github.com/alecthomas/participle/v2/lexer"
)

// Limits on what Parse accepts. They bound the time and stack a statement can
// cost, whether typed by a person or received from the network.
const (
	// MaxInputBytes is the longest script Parse reads.
	MaxInputBytes = 1 << 20
	// MaxTokens is the most tokens in one script.
	MaxTokens = 100_000
	// MaxNesting is the deepest nesting of parentheses and unary operators.
	MaxNesting = 64
)

// Parse reads a script of statements separated by ';'. The file name, which
// may be empty, is recorded in positions. The error, if any, is an *Error.
func Parse(filename, src string) ([]Statement, error) {
	if len(src) > MaxInputBytes {
		return nil, Errorf(Pos{Filename: filename, Line: 1, Column: 1},
			"script of %d bytes is longer than the limit of %d", len(src), MaxInputBytes)
	}
	toks, err := grammar.Lex(filename, strings.NewReader(src))
	if err != nil {
		return nil, fromParticiple(err)
	}
	if err := checkNesting(toks); err != nil {
		return nil, err
	}
	// Parse the tokens already lexed rather than lex the text again.
	peek, err := lexer.Upgrade(&tokenLexer{toks: toks}, elided...)
	if err != nil {
		return nil, fromParticiple(err)
	}
	tree, err := grammar.ParseFromLexer(peek)
	if err != nil {
		return nil, missingFrom(src, fromParticiple(err))
	}
	stmts := make([]Statement, 0, len(tree.Stmts))
	for _, g := range tree.Stmts {
		s, err := lowerStatement(g)
		if err != nil {
			return nil, err
		}
		stmts = append(stmts, s)
	}
	return stmts, nil
}

// ParseOne reads exactly one statement (a trailing ';' is allowed).
func ParseOne(src string) (Statement, error) {
	stmts, err := Parse("", src)
	if err != nil {
		return nil, err
	}
	switch len(stmts) {
	case 1:
		return stmts[0], nil
	case 0:
		return nil, Errorf(Pos{Line: 1, Column: 1}, "empty statement")
	}
	return nil, Errorf(stmts[1].Position(), "expected one statement, found %d", len(stmts))
}

// operandTypes are the token types that end an operand.
var operandTypes = func() map[lexer.TokenType]bool {
	sym := pqlLexer.Symbols()
	return map[lexer.TokenType]bool{sym["Number"]: true, sym["Ident"]: true, sym["QIdent"]: true, sym["String"]: true}
}()

// tokenLexer replays lexed tokens to the parser.
type tokenLexer struct {
	toks []lexer.Token
	i    int
}

func (l *tokenLexer) Next() (lexer.Token, error) {
	if l.i >= len(l.toks) {
		return l.toks[len(l.toks)-1], nil // the EOF token, again
	}
	l.i++
	return l.toks[l.i-1], nil
}

// elided are the token types the parser skips.
var elided = []lexer.TokenType{pqlLexer.Symbols()["Comment"], pqlLexer.Symbols()["Whitespace"]}

// checkNesting refuses scripts whose recursion depth in the parser would be
// unbounded.
func checkNesting(toks []lexer.Token) error {
	if len(toks) > MaxTokens {
		return Errorf(toks[MaxTokens].Pos, "script has more than %d tokens", MaxTokens)
	}
	for i := 0; i+1 < len(toks); i++ {
		if toks[i].Value == "/" && toks[i+1].Value == "*" && toks[i+1].Pos.Offset == toks[i].Pos.Offset+1 {
			return Errorf(toks[i].Pos, "unterminated comment (a comment ends with */)")
		}
	}
	depth, unary := 0, 0
	prevOperand := false // whether the previous token ends an operand
	for _, t := range toks {
		if t.Type == elided[0] || t.Type == elided[1] {
			continue
		}
		switch v := strings.ToUpper(t.Value); {
		case t.EOF():
		case v == "(":
			depth++
			if depth+unary > MaxNesting {
				return Errorf(t.Pos, "expression nested more than %d deep", MaxNesting)
			}
			prevOperand = false
		case v == ")":
			depth--
			unary = 0
			prevOperand = true
		case v == "NOT" || (v == "-" && !prevOperand):
			unary++
			if depth+unary > MaxNesting {
				return Errorf(t.Pos, "expression nested more than %d deep", MaxNesting)
			}
			prevOperand = false
		default:
			isOperand := operandTypes[t.Type]
			if isOperand {
				unary = 0
			}
			prevOperand = isOperand
		}
	}
	return nil
}

// EBNF returns the grammar of PQL in EBNF, as participle derives it from the
// grammar structs. docs/PQL.md and testdata/grammar.ebnf hold a copy.
func EBNF() string { return grammar.String() }

// Split finds where the statements of a script end, as the language's
// lexer sees it: ends are the byte offsets of the ';' that end statements,
// outside strings, quoted names and comments. complete says that nothing
// but whitespace and comments follows the last ';'. A script the lexer
// cannot read to its end (an unterminated string, quoted name or comment)
// has the ends found before that point, and is not complete: a shell keeps
// reading, and a script runner sends the rest as it is, for the parser to
// report.
func Split(src string) (ends []int, complete bool) {
	lx, err := pqlLexer.Lex("", strings.NewReader(src))
	if err != nil {
		return nil, strings.TrimSpace(src) == ""
	}
	sym := pqlLexer.Symbols()
	ws, comment, op := sym["Whitespace"], sym["Comment"], sym["Op"]
	complete = true
	prevSlash := -2
	for {
		tok, err := lx.Next()
		if err != nil {
			return ends, false
		}
		if tok.EOF() {
			return ends, complete
		}
		switch {
		case tok.Type == ws || tok.Type == comment:
			continue
		case tok.Type == op && tok.Value == "*" && prevSlash == tok.Pos.Offset-1:
			return ends, false // "/*" that the Comment rule did not close
		case tok.Type == op && tok.Value == ";":
			ends = append(ends, tok.Pos.Offset)
			complete = true
			continue
		case tok.Type == op && tok.Value == "/":
			prevSlash = tok.Pos.Offset
		}
		complete = false
	}
}
