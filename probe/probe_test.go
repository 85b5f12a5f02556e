package probe

import (
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestJournal(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "journal")
	t0 := time.Unix(1_700_000_000, 0)
	j, err := OpenJournal(path, t0)
	if err != nil {
		t.Fatal(err)
	}
	// Up for 10 hours, with heartbeats.
	for h := 1; h <= 10; h++ {
		j.Up(t0.Add(time.Duration(h) * time.Hour))
	}
	if r, _ := j.Reliability(t0.Add(10 * time.Hour)); r != 1 {
		t.Errorf("always up: %v", r)
	}
	// Down for 10 hours, then a new session (a restart on the same dir).
	j2, err := OpenJournal(path, t0.Add(20*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	r, ok := j2.Reliability(t0.Add(30 * time.Hour))
	if !ok || math.Abs(r-20.0/30) > 1e-9 {
		t.Errorf("up 20h of 30h: %v", r)
	}
	// Up until 30h, then down; restarted a week after the second session
	// began: the first session has left the window.
	j2.Up(t0.Add(30 * time.Hour))
	j3, err := OpenJournal(path, t0.Add(20*time.Hour+ReliabilityWindow))
	if err != nil {
		t.Fatal(err)
	}
	r, _ = j3.Reliability(t0.Add(20*time.Hour + ReliabilityWindow))
	want := float64(10*3600) / ReliabilityWindow.Seconds()
	if math.Abs(r-want) > 1e-9 {
		t.Errorf("after a week: %v, want %v", r, want)
	}
	// A torn last line (a crash mid-write) is skipped.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("17000")
	f.Close()
	if _, err := OpenJournal(path, t0.Add(40*time.Hour)); err != nil {
		t.Fatal(err)
	}
}

func TestProber(t *testing.T) {
	p, err := New(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	rec := p.Record()
	for _, a := range []string{"cpu_cores", "cpu_load", "mem_total", "mem_free", "disk_total", "disk_free", "uptime"} {
		if v, ok := rec[a]; !ok || v.IsNull() {
			t.Errorf("%s not probed", a)
		}
	}
	if rec["mem_free"].Num > rec["mem_total"].Num || rec["cpu_cores"].Num < 1 {
		t.Errorf("implausible probe %v", rec)
	}
}

// FuzzJournal: whatever the journal file holds, reading it never panics
// and keeps only sane sessions.
func FuzzJournal(f *testing.F) {
	f.Add([]byte("1700000000 1700000600\n1700001000 1700002000\n"))
	f.Add([]byte("garbage\n5 3\n-1 4\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, s := range parseJournal(b) {
			if s[1] < s[0] || s[0] < 0 {
				t.Fatalf("kept %v", s)
			}
		}
	})
}
