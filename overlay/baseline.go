package overlay

import (
	"fmt"
	"time"

	"github.com/hashicorp/serf/serf"
)

// The baseline peerq is measured against: a serf.Query that every peer
// answers (docs/SERF-NOTES.md). It is not how peerq answers queries (no peer
// should collect a reply from every other); it exists as a test oracle and
// for the benchmark that compares the two on one cluster.

// SetQueryResponder makes the peer answer Serf queries with respond's
// bytes (nil: no answer).
func (o *Overlay) SetQueryResponder(respond func(name string, payload []byte) []byte) {
	o.mu.Lock()
	o.responder = respond
	o.mu.Unlock()
}

func (o *Overlay) answerQuery(q *serf.Query) {
	o.mu.RLock()
	respond := o.responder
	o.mu.RUnlock()
	if respond == nil {
		return
	}
	if resp := respond(q.Name, q.Payload); resp != nil {
		q.Respond(resp)
	}
}

// QueryStats is what one serf.Query cost the asker.
type QueryStats struct {
	Responses int
	Bytes     int // response payload bytes received
	Elapsed   time.Duration
	// AllBy is when the last response came.
	AllBy time.Duration
}

// QueryAll sends a Serf query to every member and collects the answers
// until all expected have come or the timeout passes.
func (o *Overlay) QueryAll(name string, payload []byte, expect int, timeout time.Duration) (QueryStats, error) {
	start := time.Now()
	resp, err := o.serf.Query(name, payload, &serf.QueryParam{Timeout: timeout})
	if err != nil {
		return QueryStats{}, fmt.Errorf("overlay: serf query: %w", err)
	}
	defer resp.Close()
	var st QueryStats
	deadline := time.After(timeout)
	for st.Responses < expect {
		select {
		case r, ok := <-resp.ResponseCh():
			if !ok {
				st.Elapsed = time.Since(start)
				return st, nil
			}
			st.Responses++
			st.Bytes += len(r.Payload)
			st.AllBy = time.Since(start)
		case <-deadline:
			st.Elapsed = time.Since(start)
			return st, nil
		}
	}
	st.Elapsed = time.Since(start)
	return st, nil
}
