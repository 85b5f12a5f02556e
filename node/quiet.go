package node

import (
	"fmt"
	"sync"
	"time"
)

// quietLog passes a log line on at most once an interval for each key,
// and says how many it held back since. In an outage the same failure
// recurs with every statement: with a pool's gateways killed, one agent
// logged that a gateway "did not take query" or "did not vouch" 664 times
// in 3 minutes (helper-75, among agents), which buried everything else.
// The zero value holds nothing back until every is set.
type quietLog struct {
	every time.Duration
	mu    sync.Mutex
	seen  map[string]quietEntry
}

type quietEntry struct {
	at   time.Time
	held int
}

// maxQuietKeys bounds the keys a quietLog remembers: past it, those older
// than its interval are forgotten.
const maxQuietKeys = 1024

// logf logs format and args with logf at now, unless a line of the same
// key was logged within q.every; the first line after that says how many
// were held back.
func (q *quietLog) logf(logf func(string, ...any), now time.Time, key, format string, args ...any) {
	q.mu.Lock()
	e, ok := q.seen[key]
	if ok && now.Sub(e.at) < q.every {
		e.held++
		q.seen[key] = e
		q.mu.Unlock()
		return
	}
	if q.seen == nil {
		q.seen = map[string]quietEntry{}
	}
	if len(q.seen) >= maxQuietKeys {
		for k, old := range q.seen {
			if now.Sub(old.at) >= q.every {
				delete(q.seen, k)
			}
		}
	}
	q.seen[key] = quietEntry{at: now}
	q.mu.Unlock()
	if ok && e.held > 0 {
		format += fmt.Sprintf(" (and %d more like it in the last %s)", e.held, now.Sub(e.at).Round(time.Second))
	}
	logf(format, args...)
}
