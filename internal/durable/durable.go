package durable

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// File is a file open for writing, as FS.Create returns it.
type File interface {
	// Write appends p; a short write returns an error.
	Write(p []byte) (n int, err error)
	// Sync makes the bytes written so far survive a crash (fsync).
	Sync() error
	// Close releases the file; it does not imply Sync.
	Close() error
}

// FS is the file system seen by Write, Read and Probe: the smallest set of
// steps a durable replace needs, so that tests can swap in crashfs and stop
// or fail any one of them.
//
// Implementations must be safe for concurrent use on different paths;
// calls on the same path (or on path and its companions path.tmp,
// path.prev, path.prev.tmp) are made by one goroutine at a time.
type FS interface {
	// Create creates name, or truncates it if it exists, and opens it for
	// writing. A new file is readable and writable by its owner only.
	Create(name string) (File, error)
	// ReadFile returns the whole content of name. A missing file is an
	// error that satisfies errors.Is(err, fs.ErrNotExist).
	ReadFile(name string) ([]byte, error)
	// Rename atomically replaces newname with oldname: after a crash,
	// newname names either its old file or the renamed one.
	Rename(oldname, newname string) error
	// Remove deletes name.
	Remove(name string) error
	// SyncDir makes the creates, renames and removes done so far in dir
	// survive a crash.
	SyncDir(dir string) error
}

// OS returns the real file system.
func OS() FS { return osFS{} }

type osFS struct{}

var _ FS = osFS{}

func (osFS) Create(name string) (File, error) {
	// 0600: the files hold a peer's leases and ownership; nobody else
	// on the machine needs to read them.
	return os.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
}

func (osFS) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }
func (osFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }
func (osFS) Remove(name string) error             { return os.Remove(name) }
func (osFS) SyncDir(dir string) error             { return syncDir(dir) }

// Step names one step of Write or Probe, for errors and tests.
type Step uint8

const (
	StepCreateTemp  Step = iota + 1 // create path.tmp
	StepWriteTemp                   // write the new content to path.tmp
	StepSyncTemp                    // fsync path.tmp
	StepCloseTemp                   // close path.tmp
	StepReadCurrent                 // read path, to keep it as path.prev
	StepCreatePrev                  // create path.prev.tmp
	StepWritePrev                   // write the current content to path.prev.tmp
	StepSyncPrev                    // fsync path.prev.tmp
	StepClosePrev                   // close path.prev.tmp
	StepRenamePrev                  // rename path.prev.tmp over path.prev
	StepReplace                     // rename path.tmp over path
	StepSyncDir                     // fsync the directory
	StepRemoveProbe                 // Probe only: remove the probe file
)

var stepNames = [...]string{
	StepCreateTemp:  "create temp file",
	StepWriteTemp:   "write temp file",
	StepSyncTemp:    "fsync temp file",
	StepCloseTemp:   "close temp file",
	StepReadCurrent: "read current file",
	StepCreatePrev:  "create previous copy",
	StepWritePrev:   "write previous copy",
	StepSyncPrev:    "fsync previous copy",
	StepClosePrev:   "close previous copy",
	StepRenamePrev:  "rename previous copy",
	StepReplace:     "rename temp file over file",
	StepSyncDir:     "fsync directory",
	StepRemoveProbe: "remove probe file",
}

func (s Step) String() string {
	if int(s) < len(stepNames) && stepNames[s] != "" {
		return stepNames[s]
	}
	return fmt.Sprintf("step(%d)", uint8(s))
}

// Error is the error of a failed Write or Probe. It reads
//
//	durable: write /d/lease.json: fsync temp file: no space left on device
//
// and unwraps to the file system's cause, so errors.Is(err,
// syscall.ENOSPC) holds and Reason(err) says "disk full".
type Error struct {
	Op   string // "write" or "probe"
	Path string // the file written, or the directory probed
	Step Step   // the step that failed
	Err  error  // the cause, without the *fs.PathError around it
}

