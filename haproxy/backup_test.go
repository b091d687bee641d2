package haproxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// backupTestValid is an original configuration HAProxy accepts.
const backupTestValid = "global\n\tdaemon\n\ndefaults\n\tmode http\n\ttimeout connect 5s\n\ttimeout client 5s\n\ttimeout server 5s\n\n" +
	"frontend www\n\tbind 127.0.0.1:8080\n\tacl host_blog hdr(host) -i blog.example.org\n\tuse_backend blog if host_blog\n\n" +
	"backend blog\n\tserver b1 192.0.2.10:80 check\n"

// backupTestManaged stands for the configuration lumos writes later.
const backupTestManaged = "# managed by lumos\nglobal\n\tdaemon\n"

// backupCheck runs the real `haproxy -c -f`.
func backupCheck(t *testing.T) func(string) error {
	bin := haproxyBinary(t)
	return func(path string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return CheckConfig(ctx, bin, path)
	}
}

// backupWrite writes data with exactly mode (no umask).
func backupWrite(t *testing.T, path string, data []byte, mode fs.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// backupState is what a file is: its SHA-256 and mode, or "absent".
func backupState(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "absent"
	}
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return fi.Mode().String() + " sha256:" + hex.EncodeToString(sum[:])
}

// backupNoTemp fails if a temporary file is left in dir.
func backupNoTemp(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".lumos-") {
			t.Errorf("temporary file %s left in %s", e.Name(), dir)
		}
	}
}

func TestBackupRestoreByteForByte(t *testing.T) {
	cases := []struct {
		name  string
		data  []byte
		mode  fs.FileMode
		check func(t *testing.T) func(string) error
	}{
		{
			name:  "valid configuration checked by haproxy",
			data:  []byte(backupTestValid),
			mode:  0o640,
			check: backupCheck,
		},
		{
			// HAProxy itself refuses a last line without LF, so this one
			// is checked by a function that looks at the temporary copy.
			name: "no trailing newline, odd bytes, unusual mode",
			data: []byte("global\r\n\tdaemon   \t# tabs, CRLF\r\n\xff\xfe not UTF-8 \x00 NUL\n\n# no newline at the end"),
			mode: 0o604,
		},
		{
			name:  "empty file, read-only",
			data:  []byte{},
			mode:  0o400,
			check: nil,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			etc := t.TempDir()
			path := filepath.Join(etc, "haproxy.cfg")
			dir := filepath.Join(t.TempDir(), "backup")
			backupWrite(t, path, c.data, c.mode)
			orig := backupState(t, path)

			got, err := Backup(path, dir)
			if err != nil {
				t.Fatalf("Backup: %v", err)
			}
			if want := filepath.Join(dir, BackupConfigFile); got != want {
				t.Fatalf("Backup returned %q, want %q", got, want)
			}
			if s := backupState(t, got); s != orig {
				t.Fatalf("backup copy is %q, original %q", s, orig)
			}
			if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
				t.Fatalf("backup dir: %v, %v; want mode 0700", fi, err)
			}

			// lumos takes over the file.
			backupWrite(t, path, []byte(backupTestManaged), 0o644)

			var checked string
			check := func(p string) error {
				checked = p
				if filepath.Dir(p) != etc {
					t.Errorf("check got %s, want a file in %s", p, etc)
				}
				b, err := os.ReadFile(p)
				if err != nil || !bytes.Equal(b, c.data) {
					t.Errorf("check got different bytes: %v", err)
				}
				if c.check != nil {
					return c.check(t)(p)
				}
				return nil
			}
			restored, err := Restore(dir, check)
			if err != nil {
				t.Fatalf("Restore: %v", err)
			}
			if restored != path {
				t.Fatalf("Restore returned %q, want %q", restored, path)
			}
			if checked == "" || checked == path {
				t.Fatalf("check was called with %q, want a temporary copy", checked)
			}
			if s := backupState(t, path); s != orig {
				t.Fatalf("restored file is %q, original %q", s, orig)
			}
			backupNoTemp(t, etc)
		})
	}
}

