package haproxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Files of a backup directory.
const (
	BackupConfigFile = "original.cfg"  // the original configuration, byte for byte
	BackupRecordFile = "original.json" // where it came from and what it was
)

// backupRecord describes the backed-up original configuration. It is
// written after the copy, so its presence marks a complete backup.
type backupRecord struct {
	Path   string    `json:"path"`             // absolute path of the original
	Absent bool      `json:"absent,omitempty"` // there was no original
	Mode   string    `json:"mode,omitempty"`   // permission bits, octal
	UID    int       `json:"uid"`              // owner, -1 if unknown
	GID    int       `json:"gid"`
	Size   int64     `json:"size"`
	SHA256 string    `json:"sha256,omitempty"`
	Time   time.Time `json:"backed_up_at"`
}

// Backup copies the original configuration at path into dir (mode and
// bytes preserved) once: if a backup already exists it is kept (never
// overwritten by a later, lumos-managed file). Returns the backup path. A
// missing original is recorded as "absent" so Restore removes nothing and
// creates nothing; the returned path is then "".
//
// dir holds BackupConfigFile and BackupRecordFile (path, mode, owner,
// size and SHA-256 of the original); it is created with mode 0700. An
// existing backup of another path is an error.
func Backup(path, dir string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("haproxy: backup %s: %w", path, err)
	}
	copyPath := filepath.Join(dir, BackupConfigFile)
	rec, err := backupReadRecord(dir)
	switch {
	case err == nil:
		if rec.Path != abs {
			return "", fmt.Errorf("haproxy: %s already holds a backup of %s, not of %s", dir, rec.Path, abs)
		}
		if rec.Absent {
			return "", nil
		}
		return copyPath, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("haproxy: backup: %w", err)
	}

	data, info, err := backupReadOriginal(abs)
	if errors.Is(err, fs.ErrNotExist) {
		rec := backupRecord{Path: abs, Absent: true, UID: -1, GID: -1, Time: time.Now().UTC()}
		if err := backupWriteRecord(dir, rec); err != nil {
			return "", err
		}
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("haproxy: backup: %w", err)
	}
	uid, gid := backupFileOwner(info)
	sum := sha256.Sum256(data)
	rec = backupRecord{
		Path:   abs,
		Mode:   strconv.FormatUint(uint64(info.Mode().Perm()), 8),
		UID:    uid,
		GID:    gid,
		Size:   int64(len(data)),
		SHA256: hex.EncodeToString(sum[:]),
		Time:   time.Now().UTC(),
	}
	if err := backupWriteAtomic(copyPath, data, info.Mode().Perm(), -1, -1); err != nil {
		return "", fmt.Errorf("haproxy: backup: %w", err)
	}
	if err := backupWriteRecord(dir, rec); err != nil {
		return "", err
	}
	return copyPath, nil
}

// Restore puts the backed-up original back at its path after checking it
// with check(path of a temporary copy next to the original) — the caller
// passes a function running `haproxy -c -f`, nil skips the check —
// atomically (temporary file and rename in the same directory), byte for
// byte, with the original mode (and owner, when permitted). If the check
// fails, nothing changes and the error says why. When the original was
// absent, nothing is done and restoredPath is "". A symbolic link at the
// original path is kept: the file it points to is replaced.
func Restore(dir string, check func(path string) error) (restoredPath string, err error) {
	rec, err := backupReadRecord(dir)
	if err != nil {
		return "", err
	}
	if rec.Absent {
		return "", nil
	}
	data, err := os.ReadFile(filepath.Join(dir, BackupConfigFile))
	if err != nil {
		return "", fmt.Errorf("haproxy: restore: read backup: %w", err)
	}
	sum := sha256.Sum256(data)
	if int64(len(data)) != rec.Size || hex.EncodeToString(sum[:]) != rec.SHA256 {
		return "", fmt.Errorf("haproxy: restore: the backup in %s does not match its record (size %d, sha256 %x; recorded %d, %s): not restored", dir, len(data), sum, rec.Size, rec.SHA256)
	}
	mode, err := strconv.ParseUint(rec.Mode, 8, 32)
	if err != nil {
		return "", fmt.Errorf("haproxy: restore: bad mode %q in backup record", rec.Mode)
	}

	target := rec.Path
	if fi, err := os.Lstat(target); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		if t, err := filepath.EvalSymlinks(target); err == nil {
			target = t
		}
	}
	parent := filepath.Dir(target)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("haproxy: restore: %w", err)
	}
	tmp, err := backupWriteTemp(parent, filepath.Base(target), data, fs.FileMode(mode).Perm(), rec.UID, rec.GID)
	if err != nil {
		return "", fmt.Errorf("haproxy: restore: %w", err)
	}
	if check != nil {
		if err := check(tmp); err != nil {
			os.Remove(tmp)
			return "", fmt.Errorf("haproxy: the original configuration %s fails the check, nothing restored: %w", rec.Path, err)
		}
	}
	if err := os.Rename(tmp, target); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("haproxy: restore: %w", err)
	}
	backupSyncDir(parent)
	return target, nil
}

