package haproxy

import (
	"context"
	"path/filepath"
	"time"
)

// StopServing stops the HAProxy master a Manager left serving in dir (a
// shield whose lumos process is stopped), as `lumos uninstall` needs: a
// soft stop first, then SIGTERM and SIGKILL to its process group after
// grace. It reports whether one was running. A process that is not an
// HAProxy master of dir is never signalled, and a process group is only
// signalled when the master leads it.
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
	p := &masterProc{pid: pid, pgid: masterGroup(pid)}
	if err := p.terminate(ctx, grace); err != nil {
		return true, err
	}
	return true, nil
}
