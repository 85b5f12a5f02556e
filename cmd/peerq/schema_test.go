package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peerq/peerq/node"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/server"
	"github.com/peerq/peerq/shell"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// schemas compiles the JSON Schemas of docs/schema, asserting formats
// (date-time).
type schemas struct {
	t *testing.T
	c *jsonschema.Compiler
	m map[string]*jsonschema.Schema
}

func newSchemas(t *testing.T) *schemas {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	return &schemas{t: t, c: c, m: map[string]*jsonschema.Schema{}}
}

// check validates one JSON document against docs/schema/name.schema.json.
func (s *schemas) check(name, what string, doc []byte) {
	s.t.Helper()
	sch, ok := s.m[name]
	if !ok {
		path, err := filepath.Abs(filepath.Join("..", "..", "docs", "schema", name+".schema.json"))
		if err != nil {
			s.t.Fatal(err)
		}
		if sch, err = s.c.Compile(path); err != nil {
			s.t.Fatalf("schema %s: %v", name, err)
		}
		s.m[name] = sch
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		s.t.Errorf("%s: not JSON: %v\n%s", what, err, doc)
		return
	}
	if err := sch.Validate(inst); err != nil {
		s.t.Errorf("%s does not fit %s.schema.json: %v\n%s", what, name, err, doc)
	}
}

// lines is the non-empty lines of b.
func lines(b []byte) [][]byte {
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		if l := bytes.TrimSpace(sc.Bytes()); len(l) > 0 {
			out = append(out, append([]byte{}, l...))
		}
	}
	return out
}

