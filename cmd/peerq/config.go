package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	hcljson "github.com/hashicorp/hcl/v2/json"
	"github.com/spf13/cobra"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// The agent's --config file: HCL (.hcl) or JSON (.json), as Consul's and
// Nomad's, told apart by the extension. Both are read with HCL's parsers,
// which place every error at its line and column; each setting is a
// top-level attribute named as its flag (retry-join, or retry_join as
// Consul spells it), and its value is then decoded by its Go type as JSON.

// configFormats are the extensions --config accepts, and their parsers.
var configFormats = map[string]struct {
	name  string
	parse func(src []byte, filename string) (*hcl.File, hcl.Diagnostics)
}{
	".hcl": {"HCL", func(src []byte, filename string) (*hcl.File, hcl.Diagnostics) {
		return hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	}},
	".json": {"JSON", hcljson.Parse},
}

// applyConfigFile sets, from a file of settings, every setting the command
// line did not set. Values are decoded by their type: numbers stay
// numbers, durations are "300ms" or seconds, lists are lists.
func applyConfigFile(cmd *cobra.Command, path string, s *agentSettings) error {
	ext := strings.ToLower(filepath.Ext(path))
	format, ok := configFormats[ext]
	if !ok {
		return fmt.Errorf("peerq: config %s: unknown format %q: the file's extension says its format, .hcl (HCL) or .json (JSON)", path, ext)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("peerq: config: %w", err)
	}
	fail := func(diags hcl.Diagnostics) error {
		return fmt.Errorf("peerq: config (%s): %s", format.name, diagError(diags))
	}
	file, diags := format.parse(b, path)
	if diags.HasErrors() {
		return fail(diags)
	}
	attrs, diags := file.Body.JustAttributes()
	if diags.HasErrors() {
		return fail(diags)
	}
	names := make([]string, 0, len(attrs))
	for name := range attrs {
		names = append(names, name)
	}
	// In the file's order: the first of two spellings of one setting is
	// the one kept, the second the one named at fault.
	sort.Slice(names, func(i, j int) bool {
		return attrs[names[i]].NameRange.Start.Byte < attrs[names[j]].NameRange.Start.Byte
	})
	fields := s.fields()
	seen := map[string]string{}
	for _, name := range names {
		attr := attrs[name]
		at := fmt.Sprintf("%s:%d:%d", attr.NameRange.Filename, attr.NameRange.Start.Line, attr.NameRange.Start.Column)
		k := strings.ReplaceAll(name, "_", "-")
		dst, ok := fields[k]
		if !ok {
			return fmt.Errorf("peerq: config (%s): %s: unknown setting %q (settings are named as the flags: %s)", format.name, at, name, strings.Join(settingNames(fields), ", "))
		}
		if other, dup := seen[k]; dup {
			return fmt.Errorf("peerq: config (%s): %s: %q sets %q again (as %q did)", format.name, at, name, k, other)
		}
		seen[k] = name
		if cmd.Flags().Changed(k) {
			continue
		}
		v, diags := attr.Expr.Value(nil)
		if diags.HasErrors() {
			return fail(diags)
		}
		raw, err := ctyjson.SimpleJSONValue{Value: v}.MarshalJSON()
		if err != nil {
			return fmt.Errorf("peerq: config (%s): %s: setting %q: %w", format.name, at, name, err)
		}
		if err := json.NewDecoder(bytes.NewReader(raw)).Decode(dst); err != nil {
			return fmt.Errorf("peerq: config (%s): %s: setting %q: %s", format.name, at, name, typeError(err))
		}
	}
	return nil
}

// diagError is the first error of HCL's diagnostics as compilers write
// them, file:line:column: what (HCL's own form is file:line,column-column).
func diagError(diags hcl.Diagnostics) string {
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		msg := d.Summary
		if d.Detail != "" {
			msg += ": " + strings.TrimSuffix(d.Detail, ".")
		}
		if d.Subject == nil {
			return msg
		}
		return fmt.Sprintf("%s:%d:%d: %s", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column, msg)
	}
	return diags.Error()
}

func settingNames(fields map[string]any) []string {
	var out []string
	for k := range fields {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// typeError says what a setting should have been, in words that fit HCL
// and JSON alike.
func typeError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		want := map[string]string{"string": "a string", "int": "a whole number", "bool": "true or false", "[]string": "a list of strings"}[te.Type.String()]
		if want == "" {
			want = "a " + te.Type.String()
		}
		found := map[string]string{"number": "a number", "string": "a string", "bool": "true or false", "array": "a list", "object": "an object"}[te.Value]
		if found == "" {
			found = te.Value
		}
		return fmt.Sprintf("want %s, found %s", want, found)
	}
	return err.Error()
}

// jsonDuration reads "300ms" (or a number of seconds).
type jsonDuration time.Duration

func (d *jsonDuration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration (like \"300ms\" or \"2s\")", s)
		}
		*d = jsonDuration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("%s is not a duration (like \"300ms\", or a number of seconds)", b)
	}
	*d = jsonDuration(secs * float64(time.Second))
	return nil
}
