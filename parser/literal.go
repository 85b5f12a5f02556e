package parser

import (
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Size units: decimal prefixes are powers of 1000, binary (IEC) prefixes
// powers of 1024, as in the SI and IEC 80000-13. 4GB is 4,000,000,000 bytes;
// 4GiB is 4,294,967,296 bytes.
var sizeUnits = map[string]float64{
	"b":  1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "pb": 1e15,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40, "pib": 1 << 50,
}

// Duration units, in seconds.
var durationUnits = map[string]float64{
	"ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400,
}

var (
	numberPrefix = regexp.MustCompile(`^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?`)
	durationPart = regexp.MustCompile(`^(\d+(?:\.\d*)?)([a-zA-Z]+)`)
)

const unitHelp = "B, KB, MB, GB, TB, PB, KiB, MiB, GiB, TiB, PiB, ms, s, m, h, d or %"

// parseNumber reads a number token with its optional unit.
func parseNumber(pos Pos, raw string) (*Literal, error) {
	lit := &Literal{Pos: pos, Kind: LitNumber, Raw: raw}
	digits := numberPrefix.FindString(raw)
	v, err := strconv.ParseFloat(digits, 64)
	if err != nil || math.IsInf(v, 0) {
		return nil, Errorf(pos, "number %s is out of range", raw)
	}
	rest := raw[len(digits):]
	switch {
	case rest == "":
		lit.Num = v
	case rest == "%":
		lit.Num, lit.Unit = v/100, UnitPercent
	default:
		unit := strings.ToLower(leadingLetters(rest))
		if mult, ok := sizeUnits[unit]; ok {
			if len(unit) != len(rest) {
				return nil, Errorf(pos, "size %s cannot be chained (write one unit, as in 1536MB)", raw)
			}
			lit.Num, lit.Unit = v*mult, UnitBytes
		} else if _, ok := durationUnits[unit]; ok {
			secs, err := parseDuration(pos, raw, digits, rest)
			if err != nil {
				return nil, err
			}
			lit.Num, lit.Unit = secs, UnitDuration
		} else {
			return nil, Errorf(pos, "unknown unit %q in %s (expected %s)", leadingLetters(rest), raw, unitHelp)
		}
	}
	if math.IsInf(lit.Num, 0) {
		return nil, Errorf(pos, "number %s is out of range", raw)
	}
	return lit, nil
}

// parseDuration reads a chain such as 2h30m: the first number is given
// separately because it may have an exponent.
func parseDuration(pos Pos, raw, digits, rest string) (float64, error) {
	v, _ := strconv.ParseFloat(digits, 64)
	unit := leadingLetters(rest)
	total := v * durationUnits[strings.ToLower(unit)]
	rest = rest[len(unit):]
	for rest != "" {
		m := durationPart.FindStringSubmatch(rest)
		if m == nil {
			return 0, Errorf(pos, "malformed duration %s", raw)
		}
		mult, ok := durationUnits[strings.ToLower(m[2])]
		if !ok {
			return 0, Errorf(pos, "unknown unit %q in duration %s (expected ms, s, m, h or d)", m[2], raw)
		}
		x, _ := strconv.ParseFloat(m[1], 64)
		total += x * mult
		rest = rest[len(m[0]):]
	}
	return total, nil
}

func leadingLetters(s string) string {
	i := 0
	for i < len(s) && (s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z') {
		i++
	}
	return s[:i]
}

// unquoteString reads a 'string'. A quote is written ” or \', and the escapes
// \\ \n \t \r are understood; any other byte stands for itself.
func unquoteString(pos Pos, raw string) (string, error) {
	body := raw[1 : len(raw)-1]
	var b strings.Builder
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c == '\'':
			// The lexer only lets a quote through doubled.
			b.WriteByte('\'')
			i++
		case c == '\\':
			i++
			col := pos
			col.Column += i
			col.Offset += i
			switch body[i] {
			case '\\':
				b.WriteByte('\\')
			case '\'':
				b.WriteByte('\'')
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			default:
				return "", Errorf(col, `unknown escape \%c in string (expected \\, \', \n, \t or \r)`, body[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// quoteString is the inverse of unquoteString.
func quoteString(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			b.WriteString("''")
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

func unquoteIdent(g *gIdent) (*Ident, error) {
	if g.Quoted == "" {
		return &Ident{Pos: g.Pos, Name: g.Plain}, nil
	}
	name := strings.ReplaceAll(g.Quoted[1:len(g.Quoted)-1], `""`, `"`)
	if name == "" {
		return nil, Errorf(g.Pos, `empty quoted name ""`)
	}
	return &Ident{Pos: g.Pos, Name: name}, nil
}

var plainIdent = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// QuoteIdent writes name so that it parses back to the same name: plain when
// it can be, "double-quoted" when it has other characters or is reserved.
func QuoteIdent(name string) string {
	if plainIdent.MatchString(name) && !IsReserved(name) {
		return name
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// IsReserved reports whether word is a reserved keyword of PQL, which cannot
// be a name unless double-quoted.
func IsReserved(word string) bool {
	for _, k := range reserved {
		if strings.EqualFold(k, word) {
			return true
		}
	}
	return false
}

// Keywords returns every word of the language, reserved or not, for
// completion in the shell.
func Keywords() []string {
	words := append([]string(nil), reserved...)
	return append(words, "PEERS", "LEASES", "SUBCLOUD", "SUBCLOUDS", "ATTRIBUTES", "MEMBERS", "POOLS", "EVENTS",
		"ROUNDS", "TIMEOUT", "ACCURACY", "AT", "LEAST", "KEY", "NO", "REPAIR", "ALTER", "RESIZE", "TO", "EXTEND", "WATCH", "EVERY", "TRIM")
}
