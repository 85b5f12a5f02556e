package crashfs_test

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/peerq/peerq/internal/durable"
	"github.com/peerq/peerq/internal/durable/crashfs"
)

// p turns a slash path into the platform's, as the FS cleans names with
// path/filepath.
func p(name string) string { return filepath.FromSlash(name) }

func create(t *testing.T, fsys *crashfs.FS, name, data string, sync bool) {
	t.Helper()
	f, err := fsys.Create(p(name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// files returns name=content for every file, sorted by name.
func files(fsys *crashfs.FS) string {
	var out []string
	for _, name := range fsys.Names() {
		b, err := fsys.ReadFile(name)
		if err != nil {
			return err.Error()
		}
		out = append(out, filepath.ToSlash(name)+"="+strings.ReplaceAll(string(b), "\x00", "0"))
	}
	return strings.Join(out, " ")
}

func TestRestart(t *testing.T) {
	all := math.MaxInt
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, fsys *crashfs.FS)
		modes int                     // len(Modes())
		want  map[crashfs.Mode]string // files after Restart(mode)
	}{
		{
			name:  "unsynced file in unsynced directory",
			setup: func(t *testing.T, fsys *crashfs.FS) { create(t, fsys, "/d/a", "hello", false) },
			modes: 8,
			want: map[crashfs.Mode]string{
				{Entries: 0, Data: crashfs.DataKept}:   "",
				{Entries: 1, Data: crashfs.DataLost}:   "/d/a=",
				{Entries: 1, Data: crashfs.DataKept}:   "/d/a=hello",
				{Entries: 1, Data: crashfs.DataTorn}:   "/d/a=he",
				{Entries: 1, Data: crashfs.DataZeroed}: "/d/a=00000",
			},
		},
		{
			name:  "synced file, directory not synced",
			setup: func(t *testing.T, fsys *crashfs.FS) { create(t, fsys, "/d/a", "hello", true) },
			modes: 2,
			want: map[crashfs.Mode]string{
				{Entries: 0}: "",
				{Entries: 1}: "/d/a=hello",
			},
		},
		{
			name: "synced file and directory",
			setup: func(t *testing.T, fsys *crashfs.FS) {
				create(t, fsys, "/d/a", "hello", true)
				if err := fsys.SyncDir(p("/d")); err != nil {
					t.Fatal(err)
				}
			},
			modes: 1,
			want:  map[crashfs.Mode]string{{Entries: 0}: "/d/a=hello"},
		},
		{
			name: "fsync of another directory does not count",
			setup: func(t *testing.T, fsys *crashfs.FS) {
				create(t, fsys, "/d/a", "hello", true)
				if err := fsys.SyncDir(p("/e")); err != nil {
					t.Fatal(err)
				}
			},
			modes: 2,
			want:  map[crashfs.Mode]string{{Entries: 0}: ""},
		},
		{
			name: "rename is atomic and in order",
			setup: func(t *testing.T, fsys *crashfs.FS) {
				fsys.Put(p("/d/x"), []byte("old"))
				create(t, fsys, "/d/x.tmp", "new", true)
				if err := fsys.Rename(p("/d/x.tmp"), p("/d/x")); err != nil {
					t.Fatal(err)
				}
			},
			modes: 3,
			want: map[crashfs.Mode]string{
				{Entries: 0}:   "/d/x=old",
				{Entries: 1}:   "/d/x=old /d/x.tmp=new",
				{Entries: all}: "/d/x=new",
			},
		},
		{
			name: "rename of unsynced data may leave it empty or torn",
			setup: func(t *testing.T, fsys *crashfs.FS) {
				fsys.Put(p("/d/x"), []byte("old"))
				create(t, fsys, "/d/x.tmp", "newer", false)
				if err := fsys.Rename(p("/d/x.tmp"), p("/d/x")); err != nil {
					t.Fatal(err)
				}
			},
			modes: 12,
			want: map[crashfs.Mode]string{
				{Entries: 2, Data: crashfs.DataLost}: "/d/x=",
				{Entries: 2, Data: crashfs.DataTorn}: "/d/x=ne",
				{Entries: 2, Data: crashfs.DataKept}: "/d/x=newer",
			},
		},
		{
			name: "truncation is not durable before fsync",
			setup: func(t *testing.T, fsys *crashfs.FS) {
				fsys.Put(p("/d/x"), []byte("old"))
				create(t, fsys, "/d/x", "new!", false)
			},
			modes: 4,
			want: map[crashfs.Mode]string{
				{Data: crashfs.DataLost}: "/d/x=old",
				{Data: crashfs.DataKept}: "/d/x=new!",
				{Data: crashfs.DataTorn}: "/d/x=ne",
			},
		},
		{
			name: "remove",
			setup: func(t *testing.T, fsys *crashfs.FS) {
				fsys.Put(p("/d/x"), []byte("old"))
				if err := fsys.Remove(p("/d/x")); err != nil {
					t.Fatal(err)
				}
			},
			modes: 2,
			want: map[crashfs.Mode]string{
				{Entries: 0}: "/d/x=old",
				{Entries: 1}: "",
			},
		},
		{
			name: "rename across directories needs both fsynced",
			setup: func(t *testing.T, fsys *crashfs.FS) {
				fsys.Put(p("/a/x"), []byte("x"))
				if err := fsys.Rename(p("/a/x"), p("/b/x")); err != nil {
					t.Fatal(err)
				}
				create(t, fsys, "/a/x", "again", true)
				if err := fsys.SyncDir(p("/a")); err != nil {
					t.Fatal(err)
				}
			},
			modes: 2,
			want: map[crashfs.Mode]string{
				// The create in /a is durable, the rename is not: the
				// new /a/x must not be removed by it.
				{Entries: 0}: "/a/x=again",
				{Entries: 1}: "/a/x=again /b/x=x",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := crashfs.New()
			tc.setup(t, fsys)
			before := files(fsys)
			if got := len(fsys.Modes()); got != tc.modes {
				t.Errorf("%d modes, want %d: %v\n%s", got, tc.modes, fsys.Modes(), fsys)
			}
			for m, want := range tc.want {
				after := fsys.Restart(m)
				if got := files(after); got != want {
					t.Errorf("Restart(%v) = %q, want %q\n%s", m, got, want, fsys)
				}
				if len(after.Modes()) != 1 || after.Steps() != 0 {
					t.Errorf("Restart(%v) is not all durable: %v", m, after)
				}
			}
			if got := files(fsys); got != before {
				t.Errorf("Restart changed the FS: %q, was %q", got, before)
			}
		})
	}
}

func TestCrashAt(t *testing.T) {
	fsys := crashfs.New()
	fsys.CrashAt(3)
	f, err := fsys.Create(p("/d/a")) // step 1
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("x")); err != nil { // step 2
		t.Fatal(err)
	}
	if err := f.Sync(); !errors.Is(err, crashfs.ErrCrashed) { // step 3
		t.Fatalf("sync at the crash step: %v", err)
	}
	if err := fsys.Rename(p("/d/a"), p("/d/b")); !errors.Is(err, crashfs.ErrCrashed) {
		t.Fatalf("rename after the crash: %v", err)
	}
	if _, err := fsys.ReadFile(p("/d/a")); !errors.Is(err, crashfs.ErrCrashed) {
		t.Fatalf("read after the crash: %v", err)
	}
	if !fsys.Crashed() || fsys.Steps() != 3 || fsys.Step(3) != "fsync "+p("/d/a") {
		t.Errorf("crashed %v, steps %d, step 3 %q", fsys.Crashed(), fsys.Steps(), fsys.Step(3))
	}
	// The sync did not happen: the byte is volatile.
	if got := files(fsys.Restart(crashfs.Mode{Entries: 1, Data: crashfs.DataLost})); got != "/d/a=" {
		t.Errorf("after the crash: %q", got)
	}
}

