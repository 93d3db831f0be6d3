//go:build !unix

package scenario

import "os/exec"

// setGroup does nothing where there are no process groups.
func setGroup(*exec.Cmd) {}

// signalGroup kills the command (no process groups, no SIGTERM here).
func signalGroup(cmd *exec.Cmd, _ bool) { _ = cmd.Process.Kill() }