func TestBackupKeepsFirstBackup(t *testing.T) {
	etc := t.TempDir()
	path := filepath.Join(etc, "haproxy.cfg")
	dir := filepath.Join(t.TempDir(), "backup")
	backupWrite(t, path, []byte(backupTestValid), 0o644)
	first, err := Backup(path, dir)
	if err != nil {
		t.Fatal(err)
	}
	orig := backupState(t, first)
	record, err := os.ReadFile(filepath.Join(dir, BackupRecordFile))
	if err != nil {
		t.Fatal(err)
	}

	// A later join after lumos wrote its configuration.
	backupWrite(t, path, []byte(backupTestManaged), 0o600)
	second, err := Backup(path, dir)
	if err != nil {
		t.Fatalf("second Backup: %v", err)
	}
	if second != first || backupState(t, second) != orig {
		t.Fatalf("second Backup overwrote the first: %q %q", second, backupState(t, second))
	}
	if again, _ := os.ReadFile(filepath.Join(dir, BackupRecordFile)); !bytes.Equal(again, record) {
		t.Fatalf("second Backup rewrote the record:\n%s\n%s", record, again)
	}

	// Relative and absolute spellings of the same file are one original.
	wd, _ := os.Getwd()
	if rel, err := filepath.Rel(wd, path); err == nil {
		if got, err := Backup(rel, dir); err != nil || got != first {
			t.Fatalf("Backup(relative) = %q, %v", got, err)
		}
	}
	// Another file cannot share the directory.
	other := filepath.Join(etc, "other.cfg")
	backupWrite(t, other, []byte("x\n"), 0o644)
	if _, err := Backup(other, dir); err == nil || !strings.Contains(err.Error(), "already holds a backup") {
		t.Fatalf("Backup of another file into the same dir: %v", err)
	}

	if _, err := Restore(dir, backupCheck(t)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if s := backupState(t, path); s != orig {
		t.Fatalf("restored %q, want the first original %q", s, orig)
	}
}

func TestRestoreRefusesFailingConfig(t *testing.T) {
	cases := []struct {
		name, data, wantErr string
	}{
		{"unknown keyword", "global\n\tdaemon\n\nfrontend f\n\tbind 127.0.0.1:8080\n\tno_such_keyword on\n", "unknown keyword 'no_such_keyword'"},
		{"missing backend", "defaults\n\tmode http\n\ttimeout connect 5s\n\ttimeout client 5s\n\ttimeout server 5s\n\nfrontend f\n\tbind 127.0.0.1:8080\n\tdefault_backend nowhere\n", "nowhere"},
		{"no trailing newline", strings.TrimSuffix(backupTestValid, "\n"), "Missing LF on last line"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			etc := t.TempDir()
			path := filepath.Join(etc, "haproxy.cfg")
			dir := filepath.Join(t.TempDir(), "backup")
			backupWrite(t, path, []byte(c.data), 0o640)
			if _, err := Backup(path, dir); err != nil {
				t.Fatal(err)
			}
			backupWrite(t, path, []byte(backupTestManaged), 0o644)
			managed := backupState(t, path)

			restored, err := Restore(dir, backupCheck(t))
			if err == nil {
				t.Fatalf("Restore of a configuration haproxy refuses succeeded (%s)", restored)
			}
			if !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), "nothing restored") {
				t.Fatalf("Restore error %q, want it to say %q and that nothing was restored", err, c.wantErr)
			}
			if strings.Contains(err.Error(), "[NOTICE]") {
				t.Errorf("error carries haproxy's notices: %v", err)
			}
			if restored != "" {
				t.Errorf("Restore returned path %q with an error", restored)
			}
			if s := backupState(t, path); s != managed {
				t.Fatalf("Restore changed the file after a failed check: %q, was %q", s, managed)
			}
			backupNoTemp(t, etc)
		})
	}
}

func TestRestoreAbsentOriginal(t *testing.T) {
	etc := t.TempDir()
	path := filepath.Join(etc, "haproxy.cfg")
	dir := filepath.Join(t.TempDir(), "backup")
	got, err := Backup(path, dir)
	if err != nil || got != "" {
		t.Fatalf("Backup of a missing file = %q, %v; want \"\", nil", got, err)
	}
	rec, err := os.ReadFile(filepath.Join(dir, BackupRecordFile))
	if err != nil || !strings.Contains(string(rec), `"absent": true`) {
		t.Fatalf("record %s, %v; want absent", rec, err)
	}
	if _, err := os.Stat(filepath.Join(dir, BackupConfigFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a copy exists for a missing original: %v", err)
	}

	// Nothing there: Restore creates nothing.
	called := false
	restored, err := Restore(dir, func(string) error { called = true; return nil })
	if err != nil || restored != "" || called {
		t.Fatalf("Restore = %q, %v (check called %v); want \"\", nil, not called", restored, err, called)
	}
	if s := backupState(t, path); s != "absent" {
		t.Fatalf("Restore created %s: %s", path, s)
	}

	// A file lumos wrote meanwhile: Restore removes nothing, and a later
	// Backup keeps the "absent" record.
	backupWrite(t, path, []byte(backupTestManaged), 0o644)
	managed := backupState(t, path)
	if got, err := Backup(path, dir); err != nil || got != "" {
		t.Fatalf("second Backup = %q, %v; want the absent record kept", got, err)
	}
	if restored, err := Restore(dir, nil); err != nil || restored != "" {
		t.Fatalf("Restore = %q, %v", restored, err)
	}
	if s := backupState(t, path); s != managed {
		t.Fatalf("Restore touched %s: %s", path, s)
	}
}

func TestRestoreWithoutBackup(t *testing.T) {
	_, err := Restore(t.TempDir(), nil)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Restore without a backup: %v, want a not-exist error", err)
	}
}

