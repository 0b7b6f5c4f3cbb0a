// Package atomicfile replaces files so that a crash at any moment leaves
// either the old content or the new, whole, never a mix: the new content
// goes to a temporary file in the same directory (so that the rename is
// atomic), which is synced, given its mode, renamed over the target, and
// the directory synced so that the rename itself survives a crash.
//
// Every file sluice keeps on disk whole (the local state, sync requests,
// the webhook journal when compacted, webhook signing secrets, Parquet
// table manifests, configuration files rewritten by fmt) is written here.
//
// A crash can leave the temporary file behind. Its name is the target's
// base name after a dot and before ".tmp-" and a random suffix
// (".state.json.tmp-123"), unless the caller names a prefix (TempPrefix);
// callers that list a directory skip or remove such files.
package atomicfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Option changes how a file is written.
type Option func(*options)

type options struct {
	prefix string
	nosync bool
}

// TempPrefix names the temporary file prefix followed by a random suffix,
// for a caller whose cleanup looks for that prefix. The default is
// "."+base+".tmp-", base the target's base name.
func TempPrefix(prefix string) Option {
	return func(o *options) { o.prefix = prefix }
}

// NoSync skips the fsyncs of the file and the directory when skip is true.
// The rename still makes the replacement atomic for other processes, but
// a crash of the machine may lose it: only for tests that check neither
// durability nor crash recovery, to run fast on a busy disk.
func NoSync(skip bool) Option {
	return func(o *options) { o.nosync = skip }
}

// hook, when set by a test, is called at each step of a write with the
// step's name and the file or directory it concerns; an error it returns
// fails the write as the step's own error would.
var hook func(step, name string) error

func at(step, name string) error {
	if hook == nil {
		return nil
	}
	return hook(step, name)
}

// TempName reports whether name (a base name) is a temporary file that a
// write to target (also a base name) with the default prefix may have
// left behind.
func TempName(name, target string) bool {
	return strings.HasPrefix(name, "."+target+".tmp-")
}

// WriteFile replaces path with data, a new file of mode perm (not masked
// by the umask). The directory must exist.
func WriteFile(path string, data []byte, perm fs.FileMode, opts ...Option) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}, opts...)
}

// Write replaces path with what fill writes, buffered, as WriteFile does.
// If fill fails, path is left as it was and its error returned.
func Write(path string, perm fs.FileMode, fill func(io.Writer) error, opts ...Option) error {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	tmp, err := writeTemp(path, perm, fill, o)
	if err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	err = at("rename", tmp)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("replace %s: %w", path, err)
	}
	if !o.nosync {
		if err := SyncDir(filepath.Dir(path)); err != nil {
			return fmt.Errorf("replace %s: %w", path, err)
		}
	}
	return nil
}

// CreateFile writes path with data, a new file of mode perm, only if path
// does not exist; if it does, path is left as it is and the error matches
// fs.ErrExist. Either way the directory is synced. Like WriteFile, a crash leaves no partial file at path:
// the temporary file is linked into place rather than renamed.
func CreateFile(path string, data []byte, perm fs.FileMode, opts ...Option) error {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	tmp, err := writeTemp(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}, o)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	defer os.Remove(tmp)
	err = at("link", tmp)
	if err == nil {
		err = os.Link(tmp, path)
	}
	exists := errors.Is(err, fs.ErrExist)
	if err != nil && !exists {
		return fmt.Errorf("create %s: %w", path, err)
	}
	// Synced even when another process created path first: the caller
	// goes on to use that file, which must then survive a crash too.
	if !o.nosync {
		if err := SyncDir(filepath.Dir(path)); err != nil {
			return fmt.Errorf("create %s: %w", path, err)
		}
	}
	if exists {
		return fmt.Errorf("create %s: %w", path, fs.ErrExist)
	}
	return nil
}

// writeTemp writes what fill writes to a new synced file of mode perm
// beside path and returns its name; on failure it removes the file.
func writeTemp(path string, perm fs.FileMode, fill func(io.Writer) error, o options) (name string, err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	prefix := o.prefix
	if prefix == "" {
		prefix = "." + base + ".tmp-"
	}
	f, err := os.CreateTemp(dir, prefix+"*")
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(tmp)
			name = ""
		}
	}()
	if err := at("create", tmp); err != nil {
		return "", err
	}
	bw := bufio.NewWriterSize(f, 64<<10)
	if err := fill(bw); err != nil {
		return "", err
	}
	if err := bw.Flush(); err != nil {
		return "", err
	}
	if err := at("write", tmp); err != nil {
		return "", err
	}
	if err := f.Chmod(perm); err != nil {
		return "", err
	}
	if !o.nosync {
		if err := at("sync", tmp); err != nil {
			return "", err
		}
		if err := f.Sync(); err != nil {
			return "", err
		}
	}
	return tmp, nil
}

// SyncDir makes the entries of a directory (files created, renamed or
// removed in it) durable.
func SyncDir(dir string) error {
	if err := at("syncdir", dir); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
