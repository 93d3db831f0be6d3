package registry

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// AppControl is the fault control of rtm's proxy, through which an app's
// Realtime traffic is relayed (*proxy.Proxy implements it; main wires it
// as Options.Apps). Socket IDs are the proxy's (0: every socket).
type AppControl interface {
	Drop(id uint64) error
	CloseSocket(id uint64, code int, reason string) error
	Freeze(id uint64, d time.Duration) error
	SetLatency(d, jitter time.Duration)
	FailConnects(n int)
	RejectJoins(topic string, n int, reason string)
	Kick(id uint64, topic string, close bool) error
	ExpireToken(id uint64) error
	DropMessages(topic string, n int)
	DuplicateMessages(topic string, n int)
}

// ApplyAppFault applies an app fault (f.App) to c, after Fault.Validate.
// Faults.Apply calls it for app faults with Options.Apps; a scenario
// calls it with its own proxy. Heal thaws every app socket, removes the
// latency and stops refusing upgrades (armed join rejections and message
// drops or duplicates stay: re-arm them with a count of 0).
func ApplyAppFault(ctx context.Context, c AppControl, f Fault) error {
	if !f.App {
		return fmt.Errorf("registry: fault %s is not an app fault", f)
	}
	if err := f.Validate(); err != nil {
		return err
	}
	if c == nil {
		return fmt.Errorf("registry: app fault %s: %w: app faults need rtm's proxy (not --no-proxy)", f, ErrUnsupported)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	switch f.Kind {
	case FaultDrop:
		return c.Drop(f.Socket)
	case FaultClose:
		return c.CloseSocket(f.Socket, f.Code, f.Reason)
	case FaultFreeze:
		return c.Freeze(f.Socket, f.Duration)
	case FaultLatency:
		c.SetLatency(f.Delay, f.Jitter)
	case FaultFailConnects:
		c.FailConnects(f.Count)
	case FaultExpireToken:
		return c.ExpireToken(f.Socket)
	case FaultKick:
		return c.Kick(f.Socket, f.Topic, f.mode() == KickClose)
	case FaultRejectJoins:
		c.RejectJoins(f.Topic, f.Count, f.Reason)
	case FaultHeal:
		// Thawing when no app socket is open is no error.
		_ = c.Freeze(0, 0)
		c.SetLatency(0, 0)
		c.FailConnects(0)
	case FaultDropMessages:
		c.DropMessages(f.Topic, f.Count)
	case FaultDuplicateMessages:
		c.DuplicateMessages(f.Topic, f.Count)
	default:
		return fmt.Errorf("registry: fault %s does not act on an app", f.Kind)
	}
	return nil
}

// validCloseCode reports whether code may be sent in a close frame (RFC
// 6455 §7.4: 1000, 1001, 1008, 1011-1014, 3000-4999; 1002, 1003, 1007,
// 1009 and 1010 too, as errors the app may want to see).
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014, code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// appString writes an app fault as ParseFault reads it: "app [N] kind
// args...".
func (f Fault) appString() string {
	w := []string{"app"}
	if f.Socket != 0 {
		w = append(w, strconv.FormatUint(f.Socket, 10))
	}
	w = append(w, f.Kind.String())
	switch f.Kind {
	case FaultClose:
		w = append(w, strconv.Itoa(f.Code))
		if f.Reason != "" {
			w = append(w, f.Reason)
		}
	case FaultFreeze:
		w = append(w, f.Duration.String())
	case FaultLatency:
		w = append(w, f.Delay.String())
		if f.Jitter > 0 {
			w = append(w, f.Jitter.String())
		}
	case FaultFailConnects:
		w = append(w, strconv.Itoa(f.Count))
	case FaultKick:
		w = append(w, f.Topic)
		if f.Mode == KickClose {
			w = append(w, f.Mode.String())
		}
	case FaultRejectJoins:
		w = append(w, f.Topic, strconv.Itoa(f.Count))
		if f.Reason != "" {
			w = append(w, f.Reason)
		}
	case FaultDropMessages, FaultDuplicateMessages:
		w = append(w, f.Topic, strconv.Itoa(f.Count))
	}
	return strings.Join(w, " ")
}

// appSummary describes an app fault once applied.
func (f Fault) appSummary() string {
	who := "every app socket"
	if f.Socket != 0 {
		who = "app socket " + strconv.FormatUint(f.Socket, 10)
	}
	switch f.Kind {
	case FaultDrop:
		return "dropped " + who
	case FaultClose:
		return fmt.Sprintf("closed %s (%d %s)", who, f.Code, f.Reason)
	case FaultFreeze:
		return fmt.Sprintf("froze %s for %s", who, f.Duration)
	case FaultLatency:
		if f.Delay == 0 {
			return "removed the latency added to the app"
		}
		if f.Jitter > 0 {
			return fmt.Sprintf("added %s (+ up to %s) latency each way to the app", FormatDuration(f.Delay), FormatDuration(f.Jitter))
		}
		return fmt.Sprintf("added %s latency each way to the app", FormatDuration(f.Delay))
	case FaultFailConnects:
		return fmt.Sprintf("the app's next %d connects will be refused", f.Count)
	case FaultExpireToken:
		return "expired the token of " + who
	case FaultKick:
		return fmt.Sprintf("kicked the app's %s (%s)", f.Topic, f.mode())
	case FaultRejectJoins:
		return fmt.Sprintf("the app's next %d joins of %s will be rejected", f.Count, f.Topic)
	case FaultHeal:
		return "cleared the app's freeze, latency and refused connects"
	case FaultDropMessages:
		return fmt.Sprintf("the next %d messages to the app on %s will be dropped", f.Count, f.Topic)
	case FaultDuplicateMessages:
		return fmt.Sprintf("the next %d messages to the app on %s will be sent twice", f.Count, f.Topic)
	}
	return f.appString()
}
