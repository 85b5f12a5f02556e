package durable

// syncDir does nothing on Windows: os.Rename is MoveFileEx with
// MOVEFILE_REPLACE_EXISTING, which NTFS journals as one atomic change, and
// a directory cannot be fsynced there (FlushFileBuffers wants a handle
// opened for writing, which a directory cannot have).
func syncDir(dir string) error { return nil }
