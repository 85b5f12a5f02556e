package durable_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/peerq/peerq/internal/durable"
	"github.com/peerq/peerq/internal/durable/crashfs"
)

// The test's file format: "PQ", a CRC-32 of the body, the body
// "<index>:<payload>". decode rejects torn, zeroed and foreign bytes, as a
// real format's checksum must.

func encode(i int, payload []byte) []byte {
	body := append([]byte(strconv.Itoa(i)+":"), payload...)
	b := []byte("PQ")
	b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(body))
	return append(b, body...)
}

func decode(b []byte) (int, error) {
	if len(b) < 6 || string(b[:2]) != "PQ" {
		return 0, errors.New("bad magic")
	}
	body := b[6:]
	if crc32.ChecksumIEEE(body) != binary.BigEndian.Uint32(b[2:6]) {
		return 0, errors.New("bad checksum")
	}
	num, _, ok := bytes.Cut(body, []byte(":"))
	if !ok {
		return 0, errors.New("no index")
	}
	return strconv.Atoi(string(num))
}

// read Reads path and returns the index of the content found, -1 if none.
func read(fsys durable.FS, path string) (idx int, note string, err error) {
	idx = -1
	note, found, err := durable.Read(fsys, path, func(b []byte) error {
		i, err := decode(b)
		if err == nil {
			idx = i
		}
		return err
	})
	if err == nil && found != (idx >= 0) {
		err = fmt.Errorf("found = %v but parsed index %d", found, idx)
	}
	return idx, note, err
}

func TestWriteReadOS(t *testing.T) {
	for _, tc := range []struct {
		name     string
		writes   int
		wantPrev int // index in path.prev, -1 for none
	}{
		{"first write has no previous copy", 1, -1},
		{"second write keeps the first", 2, 0},
		{"third write keeps the second", 3, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "lease.json")
			fsys := durable.OS()
			for i := range tc.writes {
				if err := durable.Write(fsys, path, encode(i, []byte("lease"))); err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
			}
			idx, note, err := read(fsys, path)
			if err != nil || note != "" || idx != tc.writes-1 {
				t.Fatalf("read = %d, %q, %v; want %d, no note, no error", idx, note, err, tc.writes-1)
			}
			prev, err := os.ReadFile(path + ".prev")
			switch {
			case tc.wantPrev < 0 && !errors.Is(err, fs.ErrNotExist):
				t.Errorf("path.prev: %v, want no such file", err)
			case tc.wantPrev >= 0 && !bytes.Equal(prev, encode(tc.wantPrev, []byte("lease"))):
				t.Errorf("path.prev = %q (%v), want content %d", prev, err, tc.wantPrev)
			}
			names := dirNames(t, dir)
			want := []string{"lease.json"}
			if tc.wantPrev >= 0 {
				want = append(want, "lease.json.prev")
			}
			if strings.Join(names, " ") != strings.Join(want, " ") {
				t.Errorf("directory holds %v, want %v (no temporary file left)", names, want)
			}
			if runtime.GOOS != "windows" {
				fi, err := os.Stat(path)
				if err != nil || fi.Mode().Perm() != 0o600 {
					t.Errorf("mode %v (%v), want 0600", fi.Mode().Perm(), err)
				}
			}
		})
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestReadOS(t *testing.T) {
	good0, good1 := encode(0, []byte("old")), encode(1, []byte("new"))
	torn := good1[:len(good1)-2]
	dirMarker := []byte("<dir>")
	for _, tc := range []struct {
		name        string
		path, prev  []byte // nil: no such file; dirMarker: a directory
		want        int    // index found, -1 for not found
		note        string // substring of the note; "" for no note
		err         []string
		wantCorrupt bool
	}{
		{name: "fresh start", want: -1},
		{name: "good file", path: good1, prev: good0, want: 1},
		{name: "good file without previous copy", path: good1, want: 1},
		{name: "missing file, good previous copy", prev: good0, want: 0,
			note: "is missing: loaded its previous copy"},
		{name: "torn file, good previous copy", path: torn, prev: good0, want: 0,
			note: "is corrupt (bad checksum): loaded its previous copy"},
		{name: "empty file, good previous copy", path: []byte{}, prev: good0, want: 0,
			note: "is corrupt (bad magic)"},
		{name: "torn file, no previous copy", path: torn, want: -1, wantCorrupt: true,
			err: []string{"is corrupt (bad checksum) and has no previous copy", "mv {path} {path}.bad"}},
		{name: "torn file, torn previous copy", path: torn, prev: torn, want: -1, wantCorrupt: true,
			err: []string{"is corrupt (bad checksum) and its previous copy is corrupt too (bad checksum)", "mv {path} {path}.bad"}},
		{name: "missing file, torn previous copy", prev: torn, want: -1, wantCorrupt: true,
			err: []string{"is missing and its previous copy {path}.prev is corrupt (bad checksum)", "mv {path}.prev {path}.prev.bad"}},
		{name: "unreadable file is an error, not a fallback", path: dirMarker, prev: good0, want: -1,
			err: []string{"durable: read {path}:"}},
		{name: "torn file, unreadable previous copy", path: torn, prev: dirMarker, want: -1, wantCorrupt: true,
			err: []string{"its previous copy cannot be read"}},
		{name: "missing file, unreadable previous copy", prev: dirMarker, want: -1,
			err: []string{"is missing and its previous copy cannot be read"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "lease.json")
			put := func(name string, b []byte) {
				switch {
				case b == nil:
				case bytes.Equal(b, dirMarker):
					if err := os.Mkdir(name, 0o700); err != nil {
						t.Fatal(err)
					}
				default:
					if err := os.WriteFile(name, b, 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			put(path, tc.path)
			put(path+".prev", tc.prev)
			idx, note, err := read(durable.OS(), path)
			if idx != tc.want {
				t.Errorf("found content %d, want %d", idx, tc.want)
			}
			if tc.note == "" && note != "" || !strings.Contains(note, tc.note) {
				t.Errorf("note %q, want one with %q", note, tc.note)
			}
			if len(tc.err) == 0 && err != nil {
				t.Errorf("error %v, want none", err)
			}
			for _, want := range tc.err {
				want = strings.ReplaceAll(want, "{path}", path)
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("error %v, want one with %q", err, want)
				}
			}
			if errors.Is(err, durable.ErrCorrupt) != tc.wantCorrupt {
				t.Errorf("errors.Is(%v, ErrCorrupt) != %v", err, tc.wantCorrupt)
			}
			if tc.path != nil && !bytes.Equal(tc.path, dirMarker) {
				// Read never writes: the caller may be read-only.
				if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, tc.path) {
					t.Errorf("Read changed the file to %q (%v)", b, err)
				}
			}
		})
	}
}

