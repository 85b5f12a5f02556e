package probe

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/peerq/peerq/query"
	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"
)

// Prober reports a real machine's record: resources from gopsutil (not
// hand-parsed /proc), uptime since the agent started, and reliability from
// a journal in the data dir. It caches probes for a second, since queries
// read the record often.
type Prober struct {
	dataDir string
	started time.Time
	journal *Journal

	mu     sync.Mutex
	cached query.Record
	at     time.Time
}

// New starts probing for an agent whose data dir is dataDir; it
// opens (or creates) the reliability journal there. A journal that was
// read but cannot be stored gives a Prober and the error: the agent runs,
// its up time is not recorded until the disk can be written.
func New(dataDir string, now time.Time) (*Prober, error) {
	j, err := OpenJournal(filepath.Join(dataDir, "journal"), now)
	if j == nil {
		return nil, err
	}
	return &Prober{dataDir: dataDir, started: now, journal: j}, err
}

// Record probes (or returns the probe of the last second).
func (p *Prober) Record() query.Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if p.cached != nil && now.Sub(p.at) < time.Second {
		return p.cached
	}
	rec := query.Record{"uptime": query.Num(query.KindDuration, now.Sub(p.started).Seconds())}
	if n, err := cpu.Counts(true); err == nil && n > 0 {
		rec["cpu_cores"] = query.Num(query.KindCount, float64(n))
		if l, err := load.Avg(); err == nil {
			rec["cpu_load"] = query.Num(query.KindRatio, l.Load1/float64(n))
		}
	}
	if vm, err := mem.VirtualMemory(); err == nil {
		rec["mem_total"] = query.Num(query.KindBytes, float64(vm.Total))
		rec["mem_free"] = query.Num(query.KindBytes, float64(vm.Available))
	}
	if du, err := disk.Usage(p.dataDir); err == nil {
		rec["disk_total"] = query.Num(query.KindBytes, float64(du.Total))
		rec["disk_free"] = query.Num(query.KindBytes, float64(du.Free))
	}
	if r, ok := p.journal.Reliability(now); ok {
		rec["reliability"] = query.Num(query.KindRatio, r)
	}
	p.cached, p.at = rec, now
	return rec
}

// Heartbeat records that the agent is up; call it every HeartbeatEvery.
func (p *Prober) Heartbeat(now time.Time) error { return p.journal.Up(now) }

// Close closes the journal.
func (p *Prober) Close() error { return p.journal.Close() }

// Reliability: the share of the trailing window during which the agent was
// up, from its own journal. The journal holds one line per session,
// "start end" in Unix seconds: the session's start, and the last heartbeat
// (rewritten in place every HeartbeatEvery). The window is the last
// ReliabilityWindow (7 days), or the time since the first session when
// that is shorter, so that a new peer is not judged by days before it
// existed:
//
//	reliability = Σ overlap(session, window) / length(window)
//
// A crash loses at most one heartbeat interval of up time.
const (
	ReliabilityWindow = 7 * 24 * time.Hour
	HeartbeatEvery    = time.Minute
)

// Journal is the agent's persisted up/down record.
type Journal struct {
	mu       sync.Mutex
	path     string
	sessions [][2]int64 // start, last heartbeat
}

// OpenJournal reads the journal at path and starts a new session at now.
func OpenJournal(path string, now time.Time) (*Journal, error) {
	j := &Journal{path: path}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("probe: journal: %w", err)
	default:
		j.sessions = parseJournal(b)
	}
	// Forget sessions older than the window, then open this one.
	cut := now.Add(-ReliabilityWindow).Unix()
	kept := j.sessions[:0]
	for _, s := range j.sessions {
		if s[1] >= cut {
			kept = append(kept, s)
		}
	}
	j.sessions = append(kept, [2]int64{now.Unix(), now.Unix()})
	return j, j.save()
}

// parseJournal reads the journal's lines, "start end" in Unix seconds;
// torn or bad lines (a crash mid-write, a hand edit) are skipped, and at
// most maxSessions are kept, the latest.
func parseJournal(b []byte) [][2]int64 {
	var out [][2]int64
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 2 {
			continue
		}
		a, err1 := strconv.ParseInt(fs[0], 10, 64)
		z, err2 := strconv.ParseInt(fs[1], 10, 64)
		if err1 == nil && err2 == nil && z >= a && a >= 0 {
			out = append(out, [2]int64{a, z})
		}
	}
	if len(out) > maxSessions {
		out = out[len(out)-maxSessions:]
	}
	return out
}

// maxSessions bounds the sessions a journal keeps.
const maxSessions = 100_000

// Up extends the current session to now and persists the journal.
func (j *Journal) Up(now time.Time) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.sessions[len(j.sessions)-1][1] = now.Unix()
	return j.save()
}

// save rewrites the journal atomically (write, fsync, rename).
func (j *Journal) save() error {
	var b strings.Builder
	for _, s := range j.sessions {
		fmt.Fprintf(&b, "%d %d\n", s[0], s[1])
	}
	tmp := j.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("probe: journal: %w", err)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return fmt.Errorf("probe: journal: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("probe: journal: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("probe: journal: %w", err)
	}
	return os.Rename(tmp, j.path)
}

// Reliability is the share of the window the agent was up; ok is false
// before any time has passed.
func (j *Journal) Reliability(now time.Time) (float64, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	ss := append([][2]int64(nil), j.sessions...)
	ss[len(ss)-1][1] = now.Unix() // the running session is up until now
	sort.Slice(ss, func(a, b int) bool { return ss[a][0] < ss[b][0] })
	end := now.Unix()
	start := max(now.Add(-ReliabilityWindow).Unix(), ss[0][0])
	if end <= start {
		return 0, false
	}
	up := int64(0)
	for _, s := range ss {
		a, b := max(s[0], start), min(s[1], end)
		if b > a {
			up += b - a
		}
	}
	return math.Min(1, float64(up)/float64(end-start)), true
}

// Close persists the current session's end.
func (j *Journal) Close() error { return j.Up(time.Now()) }