func (e *Error) Error() string {
	return fmt.Sprintf("durable: %s %s: %s: %v", e.Op, e.Path, e.Step, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

func fail(op, path string, step Step, err error) *Error {
	// The step and the path are already in the message; the PathError's
	// own "sync /d/lease.json.tmp:" would only repeat them.
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		err = pe.Err
	case errors.As(err, &le):
		err = le.Err
	}
	return &Error{Op: op, Path: path, Step: step, Err: err}
}

// Write replaces the content of path with data so that a crash at any
// moment leaves path holding either its old content or data, never
// neither and never a mix, and keeps the old content as path.prev:
//
//  1. write path.tmp, fsync it, close it;
//  2. if path exists, copy it to path.prev.tmp, fsync, close, and rename
//     that over path.prev;
//  3. rename path.tmp over path;
//  4. fsync the directory.
//
// The previous copy is made before the replace and by copying, not by
// renaming path away: a crash between two renames must not leave path
// missing (an older reader took a missing file for an empty one and forgot
// every lease in it). Only the directory fsync makes the renames, and so
// the new content, survive a crash; Write returns nil only after it.
//
// A non-nil error is an *Error naming the step. The new content may or may
// not be in place after an error (the rename may have happened and the
// directory fsync failed): the caller must treat the write as not done,
// and a later successful Write settles it. Temporary files left by a
// failed step are removed when possible (to give the space back on a full
// disk); a crash can leave them, and the next Write truncates them.
//
// Write cannot tell a corrupt path from a good one: it keeps the bytes of
// path as they are. If Read had to fall back to path.prev because path was
// corrupt, the next Write replaces that good previous copy by the corrupt
// bytes before it replaces path; a crash in that window leaves no good
// copy. It takes a disk corruption and a crash together.
func Write(fsys FS, path string, data []byte) error {
	if err := write(fsys, path, data); err != nil {
		err.Op, err.Path = "write", path
		return err
	}
	return nil
}

func write(fsys FS, path string, data []byte) *Error {
	tmp := path + ".tmp"
	if err := writeFile(fsys, tmp, data, StepCreateTemp); err != nil {
		return err
	}
	cur, err := fsys.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// The first write: there is nothing to keep.
	case err != nil:
		fsys.Remove(tmp)
		return fail("", "", StepReadCurrent, err)
	default:
		prevTmp := path + ".prev.tmp"
		if err := writeFile(fsys, prevTmp, cur, StepCreatePrev); err != nil {
			fsys.Remove(tmp)
			return err
		}
		if err := fsys.Rename(prevTmp, path+".prev"); err != nil {
			fsys.Remove(prevTmp)
			fsys.Remove(tmp)
			return fail("", "", StepRenamePrev, err)
		}
	}
	if err := fsys.Rename(tmp, path); err != nil {
		fsys.Remove(tmp)
		return fail("", "", StepReplace, err)
	}
	if err := fsys.SyncDir(filepath.Dir(path)); err != nil {
		return fail("", "", StepSyncDir, err)
	}
	return nil
}

// writeFile creates name with data, fsyncs and closes it. first is the
// create step; write, fsync and close follow it in the Step order. On
// failure it removes name (best effort) and reports the step.
func writeFile(fsys FS, name string, data []byte, first Step) *Error {
	f, err := fsys.Create(name)
	if err != nil {
		return fail("", "", first, err)
	}
	step := first + 1
	if _, err = f.Write(data); err == nil {
		step++
		if err = f.Sync(); err == nil {
			step++
			if err = f.Close(); err == nil {
				return nil
			}
		}
	}
	if step != first+3 { // Close has not been called yet
		f.Close()
	}
	fsys.Remove(name)
	return fail("", "", step, err)
}

// ErrCorrupt is wrapped by Read's error when a file exists but does not
// parse and no good previous copy stands in for it.
var ErrCorrupt = errors.New("corrupt")

