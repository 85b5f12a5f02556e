package query

import (
	"strings"

	"github.com/peerq/peerq/answer"
)

// Kind and Value are the answer package's (as os.FileMode is io/fs's): an
// answer carries typed values from the cores to the API and the shell,
// which import no engine. Their names stay here too, for the compiler and
// the evaluator, which speak of them everywhere.
type (
	Kind  = answer.Kind
	Value = answer.Value
)

// The kinds (answer's).
const (
	KindNull     = answer.KindNull
	KindBool     = answer.KindBool
	KindString   = answer.KindString
	KindNumber   = answer.KindNumber
	KindCount    = answer.KindCount
	KindRatio    = answer.KindRatio
	KindBytes    = answer.KindBytes
	KindDuration = answer.KindDuration
)

// Null is the NULL value.
var Null = answer.Null

// Num returns a numeric value of kind k.
func Num(k Kind, v float64) Value { return answer.Num(k, v) }

// Str returns a string value.
func Str(s string) Value { return answer.Str(s) }

// Bool returns a bool value.
func Bool(b bool) Value { return answer.Bool(b) }

// dimension groups the numeric kinds that may be compared and added.
type dimension uint8

const (
	dimNone dimension = iota // number, count, ratio
	dimBytes
	dimDuration
)

func dimOf(k Kind) dimension {
	switch k {
	case KindBytes:
		return dimBytes
	case KindDuration:
		return dimDuration
	}
	return dimNone
}

// Compare orders two non-NULL values of comparable kinds: numbers by value,
// strings bytewise, FALSE before TRUE. It returns -1, 0 or +1.
func Compare(a, b Value) int {
	switch {
	case a.Kind.Numeric() && b.Kind.Numeric():
		switch {
		case a.Num < b.Num:
			return -1
		case a.Num > b.Num:
			return 1
		}
		return 0
	case a.Kind == KindString && b.Kind == KindString:
		return strings.Compare(a.Str, b.Str)
	case a.Kind == KindBool && b.Kind == KindBool:
		switch {
		case a.Bool == b.Bool:
			return 0
		case !a.Bool:
			return -1
		}
		return 1
	}
	// Kinds that the checker would not let meet: order by kind so that the
	// order is still total.
	switch {
	case a.Kind < b.Kind:
		return -1
	case a.Kind > b.Kind:
		return 1
	}
	return 0
}

// Record is what one peer says about itself: attribute name → value. A
// missing attribute reads as NULL.
type Record map[string]Value