func TestFaults(t *testing.T) {
	t.Run("FailAt fails one step without effect", func(t *testing.T) {
		fsys := crashfs.New()
		fsys.FailAt(1, syscall.ENOSPC)
		_, err := fsys.Create(p("/d/a"))
		var pe *fs.PathError
		if !errors.As(err, &pe) || !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("create: %v", err)
		}
		if names := fsys.Names(); len(names) != 0 {
			t.Fatalf("failed create made %v", names)
		}
		create(t, fsys, "/d/a", "ok", true)
	})
	t.Run("SetFull fails creates and writes, not renames", func(t *testing.T) {
		fsys := crashfs.New()
		f, err := fsys.Create(p("/d/a"))
		if err != nil {
			t.Fatal(err)
		}
		fsys.SetFull(true)
		if _, err := f.Write([]byte("x")); !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("write: %v", err)
		}
		if _, err := f.Write(nil); err != nil {
			t.Errorf("empty write: %v", err)
		}
		if _, err := fsys.Create(p("/d/b")); !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("create: %v", err)
		}
		if err := fsys.Rename(p("/d/a"), p("/d/c")); err != nil {
			t.Errorf("rename: %v", err)
		}
		fsys.SetFull(false)
		if _, err := f.Write([]byte("x")); err != nil {
			t.Errorf("write once space is back: %v", err)
		}
	})
	t.Run("SetReadOnly fails every mutating step", func(t *testing.T) {
		fsys := crashfs.New()
		fsys.Put(p("/d/a"), []byte("a"))
		fsys.SetReadOnly(true)
		if _, err := fsys.Create(p("/d/b")); !errors.Is(err, syscall.EROFS) {
			t.Errorf("create: %v", err)
		}
		if err := fsys.Rename(p("/d/a"), p("/d/b")); !errors.Is(err, syscall.EROFS) {
			t.Errorf("rename: %v", err)
		}
		if err := fsys.Remove(p("/d/a")); !errors.Is(err, syscall.EROFS) {
			t.Errorf("remove: %v", err)
		}
		if err := fsys.SyncDir(p("/d")); !errors.Is(err, syscall.EROFS) {
			t.Errorf("syncdir: %v", err)
		}
		if b, err := fsys.ReadFile(p("/d/a")); err != nil || string(b) != "a" {
			t.Errorf("read: %q, %v", b, err)
		}
	})
	t.Run("SetReadErr", func(t *testing.T) {
		fsys := crashfs.New()
		fsys.Put(p("/d/a"), []byte("a"))
		fsys.SetReadErr(p("/d/a"), syscall.EACCES)
		if _, err := fsys.ReadFile(p("/d/a")); !errors.Is(err, fs.ErrPermission) {
			t.Errorf("read: %v", err)
		}
		fsys.SetReadErr(p("/d/a"), nil)
		if _, err := fsys.ReadFile(p("/d/a")); err != nil {
			t.Errorf("read: %v", err)
		}
	})
	t.Run("missing files", func(t *testing.T) {
		fsys := crashfs.New()
		if _, err := fsys.ReadFile(p("/d/a")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("read: %v", err)
		}
		if err := fsys.Rename(p("/d/a"), p("/d/b")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("rename: %v", err)
		}
		if err := fsys.Remove(p("/d/a")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("remove: %v", err)
		}
	})
}