func TestRestoreRefusesCorruptBackup(t *testing.T) {
	etc := t.TempDir()
	path := filepath.Join(etc, "haproxy.cfg")
	dir := filepath.Join(t.TempDir(), "backup")
	backupWrite(t, path, []byte(backupTestValid), 0o644)
	if _, err := Backup(path, dir); err != nil {
		t.Fatal(err)
	}
	backupWrite(t, filepath.Join(dir, BackupConfigFile), []byte(strings.Replace(backupTestValid, "192.0.2.10", "192.0.2.66", 1)), 0o644)
	backupWrite(t, path, []byte(backupTestManaged), 0o644)
	managed := backupState(t, path)
	_, err := Restore(dir, nil)
	if err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("Restore of a modified backup: %v", err)
	}
	if s := backupState(t, path); s != managed {
		t.Fatalf("Restore changed the file: %s", s)
	}
}

func TestRestoreKeepsSymlink(t *testing.T) {
	etc := t.TempDir()
	target := filepath.Join(etc, "haproxy-real.cfg")
	link := filepath.Join(etc, "haproxy.cfg")
	dir := filepath.Join(t.TempDir(), "backup")
	backupWrite(t, target, []byte(backupTestValid), 0o640)
	if err := os.Symlink("haproxy-real.cfg", link); err != nil {
		t.Fatal(err)
	}
	orig := backupState(t, target)
	if _, err := Backup(link, dir); err != nil {
		t.Fatal(err)
	}
	backupWrite(t, target, []byte(backupTestManaged), 0o644)
	restored, err := Restore(dir, backupCheck(t))
	if err != nil {
		t.Fatal(err)
	}
	if restored != target {
		t.Errorf("restored %s, want the link's target %s", restored, target)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("%s is no longer a symbolic link: %v", link, err)
	}
	if s := backupState(t, target); s != orig {
		t.Fatalf("restored %q, want %q", s, orig)
	}
}

func TestRestoreOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Log("not root: ownership is restored only when permitted; checking mode and bytes only")
	}
	etc := t.TempDir()
	path := filepath.Join(etc, "haproxy.cfg")
	dir := filepath.Join(t.TempDir(), "backup")
	backupWrite(t, path, []byte(backupTestValid), 0o640)
	uid, gid := os.Geteuid(), os.Getegid()
	if os.Geteuid() == 0 {
		uid, gid = 4242, 4343
		if err := os.Chown(path, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Backup(path, dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(dir, nil); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Uid) != uid || int(st.Gid) != gid || fi.Mode().Perm() != 0o640 {
		t.Fatalf("restored owner %d:%d mode %v, want %d:%d 0640", st.Uid, st.Gid, fi.Mode(), uid, gid)
	}
}

func TestCheckConfig(t *testing.T) {
	bin := haproxyBinary(t)
	dir := t.TempDir()
	ctx := context.Background()

	good := filepath.Join(dir, "good.cfg")
	backupWrite(t, good, []byte(backupTestValid), 0o644)
	if err := CheckConfig(ctx, bin, good); err != nil {
		t.Fatalf("CheckConfig(valid): %v", err)
	}
	// No listener: HAProxy says "no error" with exit status 2.
	quiet := filepath.Join(dir, "quiet.cfg")
	backupWrite(t, quiet, []byte("global\n\tdaemon\n"), 0o644)
	if err := CheckConfig(ctx, bin, quiet); err != nil {
		t.Fatalf("CheckConfig(no listener): %v", err)
	}

	bad := filepath.Join(dir, "bad.cfg")
	backupWrite(t, bad, []byte("global\n\tdaemon\nfrontend f\n\tbind 127.0.0.1:8080\n\tbogus_directive 1\n"), 0o644)
	err := CheckConfig(ctx, bin, bad)
	if err == nil || !strings.Contains(err.Error(), "bogus_directive") || !strings.Contains(err.Error(), "[ALERT]") {
		t.Fatalf("CheckConfig(invalid) = %v, want haproxy's alert", err)
	}

	if err := CheckConfig(ctx, filepath.Join(dir, "no-haproxy"), good); err == nil {
		t.Fatal("CheckConfig with a missing binary succeeded")
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := CheckConfig(canceled, bin, good); !errors.Is(err, context.Canceled) {
		t.Fatalf("CheckConfig(canceled) = %v", err)
	}
}

func TestCheckConfigOutputHead(t *testing.T) {
	out := "[NOTICE]   (1) : haproxy version is 2.6.12\n[NOTICE]   (1) : path to executable is /usr/sbin/haproxy\n" +
		strings.Repeat("[ALERT]    (1) : config : line\n", 12)
	got := checkConfigOutputHead([]byte(out), 10)
	if strings.Contains(got, "NOTICE") || strings.Count(got, "[ALERT]") != 10 || !strings.HasSuffix(got, "(2 more lines)") {
		t.Fatalf("head:\n%s", got)
	}
	if got := checkConfigOutputHead([]byte("[NOTICE] only\n"), 10); got != "[NOTICE] only" {
		t.Fatalf("head of notices only: %q", got)
	}
}
