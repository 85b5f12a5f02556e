package parser

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/alecthomas/participle/v2"
)

// Error is a statement error with the position it points at. Its text is
// "line:col: message", the form compilers use, so that a script checker can
// prefix the file name; the shell uses Caret to show the line itself.
type Error struct {
	Pos Pos
	Msg string
}

// Errorf returns an *Error at pos.
func Errorf(pos Pos, format string, args ...any) *Error {
	return &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d:%d: %s", e.Pos.Line, e.Pos.Column, e.Msg)
}

// Line and Column let code that must not import this package (the shell)
// find the position through an interface.
func (e *Error) Line() int   { return e.Pos.Line }
func (e *Error) Column() int { return e.Pos.Column }

// Reason is the message without its position.
func (e *Error) Reason() string { return e.Msg }

// Caret returns the source line the error points at and a caret under its
// column, for a terminal:
//
//	SELECT node FORM peers
//	            ^
func (e *Error) Caret(src string) string {
	return Caret(src, e.Pos.Line, e.Pos.Column)
}

// Caret returns line `line` of src and a caret under column `col` (both from
// 1). Tabs before the column are kept so that the caret lines up.
func Caret(src string, line, col int) string {
	lines := strings.Split(src, "\n")
	if line < 1 || line > len(lines) {
		return ""
	}
	text := strings.TrimRight(lines[line-1], "\r")
	var pad strings.Builder
	for i, r := range []rune(text) {
		if i >= col-1 {
			break
		}
		if r == '\t' {
			pad.WriteByte('\t')
		} else {
			pad.WriteByte(' ')
		}
	}
	return text + "\n" + pad.String() + "^"
}

// fromParticiple rewrites participle's errors into the house form:
// `1:13: unexpected "FORM" (expected "FROM")`.
func fromParticiple(err error) error {
	var ute *participle.UnexpectedTokenError
	if errors.As(err, &ute) {
		found := fmt.Sprintf("%q", ute.Unexpected.Value)
		if ute.Unexpected.EOF() {
			found = "end of input"
		}
		msg := "unexpected " + found
		if exp := simplifyExpected(expectedText(ute.Message())); exp != "" {
			msg += " (expected " + exp + ")"
		} else if kw := Suggest(ute.Unexpected.Value, Keywords()); kw != "" && !IsReserved(ute.Unexpected.Value) {
			msg += " (did you mean " + kw + "?)"
		}
		return &Error{Pos: ute.Unexpected.Pos, Msg: msg}
	}
	var perr participle.Error // a lexer error: the text has no token here
	if errors.As(err, &perr) {
		return &Error{Pos: perr.Position(), Msg: lexMessage(strings.TrimPrefix(perr.Message(), "lexer: "))}
	}
	return fmt.Errorf("parser: %w", err)
}

// missingFrom names FROM in an error that names nothing expected, where
// FROM could stand: since FROM is optional (a constant SELECT has none),
// participle cannot say that "SELECT node FORM peers" lacks it, and a
// missing or misspelt FROM is by far the likeliest mistake there.
func missingFrom(src string, err error) error {
	var e *Error
	if !errors.As(err, &e) || strings.Contains(e.Msg, "(expected ") || e.Pos.Offset > len(src) || e.Pos.Offset > maxHintOffset {
		return err
	}
	if !slices.Contains(Follow(src[:e.Pos.Offset]), "FROM") {
		return err
	}
	if msg, _, ok := strings.Cut(e.Msg, " (did you mean"); ok {
		e.Msg = msg
	}
	e.Msg += ` (expected "FROM")`
	return e
}

// maxHintOffset bounds the text missingFrom reads again: hints are for
// statements people type, not for megabyte scripts.
const maxHintOffset = 64 << 10

// lexMessage turns the lexer's "invalid input text ..." into what went
// wrong. (An unterminated comment lexes as "/" and "*": checkNesting
// reports it.)
func lexMessage(msg string) string {
	text, ok := strings.CutPrefix(msg, "invalid input text ")
	if !ok {
		return msg
	}
	if s, err := strconv.Unquote(text); err == nil {
		text = s
	}
	switch {
	case strings.HasPrefix(text, "'"):
		return "unterminated string (a string ends with ')"
	case strings.HasPrefix(text, `"`):
		return `unterminated quoted name (a quoted name ends with ")`
	case text == "":
		return "unexpected input"
	}
	return fmt.Sprintf("unexpected character %q", []rune(text)[0])
}

// expectedText extracts the "(expected X)" part of participle's message.
func expectedText(msg string) string {
	i := strings.Index(msg, "(expected ")
	if i < 0 || !strings.HasSuffix(msg, ")") {
		return ""
	}
	return msg[i+len("(expected ") : len(msg)-1]
}

