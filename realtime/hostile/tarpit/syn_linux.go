package tarpit

import (
	"fmt"
	"net"
	"syscall"
	"time"
)

// synListener listens with a backlog of 0 and fills the accept queue
// with one connection that is never accepted: the kernel then drops
// every later SYN (tcp_abort_on_overflow must be 0, the default), so a
// client's connect hangs until it gives up.
func synListener() (addr string, closeFn func(), err error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", nil, err
	}
	closeFd := func() { syscall.Close(fd) }
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		closeFd()
		return "", nil, err
	}
	if err := syscall.Listen(fd, 0); err != nil {
		closeFd()
		return "", nil, err
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		closeFd()
		return "", nil, err
	}
	addr = fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	filler, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		closeFd()
		return "", nil, fmt.Errorf("filling the accept queue: %w", err)
	}
	// The queue is full when a connect no longer completes.
	probe, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err == nil {
		probe.Close()
		filler.Close()
		closeFd()
		return "", nil, fmt.Errorf("a connect to a full accept queue completed (tcp_abort_on_overflow or syncookies?)")
	}
	return addr, func() { filler.Close(); closeFd() }, nil
}
