package node

import (
	"errors"
	"fmt"
	"os"
)

// The peer's files that must survive a crash (its lease table, the
// subclouds it owns) are written durably and keep their last good copy:
//
//	write path.tmp, fsync, rename path → path.prev, rename path.tmp → path
//
// so that a torn or corrupt file can be replaced by the previous one.

// writeDurable replaces path with data, keeping the old file as path.prev.
func writeDurable(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(path, path+".prev"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.Rename(tmp, path)
}

// readDurable loads path with parse. A missing file is no error (parse is
// not called). A file that does not parse is replaced by path.prev if that
// parses — note says so, for the log — else the error names the file and
// how to start afresh.
func readDurable(path, what string, parse func([]byte) error) (note string, err error) {
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("node: %s %s: %w", what, path, err)
	}
	perr := parse(b)
	if perr == nil {
		return "", nil
	}
	if prev, err := os.ReadFile(path + ".prev"); err == nil && parse(prev) == nil {
		if err := os.WriteFile(path+".bad", b, 0o600); err == nil {
			os.Rename(path+".prev", path)
		}
		return fmt.Sprintf("%s %s could not be read (%v): restored the previous copy; the bad one is in %s.bad", what, path, perr, path), nil
	}
	return "", fmt.Errorf("node: %s %s is corrupt (%v) and has no good previous copy; move it away to start without it "+
		"(mv %s %s.bad) — %s", what, path, perr, path, path, consequence[what])
}

var consequence = map[string]string{
	"lease table":     "a lease it held lapses at its expiry, unrenewed",
	"owned subclouds": "the subclouds this peer owned are no longer renewed and lapse at their expiry",
}