// recorder is a T that keeps what Explore reports.
type recorder struct{ errs []string }

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// Writers that each skip one step of a durable write, and a check that
// catches each: Explore must find the crash point that shows it.
func TestExploreCatchesBrokenWriters(t *testing.T) {
	const path = "/d/f"
	contents := []string{"one", "two", "three"}
	writeFile := func(fsys *crashfs.FS, name, data string, sync bool) error {
		f, err := fsys.Create(p(name))
		if err != nil {
			return err
		}
		if _, err := f.Write([]byte(data)); err != nil {
			return err
		}
		if sync {
			if err := f.Sync(); err != nil {
				return err
			}
		}
		return f.Close()
	}
	writers := map[string]func(fsys *crashfs.FS, data string) error{
		"in place": func(fsys *crashfs.FS, data string) error {
			if err := writeFile(fsys, path, data, true); err != nil {
				return err
			}
			return fsys.SyncDir(p("/d"))
		},
		"no file fsync": func(fsys *crashfs.FS, data string) error {
			if err := writeFile(fsys, path+".tmp", data, false); err != nil {
				return err
			}
			if err := fsys.Rename(p(path+".tmp"), p(path)); err != nil {
				return err
			}
			return fsys.SyncDir(p("/d"))
		},
		"no directory fsync": func(fsys *crashfs.FS, data string) error {
			if err := writeFile(fsys, path+".tmp", data, true); err != nil {
				return err
			}
			return fsys.Rename(p(path+".tmp"), p(path))
		},
		"rename away first": func(fsys *crashfs.FS, data string) error {
			if err := writeFile(fsys, path+".tmp", data, true); err != nil {
				return err
			}
			if err := fsys.Rename(p(path), p(path+".prev")); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			if err := fsys.Rename(p(path+".tmp"), p(path)); err != nil {
				return err
			}
			return fsys.SyncDir(p("/d"))
		},
	}
	for name, write := range writers {
		t.Run(name, func(t *testing.T) {
			var r recorder
			rep := crashfs.Explore(&r,
				func(fsys *crashfs.FS, ack func()) error {
					for _, c := range contents {
						if err := write(fsys, c); err != nil {
							return err
						}
						ack()
					}
					return nil
				},
				func(after *crashfs.FS, acked int) error {
					b, err := after.ReadFile(p(path))
					if err != nil {
						if acked == 0 && errors.Is(err, fs.ErrNotExist) {
							return nil
						}
						return err
					}
					if acked > 0 && string(b) == contents[acked-1] || acked < len(contents) && string(b) == contents[acked] {
						return nil
					}
					return fmt.Errorf("read %q", b)
				})
			if len(r.errs) != 1 || !strings.Contains(r.errs[0], "crashfs: crash ") {
				t.Fatalf("Explore reported %q (%+v), want one crash", r.errs, rep)
			}
			t.Logf("caught: %s", strings.SplitN(r.errs[0], "\n", 2)[0])
		})
	}
}