func TestProbeOS(t *testing.T) {
	for _, tc := range []struct {
		name     string
		leftover []string // files a crashed probe left
		missing  bool     // probe a directory that does not exist
	}{
		{name: "empty directory"},
		{name: "leftovers of a crashed probe", leftover: []string{".probe", ".probe.prev", ".probe.tmp", ".probe.prev.tmp"}},
		{name: "missing directory", missing: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, name := range tc.leftover {
				if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			target := dir
			if tc.missing {
				target = filepath.Join(dir, "nope")
			}
			err := durable.Probe(durable.OS(), target)
			if tc.missing {
				var de *durable.Error
				if !errors.As(err, &de) || de.Op != "probe" || de.Path != target ||
					de.Step != durable.StepCreateTemp || !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("probe of a missing directory: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if names := dirNames(t, dir); len(names) != 0 {
				t.Errorf("probe left %v", names)
			}
		})
	}
}

func TestReason(t *testing.T) {
	for _, tc := range []struct {
		err      error
		want     string
		full, ro bool
	}{
		{nil, "", false, false},
		{errors.New("other"), "", false, false},
		{syscall.ENOSPC, "disk full", true, false},
		{fmt.Errorf("a5: %w", &fs.PathError{Op: "write", Path: "/d/x", Err: syscall.ENOSPC}), "disk full", true, false},
		{syscall.EDQUOT, "disk quota exceeded", false, false},
		{&durable.Error{Op: "write", Path: "/d/x", Step: durable.StepReplace, Err: syscall.EROFS}, "read-only", false, true},
		{syscall.EACCES, "permission denied", false, false},
		{fs.ErrPermission, "permission denied", false, false},
		{syscall.EIO, "i/o error", false, false},
	} {
		if got := durable.Reason(tc.err); got != tc.want {
			t.Errorf("Reason(%v) = %q, want %q", tc.err, got, tc.want)
		}
		if durable.IsDiskFull(tc.err) != tc.full || durable.IsReadOnly(tc.err) != tc.ro {
			t.Errorf("IsDiskFull(%v), IsReadOnly = %v, %v; want %v, %v", tc.err,
				durable.IsDiskFull(tc.err), durable.IsReadOnly(tc.err), tc.full, tc.ro)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	fsys := crashfs.New()
	fsys.FailAt(3, syscall.ENOSPC) // create, write, fsync
	err := durable.Write(fsys, "/d/lease.json", encode(0, nil))
	const want = "durable: write /d/lease.json: fsync temp file: no space left on device"
	if err == nil || err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	if got := durable.Reason(err) + " at a5"; got != "disk full at a5" {
		t.Errorf("user message %q", got)
	}
}

// writeSteps lists the mutating steps of a Write that has a current file
// to keep, in order; StepReadCurrent is a read and not among them.
var writeSteps = []durable.Step{
	durable.StepCreateTemp, durable.StepWriteTemp, durable.StepSyncTemp, durable.StepCloseTemp,
	durable.StepCreatePrev, durable.StepWritePrev, durable.StepSyncPrev, durable.StepClosePrev,
	durable.StepRenamePrev, durable.StepReplace, durable.StepSyncDir,
}

// TestWriteFailingStep fails each step of a Write in turn, once, with
// ENOSPC or EROFS: the error names the step, the path and the reason, the
// old content stays readable (and survives a crash), no temporary file
// stays behind, and the next Write works.
func TestWriteFailingStep(t *testing.T) {
	const path = "/d/lease.json"
	for _, tc := range []struct {
		errno  syscall.Errno
		reason string
	}{
		{syscall.ENOSPC, "disk full"},
		{syscall.EROFS, "read-only"},
	} {
		for k, step := range writeSteps {
			t.Run(fmt.Sprintf("%v/%v", tc.reason, step), func(t *testing.T) {
				fsys := crashfs.New()
				if err := durable.Write(fsys, path, encode(0, []byte("a"))); err != nil {
					t.Fatal(err)
				}
				fsys.FailAt(fsys.Steps()+k+1, tc.errno)
				err := durable.Write(fsys, path, encode(1, []byte("b")))
				var de *durable.Error
				if !errors.As(err, &de) || de.Step != step || de.Op != "write" || de.Path != path {
					t.Fatalf("error %v, want a *durable.Error at step %v", err, step)
				}
				if !errors.Is(err, tc.errno) || durable.Reason(err) != tc.reason {
					t.Errorf("error %v: errors.Is %v = false or Reason %q != %q", err, tc.errno, durable.Reason(err), tc.reason)
				}
				if msg := err.Error(); !strings.HasPrefix(msg, "durable: write "+path+": "+step.String()+": ") {
					t.Errorf("message %q does not name the path and the step", msg)
				}
				// The old content is still there, unless the failure came
				// after the replace (then the new one is, unconfirmed).
				allowed := map[int]bool{0: true, 1: step == durable.StepSyncDir}
				if idx, note, err := read(fsys, path); err != nil || note != "" || !allowed[idx] {
					t.Errorf("read after the failure: %d, %q, %v", idx, note, err)
				}
				for _, name := range fsys.Names() {
					if strings.HasSuffix(name, ".tmp") {
						t.Errorf("%s left behind", name)
					}
				}
				allowed[1] = true // a crash may keep a write in progress
				for _, m := range fsys.Modes() {
					if idx, note, err := read(fsys.Restart(m), path); err != nil || note != "" || !allowed[idx] {
						t.Errorf("read after the failure and a crash (%v): %d, %q, %v", m, idx, note, err)
					}
				}
				if err := durable.Write(fsys, path, encode(2, []byte("c"))); err != nil {
					t.Fatalf("write after a passing failure: %v", err)
				}
				if idx, _, err := read(fsys, path); idx != 2 || err != nil {
					t.Errorf("read %d, %v; want 2", idx, err)
				}
			})
		}
	}
}

// TestWriteStaysFailing covers a disk that stays full or read-only, and a
// current file that cannot be read.
func TestWriteStaysFailing(t *testing.T) {
	const path = "/d/lease.json"
	for _, tc := range []struct {
		name   string
		set    func(*crashfs.FS, bool)
		step   durable.Step
		reason string
	}{
		{"full", (*crashfs.FS).SetFull, durable.StepCreateTemp, "disk full"},
		{"read-only", (*crashfs.FS).SetReadOnly, durable.StepCreateTemp, "read-only"},
		{"unreadable", func(f *crashfs.FS, on bool) {
			err := error(syscall.EACCES)
			if !on {
				err = nil
			}
			f.SetReadErr(path, err)
		}, durable.StepReadCurrent, "permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := crashfs.New()
			if err := durable.Write(fsys, path, encode(0, nil)); err != nil {
				t.Fatal(err)
			}
			tc.set(fsys, true)
			for i := range 3 {
				err := durable.Write(fsys, path, encode(1, nil))
				var de *durable.Error
				if !errors.As(err, &de) || de.Step != tc.step || durable.Reason(err) != tc.reason {
					t.Fatalf("write %d: %v, want a failure at %v: %s", i, err, tc.step, tc.reason)
				}
			}
			if tc.step == durable.StepCreateTemp {
				err := durable.Probe(fsys, "/d")
				var de *durable.Error
				if !errors.As(err, &de) || de.Op != "probe" || de.Path != "/d" || durable.Reason(err) != tc.reason {
					t.Errorf("probe: %v, want %s", err, tc.reason)
				}
			}
			tc.set(fsys, false)
			if idx, _, err := read(fsys, path); idx != 0 || err != nil {
				t.Errorf("read %d, %v; want the old content 0", idx, err)
			}
			if err := durable.Write(fsys, path, encode(1, nil)); err != nil {
				t.Fatalf("write once the disk is back: %v", err)
			}
			if err := durable.Probe(fsys, "/d"); err != nil {
				t.Fatalf("probe once the disk is back: %v", err)
			}
			if names := filepath.ToSlash(strings.Join(fsys.Names(), " ")); names != "/d/lease.json /d/lease.json.prev" {
				t.Errorf("files %v", names)
			}
		})
	}
}

// history is a sequence of Writes of distinct contents to one path,
// starting after `initial` contents already written.
type history struct {
	path     string
	contents [][]byte
	initial  int
}

func newHistory(seed uint64, initial int) history {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	h := history{path: filepath.Join(string(filepath.Separator)+"data", "lease.json"), initial: initial}
	n := initial + 2 + r.IntN(6)
	for i := range n {
		payload := make([]byte, r.IntN(48))
		for j := range payload {
			payload[j] = byte('a' + r.IntN(26))
		}
		h.contents = append(h.contents, encode(i, payload))
	}
	return h
}

// workload writes the contents in turn, acking each Write that returned
// nil; after a failure it goes on with the next content (a fault may pass).
func (h history) workload(stopOnError bool) crashfs.Workload {
	return func(fsys *crashfs.FS, ack func()) error {
		for _, c := range h.contents[h.initial:] {
			if err := durable.Write(fsys, h.path, c); err != nil {
				if stopOnError {
					return err
				}
				continue
			}
			ack()
		}
		return nil
	}
}

// check: Read after a restart returns the content of the last Write that
// returned nil or of the Write in progress, never an older one, never
// "not found" once a Write returned nil, never torn bytes, and never by
// falling back: path itself is always whole.
func (h history) check() crashfs.Check {
	return func(after *crashfs.FS, acked int) error {
		last := h.initial + acked - 1 // -1 when nothing was ever committed
		idx, note, err := read(after, h.path)
		switch {
		case err != nil:
			return err
		case note != "":
			return fmt.Errorf("had to fall back: %s", note)
		case idx == -1 && last >= 0:
			return fmt.Errorf("not found, but content %d was committed", last)
		case idx != -1 && idx != last && idx != last+1:
			return fmt.Errorf("read content %d, want %d (committed) or %d (in progress)", idx, last, last+1)
		case idx >= len(h.contents):
			return fmt.Errorf("read content %d, never written", idx)
		}
		return nil
	}
}

func (h history) start() *crashfs.FS {
	fsys := crashfs.New()
	if h.initial > 0 {
		fsys.Put(h.path, h.contents[h.initial-1])
		// Leftovers of an earlier crash, which Write must overwrite.
		fsys.Put(h.path+".tmp", []byte("garbage from an earlier crash"))
		fsys.Put(h.path+".prev.tmp", []byte("more garbage"))
	}
	return fsys
}

// TestWriteCrashAtEveryStep is the property: for several seeded sequences
// of Writes, a crash before any step, followed by any restart, leaves the
// last committed content or the one in progress.
func TestWriteCrashAtEveryStep(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		for _, initial := range []int{0, 1} {
			t.Run(fmt.Sprintf("seed%d/initial%d", seed, initial), func(t *testing.T) {
				h := newHistory(seed, initial)
				rep := crashfs.ExploreFrom(t, h.start, h.workload(true), h.check())
				// A Write takes 11 steps, the first one only 6 (no
				// previous copy to make).
				want := 11 * (len(h.contents) - initial)
				if initial == 0 {
					want -= 5
				}
				if rep.Steps != want || rep.Crashes != want+1 || rep.Restarts < 2*rep.Crashes {
					t.Errorf("explored too little: %+v", rep)
				}
			})
		}
	}
}

// TestWriteFaultAtEveryStep: a step failing with ENOSPC or EROFS anywhere
// in a sequence of Writes (the workload going on after it), then a crash,
// never loses a committed content.
func TestWriteFaultAtEveryStep(t *testing.T) {
	for seed := uint64(1); seed <= 8; seed++ {
		for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EROFS} {
			t.Run(fmt.Sprintf("seed%d/%v", seed, errno), func(t *testing.T) {
				h := newHistory(seed, 1)
				rep := crashfs.ExploreFaults(t, h.start, errno, h.workload(false), h.check())
				if rep.Crashes != rep.Steps || rep.Steps == 0 {
					t.Errorf("explored too little: %+v", rep)
				}
			})
		}
	}
}

