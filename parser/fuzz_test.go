package parser

import "testing"

// FuzzParse checks that Parse never panics and that, for every script it
// accepts, printing each statement and parsing the print gives the same AST.
func FuzzParse(f *testing.F) {
	for _, tc := range validCases {
		f.Add(tc.in)
	}
	for _, tc := range errorCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, src string) {
		stmts, err := Parse("", src)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %v is %T, want *Error", err, err)
			}
			return
		}
		for _, s := range stmts {
			assertRoundTrip(t, s)
		}
	})
}