// Every statement kind's output, in -F json and ndjson and through the
// API, fits the JSON Schema docs/schema gives for it; so do a script of
// several statements (one array), a WATCH's epochs and the API's errors.
func TestOutputSchemas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, err := node.StartEmbedded(ctx, node.EmbeddedConfig{Nodes: 12, Seed: 3, Freeze: true, Round: 50 * time.Millisecond, MinRound: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.WaitSettled(ctx, nil); err != nil {
		t.Fatal(err)
	}
	asker := e.Nodes[0]
	s := newSchemas(t)
	script := func(src string, f shell.Format, opts shell.ScriptOptions) []byte {
		t.Helper()
		var out bytes.Buffer
		opts.Split, opts.Format, opts.Out = query.Split, f, &out
		if err := shell.RunScript(ctx, asker, src, opts); err != nil {
			t.Fatalf("%s (%s): %v\n%s", src, f, err, out.String())
		}
		return out.Bytes()
	}
	// In the order they run: RESERVE makes the subcloud the others read.
	kinds := []struct{ statement, schema string }{
		{"SELECT node, mem_free, cpu_load FROM peers WHERE mem_free >= 1GB ORDER BY mem_free DESC LIMIT 3", "select"},
		{"SELECT node, region FROM peers WHERE region = 'eu'", "select"},
		{"SELECT COUNT(*), AVG(cpu_load), PERCENTILE(mem_free, 0.9) FROM peers WHERE cpu_cores >= 1", "aggregate"},
		{"SELECT region, COUNT(*) FROM peers GROUP BY region", "aggregate"},
		{"RESERVE 3 FROM peers ORDER BY reliability DESC AS job FOR 1m", "reserve"},
		{"ALTER SUBCLOUD job RESIZE TO 4", "alter"},
		{"ALTER SUBCLOUD job EXTEND FOR 2m", "alter"},
		{"SELECT COUNT(*), SUM(cpu_cores) FROM SUBCLOUD job WHERE cpu_cores >= 1", "aggregate"},
		{"SELECT COUNT(*), SUM(peer_hours) FROM leases", "aggregate"},
		{"SHOW SUBCLOUDS", "show-subclouds"},
		{"SHOW MEMBERS", "show-members"},
		{"SHOW ATTRIBUTES", "show-attributes"},
		{"SHOW POOLS", "show-pools"},
		{"SHOW EVENTS", "show-events"},
		{"EXPLAIN SELECT region, COUNT(*) FROM peers GROUP BY region", "explain"},
		{"RELEASE job", "release"},
	}
	// Each pass runs every kind, RESERVE to RELEASE.
	for _, k := range kinds {
		doc := script(k.statement, shell.FormatJSON, shell.ScriptOptions{})
		s.check(k.schema, k.statement+" -F json", doc)
		s.check("script", k.statement+" -F json", doc)
		if k.schema == "show-events" && !bytes.Contains(doc, []byte(`"member-join"`)) {
			t.Errorf("SHOW EVENTS without the members' joins, so its rows' shape went unchecked:\n%s", doc)
		}
		if bytes.Contains(doc, []byte(`\u003`)) || bytes.Contains(doc, []byte(`\u0026`)) {
			t.Errorf("%s: HTML escaping in JSON:\n%s", k.statement, doc)
		}
	}
	for _, k := range kinds {
		for _, l := range lines(script(k.statement, shell.FormatNDJSON, shell.ScriptOptions{})) {
			s.check("ndjson", k.statement+" -F ndjson", l)
		}
	}
	// A partial answer (WITH TIMEOUT) is an aggregate answer too.
	partial := script("SELECT COUNT(*) FROM peers WHERE cpu_cores >= 1 WITH TIMEOUT 1ms", shell.FormatJSON, shell.ScriptOptions{AllowPartial: true})
	s.check("aggregate", "a partial answer", partial)

	// Several statements: one array, each item its kind's document.
	var items []json.RawMessage
	all := script("SELECT COUNT(*) FROM peers WHERE mem_free >= 1GB; SHOW ATTRIBUTES; EXPLAIN SELECT COUNT(*) FROM peers", shell.FormatJSON, shell.ScriptOptions{})
	s.check("script", "a script of three statements", all)
	if err := json.Unmarshal(all, &items); err != nil || len(items) != 3 {
		t.Fatalf("a script of three statements: %v, %d documents\n%s", err, len(items), all)
	}
	for i, schema := range []string{"aggregate", "show-attributes", "explain"} {
		s.check(schema, "item of a script", items[i])
	}

	// WATCH: an array of epochs in JSON; lines in NDJSON.
	const watch = "WATCH SELECT COUNT(*) FROM peers WHERE mem_free >= 0B EVERY 1s"
	epochs := script(watch, shell.FormatJSON, shell.ScriptOptions{Epochs: 2})
	s.check("script", "WATCH -F json", epochs)
	items = nil
	if err := json.Unmarshal(epochs, &items); err != nil || len(items) != 2 {
		t.Fatalf("WATCH -F json: %v, %d epochs\n%s", err, len(items), epochs)
	}
	for _, it := range items {
		s.check("watch-epoch", "a WATCH epoch", it)
		s.check("aggregate", "a WATCH epoch", it)
	}
	metas := 0
	for _, l := range lines(script(watch, shell.FormatNDJSON, shell.ScriptOptions{Epochs: 2})) {
		s.check("ndjson", "WATCH -F ndjson", l)
		if bytes.HasPrefix(l, []byte(`{"_meta"`)) {
			metas++
			if !bytes.Contains(l, []byte(`"at":"`)) || !bytes.Contains(l, []byte(`"epoch":`)) {
				t.Errorf("a WATCH's meta line without epoch and at: %s", l)
			}
		}
	}
	if metas != 2 {
		t.Errorf("WATCH -F ndjson: %d meta lines, want 2", metas)
	}

	// The API: every line of every statement kind, and its errors.
	cfg := server.DefaultConfig()
	cfg.Addr, cfg.Token = "127.0.0.1:0", "schema-test"
	srv, err := server.Start(asker, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	post := func(statement string) (int, []byte) {
		t.Helper()
		body, _ := json.Marshal(map[string]string{"statement": statement})
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+srv.Addr()+"/v1/query", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+cfg.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b
	}
	for _, k := range kinds {
		code, b := post(k.statement)
		if code != http.StatusOK {
			t.Errorf("API %s: %d %s", k.statement, code, b)
			continue
		}
		results := 0
		for _, l := range lines(b) {
			s.check("api-line", "API line of "+k.statement, l)
			results += bytes.Count(l, []byte(`"type":"result"`))
		}
		if results != 1 {
			t.Errorf("API %s: %d result lines\n%s", k.statement, results, b)
		}
	}
	code, b := post("SELECT COUNT(*) FROM peers WHERE mem_free >= 1GB WITH TIMEOUT 1ms")
	for _, l := range lines(b) {
		s.check("api-line", "API line of a partial answer", l)
	}
	if code != http.StatusOK || !bytes.Contains(b, []byte(`"timeout":true`)) || !strings.Contains(string(b), ">= 1GB") {
		t.Errorf("API, a statement WITH TIMEOUT: %d %s", code, b)
	}
	code, b = post("SELECT node FORM peers WHERE mem_free > 1")
	s.check("error", "API error of a bad statement", b)
	if code != http.StatusBadRequest || !bytes.Contains(b, []byte(`"code":"statement"`)) {
		t.Errorf("API, a bad statement: %d %s", code, b)
	}
	code, b = post("RELEASE nosuch")
	for _, l := range lines(b) {
		s.check("api-line", "API line of a failed RELEASE", l)
	}
	if code != http.StatusOK || !bytes.Contains(b, []byte(`"type":"error"`)) {
		t.Errorf("API, RELEASE of an unknown subcloud: %d %s", code, b)
	}
}

// In a cloud of pools, the answers that say more — each pool's status,
// the owner of a subcloud's name in each pool, SHOW SUBCLOUDS with its pool
// column and other pools' subclouds — still fit their schemas: a subcloud
// of pool0 asked about from pool1.
func TestPooledOutputSchemas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, err := node.StartEmbedded(ctx, node.EmbeddedConfig{Nodes: 18, Pools: 2, Seed: 3, Freeze: true, Round: 50 * time.Millisecond, MinRound: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.WaitSettled(ctx, nil); err != nil {
		t.Fatal(err)
	}
	owner, other := e.Nodes[0], e.Nodes[1] // pool0, pool1
	if e.PoolOf(0) == e.PoolOf(1) {
		t.Fatalf("peers 0 and 1 are both in pool %d", e.PoolOf(0))
	}
	s := newSchemas(t)
	run := func(at *node.Node, src, schema string) []byte {
		t.Helper()
		var out bytes.Buffer
		// A pool out of rounds on a busy machine is partial, and says so:
		// its shape is checked all the same.
		opts := shell.ScriptOptions{Split: query.Split, Format: shell.FormatJSON, Out: &out, AllowPartial: true}
		if err := shell.RunScript(ctx, at, src, opts); err != nil {
			t.Fatalf("%s: %v\n%s", src, err, out.String())
		}
		s.check(schema, src+" -F json", out.Bytes())
		return out.Bytes()
	}
	run(owner, "RESERVE 2 FROM peers ORDER BY mem_free DESC AS pj FOR 1m", "reserve")
	defer run(owner, "RELEASE pj", "release")
	if doc := run(other, "SELECT COUNT(*) FROM SUBCLOUD pj", "aggregate"); !bytes.Contains(doc, []byte(`"subcloud_owner": "pool0/`+owner.Name()+`"`)) {
		t.Errorf("FROM SUBCLOUD from another pool does not name the owner with its pool:\n%s", doc)
	}
	run(other, "SELECT node FROM SUBCLOUD pj ORDER BY mem_free DESC LIMIT 5", "select")
	if doc := run(other, "SHOW SUBCLOUDS", "show-subclouds"); !bytes.Contains(doc, []byte(`"its members' leases, counted in every pool"`)) || !bytes.Contains(doc, []byte(`"pools"`)) ||
		bytes.Contains(doc, []byte(`; "`)) {
		t.Errorf("SHOW SUBCLOUDS in pool1 does not list pool0's subcloud, or how each pool answered, or its warning ends in a stray separator:\n%s", doc)
	}
	run(other, "SHOW POOLS", "show-pools")
}
