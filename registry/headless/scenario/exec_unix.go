//go:build unix

package scenario

import (
	"os/exec"
	"syscall"
)

// setGroup starts the command in a process group of its own, so that
// stopping it stops what it started too.
func setGroup(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }

// signalGroup sends the command's process group SIGTERM, or SIGKILL.
func signalGroup(cmd *exec.Cmd, kill bool) {
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
}
