package haproxy

import (
	"context"
	"path/filepath"
	"syscall"
	"time"
)

// StopServing stops the HAProxy master a Manager left serving in dir (a
// shield whose lumos process is stopped), as `lumos uninstall` needs: a
// soft stop first, then SIGTERM and SIGKILL to its process group after
// grace. It reports whether one was running. A process that is not an
// HAProxy master of dir is never signalled.
func StopServing(ctx context.Context, dir string, grace time.Duration) (bool, error) {
	m := &Manager{p: mgrPaths{
		dir:        dir,
		masterSock: filepath.Join(dir, MasterSocket),
		pidFile:    filepath.Join(dir, PIDFile),
	}}
	pid := readPIDFile(m.p.pidFile)
	if pid <= 0 || !m.isOurMaster(pid) {
		return false, nil
	}
	pgid, err := syscall.Getpgid(pid)
	if err != nil {
		return false, nil // gone already
	}
	_ = syscall.Kill(pid, syscall.SIGUSR1)
	deadline := time.Now().Add(grace)
	for masterAlive(pid) && time.Now().Before(deadline) {
		if sleepCtx(ctx, 50*time.Millisecond) != nil {
			break
		}
	}
	if masterAlive(pid) {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		for i := 0; i < 40 && masterAlive(pid); i++ {
			time.Sleep(50 * time.Millisecond)
		}
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	return true, nil
}

func masterAlive(pid int) bool {
	return syscall.Kill(pid, 0) == nil && !isZombie(pid)
}