// CheckConfig runs `haproxy -c -f path` (binary "" means "haproxy" from
// PATH). The error includes the first lines of HAProxy's output (without
// its version notices). A configuration HAProxy finds free of errors but
// without any listener (exit status 2) passes.
func CheckConfig(ctx context.Context, binary, path string) error {
	if binary == "" {
		binary = "haproxy"
	}
	cmd := exec.CommandContext(ctx, binary, "-c", "-f", path)
	out, err := cmd.CombinedOutput()
	if err == nil {
		return nil
	}
	// Exit status 2: "Configuration file has no error but will not start
	// (no listener)" — valid, as an original configuration may be.
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 2 && bytes.Contains(out, []byte("has no error")) {
		return nil
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	msg := checkConfigOutputHead(out, 10)
	if msg == "" {
		return fmt.Errorf("haproxy: %s -c -f %s: %w", binary, path, err)
	}
	return fmt.Errorf("haproxy: %s -c -f %s: %w:\n%s", binary, path, err, msg)
}

// checkConfigOutputHead returns the first n meaningful lines of haproxy -c
// output, leaving out its version notices.
func checkConfigOutputHead(out []byte, n int) string {
	var keep, all []string
	for _, l := range strings.Split(string(bytes.TrimSpace(out)), "\n") {
		l = strings.TrimRight(l, "\r ")
		if l == "" {
			continue
		}
		all = append(all, l)
		if !strings.Contains(l, "[NOTICE]") {
			keep = append(keep, l)
		}
	}
	if len(keep) == 0 {
		keep = all
	}
	if len(keep) > n {
		keep = append(keep[:n:n], fmt.Sprintf("(%d more lines)", len(keep)-n))
	}
	return strings.Join(keep, "\n")
}

func backupReadRecord(dir string) (backupRecord, error) {
	var rec backupRecord
	b, err := os.ReadFile(filepath.Join(dir, BackupRecordFile))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return rec, fmt.Errorf("haproxy: no backup of the original configuration in %s: %w", dir, err)
		}
		return rec, fmt.Errorf("haproxy: read backup record: %w", err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("haproxy: backup record %s: %w", filepath.Join(dir, BackupRecordFile), err)
	}
	if rec.Path == "" || !filepath.IsAbs(rec.Path) {
		return rec, fmt.Errorf("haproxy: backup record %s has no absolute path", filepath.Join(dir, BackupRecordFile))
	}
	return rec, nil
}

func backupWriteRecord(dir string, rec backupRecord) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	if err := backupWriteAtomic(filepath.Join(dir, BackupRecordFile), append(b, '\n'), 0o600, -1, -1); err != nil {
		return fmt.Errorf("haproxy: write backup record: %w", err)
	}
	return nil
}

// backupReadOriginal reads a regular file and its metadata from one open.
func backupReadOriginal(path string) ([]byte, fs.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s is not a regular file", path)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, nil, err
	}
	return data, info, nil
}

func backupFileOwner(info fs.FileInfo) (uid, gid int) {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return -1, -1
}

// backupWriteAtomic writes path through a temporary file in its directory
// and a rename.
func backupWriteAtomic(path string, data []byte, mode fs.FileMode, uid, gid int) error {
	dir := filepath.Dir(path)
	tmp, err := backupWriteTemp(dir, filepath.Base(path), data, mode, uid, gid)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	backupSyncDir(dir)
	return nil
}

// backupWriteTemp writes data to a new hidden file in dir with the given
// mode (and owner when uid/gid are known and permitted), synced to disk,
// and returns its path.
func backupWriteTemp(dir, base string, data []byte, mode fs.FileMode, uid, gid int) (string, error) {
	f, err := os.CreateTemp(dir, "."+base+".lumos-*")
	if err != nil {
		return "", err
	}
	name := f.Name()
	fail := func(err error) (string, error) {
		f.Close()
		os.Remove(name)
		return "", err
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if uid >= 0 && gid >= 0 {
		if err := f.Chown(uid, gid); err != nil && !errors.Is(err, fs.ErrPermission) {
			return fail(err)
		}
	}
	// After chown, which may clear set-id bits; and explicit, so the
	// umask does not apply.
	if err := f.Chmod(mode); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

func backupSyncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
