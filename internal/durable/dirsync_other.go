//go:build !windows

package durable

import "os"

// syncDir fsyncs dir, which makes the creates, renames and removes in it
// survive a crash: fsyncing a file makes its bytes durable, not its name.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}