// ruleFirst says, for each grammar rule, what a user should be told it can
// start with. Participle reports the whole remaining sequence of the rule
// ("FROM" GSource ("WHERE" GOr)? ...); users need only its first tokens.
var ruleFirst = map[string][]string{
	"GScript":    {`"SELECT"`, `"RESERVE"`, `"RELEASE"`, `"SHOW"`, `"ALTER"`, `"WATCH"`, `"EXPLAIN"`},
	"GStatement": {`"SELECT"`, `"RESERVE"`, `"RELEASE"`, `"SHOW"`, `"ALTER"`, `"WATCH"`, `"EXPLAIN"`},
	"GInner":     {`"SELECT"`, `"RESERVE"`, `"RELEASE"`, `"SHOW"`, `"ALTER"`, `"WATCH"`},
	"GExplain":   {`"EXPLAIN"`}, "GSelect": {`"SELECT"`}, "GReserve": {`"RESERVE"`},
	"GRelease": {`"RELEASE"`}, "GShow": {`"SHOW"`}, "GAlter": {`"ALTER"`}, "GWatch": {`"WATCH"`},
	"GItem": {`"*"`, "an expression"}, "GOrderKey": {"an expression"},
	"GOr": {"an expression"}, "GAnd": {"an expression"}, "GNot": {"an expression"},
	"GCmp": {"an expression"}, "GAdd": {"an expression"}, "GMul": {"an expression"},
	"GUnary": {"an expression"}, "GPrimary": {"an expression"}, "GBetween": {"an expression"},
	"GNumber": {"a number"}, "GString": {"a string"}, "GIdent": {"a name"}, "GName": {"a name"},
	"GSource":  {`"PEERS"`, `"SUBCLOUD"`, `"LEASES"`},
	"GOption":  {`"ROUNDS"`, `"TIMEOUT"`, `"ACCURACY"`, `"AT LEAST"`, `"KEY"`},
	"GCmpTail": {"a comparison"}, "GCmpOp": {"a comparison"}, "GIsNull": {`"IS"`},
	"GPred": {`"NOT"`, `"IN"`, `"BETWEEN"`, `"LIKE"`}, "GCall": {`"("`},
	"GAddOp": {`"+"`, `"-"`}, "GMulOp": {`"*"`, `"/"`, `"%"`},
}

// simplifyExpected computes the FIRST set of participle's EBNF fragment and
// joins it for people: `"PEERS" or "SUBCLOUD"`.
func simplifyExpected(ebnf string) string {
	if ebnf == "" {
		return ""
	}
	p := &ebnfFirst{toks: tokenizeEBNF(ebnf)}
	first, _ := p.alt()
	if len(first) == 0 {
		return ""
	}
	switch len(first) {
	case 1:
		return first[0]
	case 2:
		return first[0] + " or " + first[1]
	}
	return strings.Join(first[:len(first)-1], ", ") + " or " + first[len(first)-1]
}

type ebnfFirst struct {
	toks []string
	i    int
}

func tokenizeEBNF(s string) []string {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ':
			i++
		case c == '"':
			j := i + 1
			for j < len(s) && s[j] != '"' {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			if j < len(s) {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		case strings.ContainsRune("()|?*+", rune(c)):
			toks = append(toks, string(c))
			i++
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(` "()|?*+`, rune(s[j])) {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		}
	}
	return toks
}

func (p *ebnfFirst) peek() string {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	return ""
}

// alt = seq { "|" seq }
func (p *ebnfFirst) alt() (first []string, nullable bool) {
	first, nullable = p.seq()
	for p.peek() == "|" {
		p.i++
		f, n := p.seq()
		first = union(first, f)
		nullable = nullable || n
	}
	return first, nullable
}

// seq = { term }
func (p *ebnfFirst) seq() (first []string, nullable bool) {
	nullable = true
	for {
		t := p.peek()
		if t == "" || t == "|" || t == ")" {
			return first, nullable
		}
		f, n := p.term()
		if nullable {
			first = union(first, f)
			nullable = n
		}
	}
}

// term = atom [ "?" | "*" | "+" ]
func (p *ebnfFirst) term() ([]string, bool) {
	var first []string
	nullable := false
	t := p.peek()
	p.i++
	switch {
	case t == "(":
		first, nullable = p.alt()
		if p.peek() == ")" {
			p.i++
		}
	case strings.HasPrefix(t, `"`):
		first = []string{t}
	default:
		if f, ok := ruleFirst[t]; ok {
			first = f
		} else {
			first = []string{strings.ToLower(strings.Trim(t, "<>"))}
		}
	}
	if m := p.peek(); m == "?" || m == "*" {
		p.i++
		nullable = true
	} else if m == "+" {
		p.i++
	}
	return first, nullable
}

func union(a, b []string) []string {
	for _, x := range b {
		found := false
		for _, y := range a {
			if x == y {
				found = true
				break
			}
		}
		if !found {
			a = append(a, x)
		}
	}
	return a
}
