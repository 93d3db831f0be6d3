package realtime

import "time"

// notice is a socket-level notification for OnStatus / OnHeartbeat.
type notice struct {
	status    *StatusChange
	heartbeat *Heartbeat
}

func (s *Socket) notifyStatus(c StatusChange) {
	// The attempt is StatusChange.Attempt: the reconnect's number, none
	// for the first connection.
	switch {
	case c.Err != nil:
		s.log.Info("Socket "+c.Status.String(), logErr, c.Err, logAttempt, c.Attempt, logDelay, c.Delay)
	case c.Attempt > 0:
		s.log.Info("Socket "+c.Status.String(), logAttempt, c.Attempt)
	default:
		s.log.Info("Socket " + c.Status.String())
	}
	if s.notices != nil && s.opts.OnStatus != nil && !s.notices.push(notice{status: &c}, noticeCost, pushHard) {
		s.noticeDropped()
	}
}

func (s *Socket) notifyHeartbeat(h Heartbeat) {
	if s.notices != nil && s.opts.OnHeartbeat != nil && !s.notices.push(notice{heartbeat: &h}, noticeCost, pushSoft) {
		s.noticeDropped()
	}
}

// noticeDropped logs a notice dropped because OnStatus or OnHeartbeat
// does not return (at powers of two; counted in Stats.NoticeDrops).
func (s *Socket) noticeDropped() {
	if n := s.notices.dropped.Load(); n&(n-1) == 0 {
		s.log.Warn("OnStatus or OnHeartbeat too slow, dropping notices", logCount, n)
	}
}

func (s *Socket) deliverNotice(n notice) {
	switch {
	case n.status != nil && s.opts.OnStatus != nil:
		s.opts.OnStatus(*n.status)
	case n.heartbeat != nil && s.opts.OnHeartbeat != nil:
		s.opts.OnHeartbeat(*n.heartbeat)
	}
}

// setStatusLocked changes the status and returns the change to report
// once the lock is released.
func (s *Socket) setStatusLocked(st Status, err error, attempt int, delay time.Duration) StatusChange {
	c := StatusChange{Status: st, Prev: s.status, At: s.now(), Err: err, Attempt: attempt, Delay: delay}
	s.status = st
	return c
}