// Read loads path with parse, falling back to path.prev when path is
// missing or does not parse.
//
//   - path parses: found, no note.
//   - path is missing or does not parse, path.prev parses: found, and note
//     says what happened, for the log. Read does not repair path (the
//     caller may be on a read-only disk): the next successful Write does.
//   - both are missing: not found, no error — a fresh start.
//   - anything else is an error: a file that exists is never taken for an
//     empty one. A file that does not parse, with no good previous copy,
//     gives an error wrapping ErrCorrupt that says how to start without it
//     (mv path path.bad); a file that cannot be read (permissions, I/O)
//     gives an error wrapping the cause, and no fallback.
//
// A missing path with a good path.prev cannot be left by Write; an older
// version of the code could leave it. A corrupt path takes a disk fault.
//
// parse is called at most twice, on path's bytes then on path.prev's; it
// must leave no trace when it returns an error (decode into a fresh value
// and keep it only on success).
func Read(fsys FS, path string, parse func([]byte) error) (note string, found bool, err error) {
	prev := path + ".prev"
	b, err := fsys.ReadFile(path)
	missing := errors.Is(err, fs.ErrNotExist)
	if err != nil && !missing {
		return "", false, fmt.Errorf("durable: read %s: %w", path, err)
	}
	var perr error
	if !missing {
		if perr = parse(b); perr == nil {
			return "", true, nil
		}
	}

	pb, err := fsys.ReadFile(prev)
	prevMissing := errors.Is(err, fs.ErrNotExist)
	switch {
	case missing && prevMissing:
		return "", false, nil
	case err != nil && !prevMissing && missing:
		return "", false, fmt.Errorf("durable: %s is missing and its previous copy cannot be read: %w", path, err)
	case err != nil && !prevMissing:
		return "", false, fmt.Errorf("durable: %s is %w (%w) and its previous copy cannot be read (%w); "+
			"to start without it, move it away: mv %s %s.bad", path, ErrCorrupt, perr, err, path, path)
	case prevMissing:
		return "", false, fmt.Errorf("durable: %s is %w (%w) and has no previous copy; "+
			"to start without it, move it away: mv %s %s.bad", path, ErrCorrupt, perr, path, path)
	}
	if pperr := parse(pb); pperr != nil {
		if missing {
			return "", false, fmt.Errorf("durable: %s is missing and its previous copy %s is %w (%w); "+
				"to start without it, move it away: mv %s %s.bad", path, prev, ErrCorrupt, pperr, prev, prev)
		}
		return "", false, fmt.Errorf("durable: %s is %w (%w) and its previous copy is corrupt too (%w); "+
			"to start without it, move it away: mv %s %s.bad", path, ErrCorrupt, perr, pperr, path, path)
	}
	if missing {
		return fmt.Sprintf("%s is missing: loaded its previous copy %s; the next write restores it", path, prev), true, nil
	}
	return fmt.Sprintf("%s is corrupt (%v): loaded its previous copy %s, which may lack the last change; "+
		"the next write replaces it", path, perr, prev), true, nil
}

// Probe checks that dir can take a durable write now: it writes a small
// file there with Write, removes it and fsyncs dir. Callers run it at
// start and from time to time, to report a data directory that has become
// full or read-only before a write that matters fails. The error is an
// *Error with Op "probe" and Path dir.
func Probe(fsys FS, dir string) error {
	name := filepath.Join(dir, ".probe")
	if err := write(fsys, name, []byte("peerq durable probe\n")); err != nil {
		err.Op, err.Path = "probe", dir
		return err
	}
	// A crash earlier in a probe's life may have left a .probe, so this
	// Write may have made a previous copy too.
	if err := fsys.Remove(name + ".prev"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fail("probe", dir, StepRemoveProbe, err)
	}
	if err := fsys.Remove(name); err != nil {
		return fail("probe", dir, StepRemoveProbe, err)
	}
	if err := fsys.SyncDir(dir); err != nil {
		return fail("probe", dir, StepSyncDir, err)
	}
	return nil
}
