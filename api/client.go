package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/peerq/peerq/answer"
)

// The HTTP API's fixed names.
const (
	// TokenHeader carries the API token (Authorization: Bearer works too).
	TokenHeader = "X-Peerq-Token"
	// TokenFile is the token's file in the agent's data dir (mode 0600).
	TokenFile = "api-token"
	// AddrFile is where an agent leaves its API address in its data dir,
	// so that --data-dir alone finds both the agent and its token.
	AddrFile = "api-addr"
	// DefaultAddr is the API's address unless --api says otherwise.
	DefaultAddr = "127.0.0.1:7474"
	// MaxRequestBytes bounds a request body.
	MaxRequestBytes = 1 << 20
	// MaxLineBytes bounds one NDJSON line a client reads.
	MaxLineBytes = 64 << 20
)

// QueryRequest is the body of POST /v1/query.
type QueryRequest struct {
	Statement string `json:"statement"`
}

// Attribute is one entry of GET /v1/attributes.
type Attribute struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Source string `json:"source"`
	Doc    string `json:"doc"`
}

// Member is one entry of GET /v1/members: a live peer, or one the
// membership still knows that failed or left (Status), with when this
// agent last saw it alive.
type Member struct {
	Name     string            `json:"name"`
	Addr     string            `json:"addr"`     // gossip address, host:port
	Exchange string            `json:"exchange"` // exchange address
	Tags     map[string]string `json:"tags"`
	// Status is "alive", "failed", "left" or "leaving".
	Status string `json:"status"`
	// LastSeen is when this agent saw a member that is not alive go
	// (nil for a live one, or if this agent never saw it alive).
	LastSeen *time.Time `json:"last_seen,omitempty"`
}

// MemberEvent is one entry of GET /v1/events: a member joined, failed,
// left or was reaped, as this agent saw it.
type MemberEvent struct {
	At    time.Time `json:"at"`    // RFC 3339, as this agent's clock read it
	Node  string    `json:"node"`  // the member
	Event string    `json:"event"` // member-join, member-failed, member-leave or member-reap (Serf's names)
	Addr  string    `json:"addr,omitempty"`
	Pool  string    `json:"pool,omitempty"` // in a cloud of pools
}

// LoadOrCreateToken returns the API token in dataDir, creating a random
// one (32 hex digits, mode 0600) the first time.
func LoadOrCreateToken(dataDir string) (string, error) {
	path := filepath.Join(dataDir, TokenFile)
	if b, err := os.ReadFile(path); err == nil {
		if tok := strings.TrimSpace(string(b)); tok != "" {
			return tok, nil
		}
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(b[:])
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return tok, fmt.Errorf("cannot store the API token: %w", err) // the token for this run only
	}
	return tok, nil
}

// ShareToken lets a group read the API token in dataDir: the file is
// given to group (a name or a number) and made 0640, so that a
// Prometheus server that runs as its own user in that group can read it
// (its scrape config's credentials_file). The data dir must let the
// group in too (its x bit). Ownership is Unix's: on Windows it fails,
// and the file's ACL is the way (icacls).
func ShareToken(dataDir, group string) error {
	path := filepath.Join(dataDir, TokenFile)
	gid, err := strconv.Atoi(group)
	if err != nil {
		g, lerr := user.LookupGroup(group)
		if lerr != nil {
			return fmt.Errorf("api: token group: %w", lerr)
		}
		if gid, err = strconv.Atoi(g.Gid); err != nil {
			return fmt.Errorf("api: token group %s: gid %q: %w", group, g.Gid, err)
		}
	}
	if err := os.Chown(path, -1, gid); err != nil {
		return fmt.Errorf("api: giving the token to group %s: %w", group, err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		return fmt.Errorf("api: making the token group-readable: %w", err)
	}
	return nil
}

// Options say where the agent is.
type Options struct {
	// Addr is the API's host:port; empty takes the address the agent
	// left in DataDir, else $PEERQ_API, else DefaultAddr.
	Addr string
	// Token is the API token; empty takes $PEERQ_TOKEN, else the token
	// file in DataDir.
	Token   string
	DataDir string
	// Timeout bounds a whole request, answer included (0: none).
	Timeout time.Duration
}

// Client talks to an agent's local HTTP API. It implements Executor.
type Client struct {
	base, token string
	// tokenFrom says where the token came from, for the hint of a 401.
	tokenFrom string
	http      *http.Client
}

var _ Executor = (*Client)(nil)

// Locate finds the agent and its token from opts, the environment and the
// data dir.
func Locate(opts Options) (*Client, error) {
	addr := opts.Addr
	if addr == "" && opts.DataDir != "" {
		if b, err := os.ReadFile(filepath.Join(opts.DataDir, AddrFile)); err == nil {
			addr = strings.TrimSpace(string(b))
		}
	}
	if addr == "" {
		addr = os.Getenv("PEERQ_API")
	}
	if addr == "" {
		addr = DefaultAddr
	}
	token, from := opts.Token, "--token"
	if token == "" {
		token, from = os.Getenv("PEERQ_TOKEN"), "$PEERQ_TOKEN"
	}
	if token == "" && opts.DataDir != "" {
		path := filepath.Join(opts.DataDir, TokenFile)
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("no API token: %w (is %s an agent's data dir?)", err, opts.DataDir)
		}
		token, from = strings.TrimSpace(string(b)), path
	}
	if token == "" {
		from = ""
	}
	c := NewClient(addr, token, opts.Timeout)
	c.tokenFrom = from
	return c, nil
}

