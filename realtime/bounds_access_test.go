package realtime

// Accessors of the bounds the hostile tests check, so that the same tests
// can be run against a client without them (with accessors that report
// what it has) to show that they fail there.

func qSize[T any](q *queue[T]) int { return q.size() }

func truncationOf(p *Presence) PresenceTruncation { return p.Truncation() }

func chanTruncation(ch *Channel) PresenceTruncation { return ch.Stats().PresenceTruncated }

func bytesOf(p *Presence) int { return p.Bytes() }

// heldOf returns the diffs held for the presence_state and their bytes.
func heldOf(p *Presence) (n, bytes int) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return len(p.pending), p.pendLen
}

func withPresenceLimits(cfg ChannelConfig, members int) ChannelConfig {
	cfg.PresenceLimits.MaxMembers = members
	return cfg
}

// reserveCount is the reserve of forced values of a queue of count.
func reserveCount(count int) int { return queueLimits{count: count}.reserve().count }

// noticeLimit is the most heartbeat notices that may wait.
func noticeLimit() int {
	return noticeBuffer + queueLimits{count: noticeBuffer, bytes: noticeBufferBytes}.reserve().count/2
}

// noticeLimitHard is the most notices that may wait (statuses).
func noticeLimitHard() int {
	return noticeBuffer + queueLimits{count: noticeBuffer, bytes: noticeBufferBytes}.reserve().count
}

func noticeDrops(s *Socket) uint64 { return s.Stats().NoticeDrops }