// TestProbeCrashAtEveryStep: a crash in a probe never harms the data file
// next to it, and the next probe works.
func TestProbeCrashAtEveryStep(t *testing.T) {
	const dir = "/data"
	path := filepath.Join(dir, "lease.json")
	start := func() *crashfs.FS {
		fsys := crashfs.New()
		fsys.Put(path, encode(7, nil))
		return fsys
	}
	crashfs.ExploreFrom(t, start,
		func(fsys *crashfs.FS, ack func()) error {
			for range 2 {
				if err := durable.Probe(fsys, dir); err != nil {
					return err
				}
			}
			return nil
		},
		func(after *crashfs.FS, _ int) error {
			if idx, note, err := read(after, path); idx != 7 || note != "" || err != nil {
				return fmt.Errorf("data file: %d, %q, %v", idx, note, err)
			}
			if err := durable.Probe(after, dir); err != nil {
				return fmt.Errorf("probe after the restart: %w", err)
			}
			if names := after.Names(); len(names) != 1 {
				return fmt.Errorf("files after a probe: %v", names)
			}
			return nil
		})
}

// TestConcurrentPaths writes different paths at once, on both file
// systems (run with -race).
func TestConcurrentPaths(t *testing.T) {
	for _, tc := range []struct {
		name string
		fsys durable.FS
		dir  string
	}{
		{"os", durable.OS(), t.TempDir()},
		{"crashfs", crashfs.New(), "/data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Go(func() {
					path := filepath.Join(tc.dir, fmt.Sprintf("f%d", g))
					for i := range 10 {
						if err := durable.Write(tc.fsys, path, encode(i, nil)); err != nil {
							t.Error(err)
							return
						}
					}
					if idx, _, err := read(tc.fsys, path); idx != 9 || err != nil {
						t.Errorf("%s: %d, %v", path, idx, err)
					}
				})
			}
			wg.Wait()
		})
	}
}
