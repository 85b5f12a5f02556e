package parser

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/alecthomas/participle/v2/lexer"
)

// The classes of token Follow offers besides the grammar's own words: a
// place where the grammar takes a name (an attribute, a function, a
// subcloud, an alias), a number or a string. A completer fills them from
// what it knows (the catalog, the subclouds).
const (
	FollowName   = "<name>"
	FollowNumber = "<number>"
	FollowString = "<string>"
)

// Follow returns what may come next after prefix, the text of a script up
// to the cursor (without the word being typed): the grammar's words and
// symbols ("WHERE", "(", ...) and the classes FollowName, FollowNumber and
// FollowString, sorted. A prefix that cannot begin a script (a mistake, an
// unterminated string) has no continuation: nil.
//
// The answer is computed from the grammar itself: its EBNF (EBNF(), which
// participle derives from the grammar structs) is read into rules, and the
// prefix's tokens are run through them, keeping every way the rules can
// have read them so far; what the ways can read next is the answer. So
// every word offered is one the grammar takes there, and no table of
// follow sets can drift from it. TestFollowedWordsParse checks, with the
// parser itself, that every offered word completes into a statement.
func Follow(prefix string) []string {
	if len(prefix) > MaxInputBytes {
		return nil
	}
	toks, err := pqlLexer.Lex("", strings.NewReader(prefix))
	if err != nil {
		return nil
	}
	ways := followRules.start()
	for {
		tok, err := toks.Next()
		if err != nil {
			return nil // the text ends inside a string or a comment
		}
		if tok.EOF() {
			break
		}
		if tok.Type == elided[0] || tok.Type == elided[1] {
			continue
		}
		if ways = followRules.step(ways, tok); len(ways) == 0 {
			return nil
		}
	}
	var out []string
	for _, w := range ways {
		if w == nil {
			continue // the script may end here
		}
		t := w.n.val
		switch t {
		case "<ident>", "<qident>":
			t = FollowName
		case "<number>":
			t = FollowNumber
		case "<string>":
			t = FollowString
		case ";":
			continue // ends the statement: not a word to complete
		}
		out = append(out, t)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// gnode is a node of the grammar's EBNF: a literal ("SELECT"), a token
// class (<ident>), a reference to a rule, or a sequence, alternation or
// repetition of nodes.
type gnode struct {
	op   byte // '"' literal, '<' token class, 'r' rule, 's' sequence, '|' alternation, '?', '*'
	val  string
	kids []*gnode
	id   int
}

// way is one way of having read the tokens so far: what remains to be
// read, as a stack of nodes (nil: nothing; the script may end).
type way struct {
	n    *gnode
	next *way
}

type ebnfRules struct {
	rules map[string]*gnode
	first string
	nodes int
}

// followRules are the grammar's rules, read once from its EBNF.
var followRules = func() *ebnfRules {
	r, err := readEBNF(EBNF())
	if err != nil {
		panic(fmt.Sprintf("parser: the grammar's own EBNF: %v", err)) // a broken invariant
	}
	return r
}()

// readEBNF reads participle's EBNF: one rule a line, "Name = expr ."
func readEBNF(src string) (*ebnfRules, error) {
	r := &ebnfRules{rules: map[string]*gnode{}}
	for _, line := range strings.Split(strings.TrimSpace(src), "\n") {
		name, body, ok := strings.Cut(line, " = ")
		if !ok || !strings.HasSuffix(body, " .") {
			return nil, fmt.Errorf("rule %q", line)
		}
		p := &ebnfReader{toks: tokenizeEBNF(strings.TrimSuffix(body, " .")), r: r}
		n := p.alt()
		if p.i != len(p.toks) {
			return nil, fmt.Errorf("rule %s: unread %v", name, p.toks[p.i:])
		}
		if r.first == "" {
			r.first = name
		}
		r.rules[name] = n
	}
	for _, n := range r.rules {
		if err := r.check(n); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (r *ebnfRules) check(n *gnode) error {
	if n.op == 'r' && r.rules[n.val] == nil {
		return fmt.Errorf("no rule %s", n.val)
	}
	for _, k := range n.kids {
		if err := r.check(k); err != nil {
			return err
		}
	}
	return nil
}

func (r *ebnfRules) node(op byte, val string, kids ...*gnode) *gnode {
	r.nodes++
	return &gnode{op: op, val: val, kids: kids, id: r.nodes}
}

type ebnfReader struct {
	toks []string
	i    int
	r    *ebnfRules
}

func (p *ebnfReader) peek() string {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	return ""
}

func (p *ebnfReader) alt() *gnode {
	kids := []*gnode{p.seq()}
	for p.peek() == "|" {
		p.i++
		kids = append(kids, p.seq())
	}
	if len(kids) == 1 {
		return kids[0]
	}
	return p.r.node('|', "", kids...)
}

func (p *ebnfReader) seq() *gnode {
	var kids []*gnode
	for t := p.peek(); t != "" && t != "|" && t != ")"; t = p.peek() {
		kids = append(kids, p.postfix())
	}
	if len(kids) == 1 {
		return kids[0]
	}
	return p.r.node('s', "", kids...)
}

func (p *ebnfReader) postfix() *gnode {
	n := p.atom()
	for t := p.peek(); t == "?" || t == "*" || t == "+"; t = p.peek() {
		p.i++
		if t == "+" {
			n = p.r.node('s', "", n, p.r.node('*', "", n)) // x+ is x x*
			continue
		}
		n = p.r.node(t[0], "", n)
	}
	return n
}

func (p *ebnfReader) atom() *gnode {
	t := p.peek()
	p.i++
	switch {
	case t == "(":
		n := p.alt()
		if p.peek() == ")" {
			p.i++
		}
		return n
	case strings.HasPrefix(t, `"`):
		s, err := strconv.Unquote(t)
		if err != nil {
			s = strings.Trim(t, `"`)
		}
		return p.r.node('"', s)
	case strings.HasPrefix(t, "<"):
		return p.r.node('<', t)
	}
	return p.r.node('r', t)
}

func (r *ebnfRules) start() []*way {
	return r.expand(&way{n: r.rules[r.first]})
}

// expand rewrites a way until what it reads next is a literal or a token
// class (or nothing), in every way the rules allow. The grammar has no
// left recursion (participle cannot parse it), so this ends.
func (r *ebnfRules) expand(w *way) []*way {
	var out []*way
	seen := map[string]bool{}
	var walk func(w *way, depth int)
	walk = func(w *way, depth int) {
		if depth > 400 {
			return // a broken grammar; participle would not have built it
		}
		if w == nil || w.n.op == '"' || w.n.op == '<' {
			if k := w.key(); !seen[k] {
				seen[k] = true
				out = append(out, w)
			}
			return
		}
		n, rest := w.n, w.next
		switch n.op {
		case 'r':
			walk(&way{n: r.rules[n.val], next: rest}, depth+1)
		case 's':
			for i := len(n.kids) - 1; i >= 0; i-- {
				rest = &way{n: n.kids[i], next: rest}
			}
			walk(rest, depth+1)
		case '|':
			for _, k := range n.kids {
				walk(&way{n: k, next: rest}, depth+1)
			}
		case '?':
			walk(rest, depth+1)
			walk(&way{n: n.kids[0], next: rest}, depth+1)
		case '*':
			walk(rest, depth+1)
			walk(&way{n: n.kids[0], next: w}, depth+1)
		}
	}
	walk(w, 0)
	return out
}

// key identifies a way by the nodes it has left to read.
func (w *way) key() string {
	var b strings.Builder
	for ; w != nil; w = w.next {
		b.WriteString(strconv.Itoa(w.n.id))
		b.WriteByte('.')
	}
	return b.String()
}

// step reads one token in every way that can read it.
func (r *ebnfRules) step(ways []*way, tok lexer.Token) []*way {
	var out []*way
	seen := map[string]bool{}
	for _, w := range ways {
		if w == nil || !matches(w.n, tok) {
			continue
		}
		for _, x := range r.expand(w.next) {
			if k := x.key(); !seen[k] {
				seen[k] = true
				out = append(out, x)
			}
		}
	}
	return out
}

// matches says whether tok is what the literal or token class n reads, as
// the parser would take it: words case-insensitively (keywords and names
// both: a word that is not reserved lexes as a name), symbols exactly.
func matches(n *gnode, tok lexer.Token) bool {
	sym := pqlLexer.Symbols()
	switch n.op {
	case '"':
		if tok.Type == sym["Keyword"] || tok.Type == sym["Ident"] {
			return strings.EqualFold(n.val, tok.Value)
		}
		return tok.Type == sym["Op"] && n.val == tok.Value
	case '<':
		switch n.val {
		case "<ident>":
			return tok.Type == sym["Ident"]
		case "<qident>":
			return tok.Type == sym["QIdent"]
		case "<number>":
			return tok.Type == sym["Number"]
		case "<string>":
			return tok.Type == sym["String"]
		}
	}
	return false
}
