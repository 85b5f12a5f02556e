package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peerq/peerq/api"
	"github.com/peerq/peerq/shell"
)

var updateDocs = flag.Bool("update", false, "rewrite the exit codes' tables in docs/ from exitCodes")

// exitCodeDocs are the docs that show the table of exit codes.
var exitCodeDocs = []string{"../../docs/CLI.md", "../../docs/API.md"}

// The tables of exit codes in the docs are exitCodes, as
// exitCodesMarkdown writes them; -update rewrites them.
func TestExitCodesDocumented(t *testing.T) {
	want := exitCodesMarkdown()
	for _, path := range exitCodeDocs {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		doc := string(b)
		start := strings.Index(doc, exitCodesHeader+"\n")
		if start < 0 {
			t.Errorf("%s has no table of exit codes (a line %q)", filepath.Base(path), exitCodesHeader)
			continue
		}
		end := start + strings.Index(doc[start:], "\n\n") + 1
		if end <= start {
			end = len(doc)
		}
		if got := doc[start:end]; got != want {
			if *updateDocs {
				if err := os.WriteFile(path, []byte(doc[:start]+want+doc[end:]), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			t.Errorf("%s's exit codes differ from cmd/peerq/exitcodes.go (go test ./cmd/peerq -run TestExitCodesDocumented -update rewrites them):\n%s\nwant:\n%s",
				filepath.Base(path), got, want)
		}
	}
}

// Every exit code is listed once, in order, and each API error code leads
// to the exit code the table gives it: the table is what exitFor does.
func TestExitCodesTable(t *testing.T) {
	seen := map[api.Code]bool{}
	for i, e := range exitCodes {
		if e.Code != i {
			t.Errorf("row %d is exit code %d", i, e.Code)
		}
		for _, c := range e.API {
			seen[c] = true
			var ee *exitError
			if err := exitFor(fmt.Errorf("x: %w", &api.Error{Code: c, Message: "m"})); !errors.As(err, &ee) || ee.code != e.Code {
				t.Errorf("API code %s: exitFor gives %v, the table %d", c, err, e.Code)
			}
			// Come back without an answer (shell.Judge), the same code,
			// and no word of an answer above or of --allow-partial.
			unanswered := shell.Judge(nil, fmt.Errorf("x: %w", &api.Error{Code: c, Message: "m"}), true, true)
			if err := exitFor(unanswered); !errors.As(err, &ee) || ee.code != e.Code || strings.Contains(err.Error(), "above") || strings.Contains(err.Error(), "accepts") {
				t.Errorf("API code %s without an answer: exitFor gives %v, the table %d", c, err, e.Code)
			}
		}
	}
	for _, c := range api.Codes {
		if !seen[c] {
			t.Errorf("API code %s has no exit code in the table", c)
		}
	}
}
