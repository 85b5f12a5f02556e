package answer

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Kind is the type of a value.
type Kind uint8

// The kinds. The numeric kinds differ by unit: a plain number has none.
const (
	KindNull     Kind = iota // the type of the NULL literal
	KindBool                 // TRUE or FALSE
	KindString               // text
	KindNumber               // a plain number
	KindCount                // a whole number of things (cpu_cores)
	KindRatio                // a fraction, usually 0..1 (cpu_load, reliability)
	KindBytes                // a size in bytes
	KindDuration             // a duration in seconds
	// KindList is a list of names (a subcloud's members, a member's
	// tags): JSON writes it as an array of strings, a table as the names
	// joined by ", ". Only SHOW statements answer with lists; no
	// expression has this kind.
	KindList
	kindEnd
)

var kindNames = [...]string{"null", "bool", "string", "number", "count", "ratio", "bytes", "duration", "list"}

func (k Kind) String() string {
	if k < kindEnd {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Numeric reports whether k is one of the number kinds.
func (k Kind) Numeric() bool { return k >= KindNumber && k <= KindDuration }

// Valid reports whether k is a kind a record, a plan or a row between
// peers may hold (a decoder's check): any but KindList, which only the
// asker's SHOW answers hold.
func (k Kind) Valid() bool { return k < kindEnd && k != KindList }

// KindOf is the kind named name (Kind.String's inverse).
func KindOf(name string) (Kind, bool) {
	for k, n := range kindNames {
		if n == name {
			return Kind(k), true
		}
	}
	return KindNull, false
}

// Value is one typed value. The zero Value is NULL.
type Value struct {
	Kind Kind    `cbor:"1,keyasint,omitempty"`
	Num  float64 `cbor:"2,keyasint,omitempty"` // numeric kinds
	Str  string  `cbor:"3,keyasint,omitempty"` // KindString; KindList's items, each ended by listSep
	Bool bool    `cbor:"4,keyasint,omitempty"` // KindBool
}

// listSep ends each item of a list in Value.Str: a list is held in a
// string so that a Value stays comparable (==, map keys). It is ASCII's
// unit separator, which no name holds.
const listSep = "\x1f"

// List returns a list value of the items, in their order.
func List(items []string) Value {
	var b strings.Builder
	for _, it := range items {
		b.WriteString(it)
		b.WriteString(listSep)
	}
	return Value{Kind: KindList, Str: b.String()}
}

// Items is a list value's items (nil for other kinds).
func (v Value) Items() []string {
	if v.Kind != KindList || v.Str == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(v.Str, listSep), listSep)
}

// Null is the NULL value.
var Null = Value{}

// Num returns a numeric value of kind k.
func Num(k Kind, v float64) Value { return Value{Kind: k, Num: v} }

// Str returns a string value.
func Str(s string) Value { return Value{Kind: KindString, Str: s} }

// Bool returns a bool value.
func Bool(b bool) Value { return Value{Kind: KindBool, Bool: b} }

// IsNull reports whether v is NULL.
func (v Value) IsNull() bool { return v.Kind == KindNull }

// String formats v for people, with units: 4.0 GiB, 2h13m, 97.5%.
func (v Value) String() string {
	switch v.Kind {
	case KindNull:
		return "NULL"
	case KindBool:
		if v.Bool {
			return "true"
		}
		return "false"
	case KindString:
		return v.Str
	case KindList:
		return strings.Join(v.Items(), ", ")
	case KindBytes:
		return FormatBytes(v.Num)
	case KindDuration:
		return FormatDuration(v.Num)
	case KindRatio:
		return FormatPercent(v.Num)
	case KindCount:
		// A count is a whole number; gossip estimates one to a fraction.
		return FormatNumber(math.Round(v.Num))
	}
	return FormatNumber(v.Num)
}

// FormatNumber prints a plain number: whole ones without a fraction or an
// exponent, others to six significant digits.
func FormatNumber(x float64) string {
	if x == math.Trunc(x) && math.Abs(x) < 1e15 {
		return strconv.FormatFloat(x, 'f', 0, 64)
	}
	return strconv.FormatFloat(x, 'g', 6, 64)
}

// FormatPercent prints a ratio as a percentage to four significant
// digits, never with an exponent: 97.5%, 100%, 123400%, 0.0001234%.
func FormatPercent(ratio float64) string {
	p := ratio * 100
	s := strconv.FormatFloat(p, 'g', 4, 64)
	if strings.ContainsAny(s, "e") && !math.IsInf(p, 0) {
		// Rounded to four significant digits, then written out.
		r, _ := strconv.ParseFloat(s, 64)
		s = strconv.FormatFloat(r, 'f', -1, 64)
	}
	return s + "%"
}

// FormatBytes prints a size with a binary prefix and one decimal: 4.0 GiB.
func FormatBytes(b float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	x, i := math.Abs(b), 0
	for x >= 1024 && i < len(units)-1 {
		x /= 1024
		i++
	}
	if b < 0 {
		x = -x
	}
	if i == 0 {
		return fmt.Sprintf("%s B", FormatNumber(x))
	}
	return fmt.Sprintf("%.1f %s", x, units[i])
}

// FormatDuration prints seconds the way a person reads them, to two units at
// most: 250ms, 1.5s, 45m10s, 2h13m, 3d4h.
func FormatDuration(secs float64) string {
	if math.IsNaN(secs) || math.IsInf(secs, 0) {
		return strconv.FormatFloat(secs, 'g', -1, 64)
	}
	sign := ""
	if secs < 0 {
		sign, secs = "-", -secs
	}
	two := func(big int64, bigUnit string, small int64, smallUnit string) string {
		if small == 0 {
			return fmt.Sprintf("%s%d%s", sign, big, bigUnit)
		}
		return fmt.Sprintf("%s%d%s%d%s", sign, big, bigUnit, small, smallUnit)
	}
	s := int64(secs)
	switch {
	case secs < 1:
		return sign + strconv.FormatFloat(math.Round(secs*10000)/10, 'f', -1, 64) + "ms"
	case secs < 60:
		return sign + strconv.FormatFloat(math.Round(secs*10)/10, 'f', -1, 64) + "s"
	case secs < 3600:
		return two(s/60, "m", s%60, "s")
	case secs < 86400:
		return two(s/3600, "h", s%3600/60, "m")
	}
	return two(s/86400, "d", s%86400/3600, "h")
}

// Raw is v for machines: nil for NULL, bool, string, a list's items
// ([]string, never nil: an empty list is an empty array), or the number in its
// base unit (bytes, seconds, a fraction for ratios); counts and bytes are
// whole (int64, rounded: an AVG of bytes is a number of bytes), as is any
// other whole number.
func (v Value) Raw() any {
	switch {
	case v.IsNull():
		return nil
	case v.Kind == KindBool:
		return v.Bool
	case v.Kind == KindString:
		return v.Str
	case v.Kind == KindList:
		return append([]string{}, v.Items()...)
	case (v.Kind == KindCount || v.Kind == KindBytes) && math.Abs(v.Num) < 1<<53:
		// Gossip estimates of counts and sizes (a SUM, an AVG of bytes)
		// are whole things: the nearest one, as the text shows it.
		return int64(math.Round(v.Num))
	case v.Num == math.Trunc(v.Num) && math.Abs(v.Num) < 1<<53 && v.Kind != KindRatio && v.Kind != KindDuration:
		return int64(v.Num)
	}
	return v.Num
}