func TestExploreReportsNondeterminism(t *testing.T) {
	runs := 0
	var r recorder
	crashfs.Explore(&r, func(fsys *crashfs.FS, ack func()) error {
		runs++
		for range 4 - min(runs, 3) { // fewer steps on every run
			if err := durable.Write(fsys, p("/d/f"), []byte("x")); err != nil {
				return err
			}
		}
		return nil
	}, func(*crashfs.FS, int) error { return nil })
	if len(r.errs) != 1 || !strings.Contains(r.errs[0], "not deterministic") {
		t.Fatalf("Explore reported %q", r.errs)
	}
}

func TestExploreFaultsCatchesAckAfterFailure(t *testing.T) {
	const path = "/d/f"
	var r recorder
	crashfs.ExploreFaults(&r, crashfs.New, syscall.ENOSPC,
		func(fsys *crashfs.FS, ack func()) error {
			for _, c := range []string{"a", "b"} {
				durable.Write(fsys, p(path), []byte(c)) // the bug: the error is dropped
				ack()
			}
			return nil
		},
		func(after *crashfs.FS, acked int) error {
			b, err := after.ReadFile(p(path))
			if acked == 2 && (err != nil || string(b) != "b") {
				return fmt.Errorf("acked b, read %q, %v", b, err)
			}
			return nil
		})
	if len(r.errs) != 1 || !strings.Contains(r.errs[0], "no space left on device at step") {
		t.Fatalf("ExploreFaults reported %q", r.errs)
	}
}

func TestExploreReport(t *testing.T) {
	rep := crashfs.Explore(t, func(fsys *crashfs.FS, ack func()) error {
		if err := durable.Write(fsys, p("/d/f"), []byte("x")); err != nil {
			return err
		}
		ack()
		return nil
	}, func(after *crashfs.FS, acked int) error {
		b, err := after.ReadFile(p("/d/f"))
		if acked == 1 && string(b) != "x" {
			return fmt.Errorf("lost the acked write: %q, %v", b, err)
		}
		return nil
	})
	// create, write, fsync, close, rename, fsync dir.
	if rep.Steps != 6 || rep.Crashes != 7 || rep.Restarts <= rep.Crashes {
		t.Errorf("report %+v", rep)
	}
}