// WriteAddr leaves an agent's API address in its data dir (AddrFile),
// unless it is there already.
func WriteAddr(dataDir, addr string) error {
	path := filepath.Join(dataDir, AddrFile)
	if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) == addr {
		return nil
	}
	return os.WriteFile(path, []byte(addr+"\n"), 0o644)
}

// NewClient returns a client of the API at addr (host:port).
func NewClient(addr, token string, timeout time.Duration) *Client {
	return &Client{base: "http://" + addr, token: token, http: &http.Client{Timeout: timeout}}
}

// Addr is the agent's API address.
func (c *Client) Addr() string { return strings.TrimPrefix(c.base, "http://") }

func (c *Client) request(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set(TokenHeader, c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("agent at %s: %w", c.Addr(), err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var e Error
		if json.NewDecoder(resp.Body).Decode(&e) != nil || e.Message == "" {
			e.Message = resp.Status
		}
		if e.Code == "" {
			e.Code = CodeBadRequest
			switch resp.StatusCode {
			case http.StatusUnauthorized:
				e.Code = CodeUnauthorized
			case http.StatusTooManyRequests:
				e.Code = CodeOverloaded
			}
		}
		if resp.StatusCode == http.StatusTooManyRequests || e.Code == CodeOverloaded {
			e = *busy(&e, resp.Header.Get("Retry-After"))
		}
		if e.Code == CodeUnauthorized {
			e.Message = fmt.Sprintf("%s: %s", c.Addr(), e.Message)
			switch c.tokenFrom {
			case "":
				e.Message += " — no token given: use --token, $PEERQ_TOKEN or --data-dir (the agent's data dir holds it)"
			default:
				e.Message += fmt.Sprintf(" — the token from %s is not this agent's: give --api the address of the agent it belongs to, or --data-dir alone", c.tokenFrom)
			}
		} else if e.Code != CodeStatement {
			e.Message = fmt.Sprintf("agent at %s: %s", c.Addr(), e.Message)
		}
		return nil, &e
	}
	return resp, nil
}

// busy is a refusal as Busy says it, whatever the agent (or a proxy in
// front of it) sent: the body's retry_after, else the Retry-After header
// (seconds, or an HTTP date), else 1 s.
func busy(e *Error, header string) *Error {
	n := e.RetryAfter
	if n <= 0 {
		if s, err := strconv.Atoi(strings.TrimSpace(header)); err == nil {
			n = s
		} else if t, err := http.ParseTime(header); err == nil {
			n = int(math.Ceil(time.Until(t).Seconds()))
		}
	}
	if strings.HasPrefix(e.Message, "busy, retry after ") && e.RetryAfter > 0 {
		return e
	}
	return Busy(n, e.Message)
}

// Execute runs a statement on the agent, streaming its progress.
func (c *Client) Execute(ctx context.Context, statement string, progress func(answer.Progress)) (*answer.Answer, error) {
	var ans *answer.Answer
	var aerr error
	err := c.stream(ctx, statement, progress, func(a *answer.Answer, err error) bool {
		ans, aerr = a, err
		return false
	})
	if err != nil {
		return nil, err
	}
	if ans == nil && aerr == nil {
		return nil, errors.New("agent: the answer ended without a result")
	}
	return ans, aerr
}

// Watch runs a standing query at the agent: each gets every epoch's
// answer until ctx ends or each returns false (the connection is then
// closed, and the agent stops the query).
func (c *Client) Watch(ctx context.Context, statement string, each func(*answer.Answer, error) bool) error {
	// A standing query lasts as long as it is watched: the client's
	// timeout, meant for one answer, does not apply.
	hc := *c.http
	hc.Timeout = 0
	w := *c
	w.http = &hc
	return w.stream(ctx, statement, nil, each)
}

// stream posts a statement and reads the NDJSON answer: progress lines to
// progress, each result (or error) line to each, until each returns false
// or the answer ends.
func (c *Client) stream(ctx context.Context, statement string, progress func(answer.Progress), each func(*answer.Answer, error) bool) error {
	body, _ := answer.Marshal(QueryRequest{Statement: statement})
	resp, err := c.request(ctx, "POST", "/v1/query", body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), MaxLineBytes)
	for sc.Scan() {
		var l Line
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.UseNumber() // numbers as written, typed by their columns (answer.ValueOf)
		if err := dec.Decode(&l); err != nil {
			return fmt.Errorf("agent sent %q: %w", sc.Text(), err)
		}
		var more bool
		switch l.Type {
		case LineProgress:
			if progress != nil {
				progress(l.Progress())
			}
			continue
		case LineError:
			more = each(nil, l.Err())
		case LineResult:
			a := l.Answer()
			var aerr error
			if a.Meta != nil && a.Meta.Timeout {
				aerr = ErrTimeout
			}
			more = each(a, aerr)
		default:
			continue
		}
		if !more {
			return nil
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("agent: %w", err)
	}
	return nil
}

// Attributes lists the catalog: built-in attributes and live tags.
func (c *Client) Attributes(ctx context.Context) ([]Attribute, error) {
	resp, err := c.request(ctx, "GET", "/v1/attributes", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []Attribute
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("agent: attributes: %w", err)
	}
	return out, nil
}

// Words lists the attribute and subcloud names, for completion; nil if
// the agent cannot be reached.
func (c *Client) Words(ctx context.Context) []string {
	attrs, err := c.Attributes(ctx)
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(attrs))
	for _, a := range attrs {
		out = append(out, a.Name)
	}
	// SHOW SUBCLOUDS is answered by the agent alone, from its tables.
	if subs, err := c.Execute(ctx, "SHOW SUBCLOUDS", nil); err == nil {
		for _, row := range subs.Text() {
			if len(row) > 0 {
				out = append(out, row[0])
			}
		}
	}
	return out
}
