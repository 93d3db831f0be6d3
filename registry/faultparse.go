package registry

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ErrFaultUsage marks a fault command with the wrong number of
// arguments; the error says the usage (FaultKind.Usage).
var ErrFaultUsage = errors.New("usage")

// FaultParseError is an error of ParseFault: the command (the fault's
// name as typed), the argument at fault ("" when the command as a whole
// is wrong) and the reason.
type FaultParseError struct {
	Command, Arg string
	Err          error
}

func (e *FaultParseError) Error() string {
	s := e.Command
	if e.Arg != "" {
		s += " " + e.Arg
	}
	if s == "" {
		return e.Err.Error()
	}
	return s + ": " + e.Err.Error()
}

func (e *FaultParseError) Unwrap() error { return e.Err }

// ParseFault parses the words of a command-line fault, as the TUI's ":"
// commands take them:
//
//	drop
//	freeze <duration>           a positive duration: 10s, 500ms, or seconds (2.5)
//	latency <duration>          0 removes the added latency
//	fail-connects <n>           0 cancels
//	expire-token
//	channel-error <name>
//	kick <name> [error|close]   error by default
//	reject-joins <n|duration>   the next n joins, or joins for a while
//	drop-all
//	restart [duration]          the downtime (none by default)
//
// and the app faults, on the app's traffic through rtm's proxy, after
// "app" and an optional socket ID (none or "all": every app socket):
//
//	app [N] drop
//	app [N] close <code> [reason...]
//	app [N] freeze <duration>
//	app latency <duration> [jitter]
//	app fail-connects <n>
//	app [N] expire-token
//	app [N] kick <topic> [error|close]
//	app reject-joins <topic> <n> [reason...]
//	app heal
//	app drop-messages <topic> <n>
//	app duplicate-messages <topic> <n>
//
// Channel names are read with ParseName. Errors are *FaultParseError
// values; a wrong number of arguments wraps ErrFaultUsage. Fault.String
// writes a parsed fault back in this form.
func ParseFault(args []string) (Fault, error) {
	return ParseFaultNames(args, ParseName)
}

// ParseFaultNames is ParseFault with another reader of channel names
// (one that completes a short name against the channels joined, say).
func ParseFaultNames(args []string, name func(string) (Name, error)) (Fault, error) {
	if len(args) == 0 {
		return Fault{}, &FaultParseError{Err: fmt.Errorf("no fault: want one of %s", strings.Join(FaultKindNames(), ", "))}
	}
	if args[0] == "app" {
		return parseAppFault(args[1:])
	}
	cmd, args := args[0], args[1:]
	kind, err := ParseFaultKind(cmd)
	if err != nil {
		return Fault{}, &FaultParseError{Err: err}
	}
	f := Fault{Kind: kind}
	fail := func(arg string, err error) (Fault, error) {
		return Fault{}, &FaultParseError{Command: cmd, Arg: arg, Err: err}
	}
	if kind.OnlyApp() {
		return fail("", fmt.Errorf("fault %s acts only on an app's sockets behind rtm's proxy: %s", kind, kind.AppUsage()))
	}
	if lo, hi := kind.arity(); len(args) < lo || len(args) > hi {
		return fail("", fmt.Errorf("%w: %s", ErrFaultUsage, kind.Usage()))
	}
	switch kind {
	case FaultFreeze, FaultLatency, FaultRestart:
		if len(args) == 0 {
			break
		}
		d, err := ParseDuration(args[0])
		if err != nil {
			return fail(args[0], err)
		}
		switch kind {
		case FaultFreeze:
			if d <= 0 {
				return fail(args[0], errors.New("freeze needs a positive duration"))
			}
			f.Duration = d
		case FaultLatency:
			f.Delay = d
		default:
			f.Duration = d
		}
	case FaultFailConnects:
		n, err := strconv.Atoi(args[0])
		if err != nil || n < 0 {
			return fail(args[0], fmt.Errorf("%q is not a count (0 or more)", args[0]))
		}
		f.Count = n
	case FaultChannelError, FaultKick:
		n, err := name(args[0])
		if err != nil {
			return fail(args[0], err)
		}
		f.Channel = n
		if kind == FaultKick {
			f.Mode = KickError
			if len(args) == 2 {
				if f.Mode, err = ParseKickMode(args[1]); err != nil {
					return fail(args[1], err)
				}
			}
		}
	case FaultRejectJoins:
		if n, err := strconv.Atoi(args[0]); err == nil && n >= 0 {
			f.Count = n
		} else if d, err := time.ParseDuration(args[0]); err == nil && d >= 0 {
			f.Duration = d
		} else {
			return fail(args[0], fmt.Errorf("%q is neither a count nor a duration (3, 10s)", args[0]))
		}
	}
	if err := f.Validate(); err != nil {
		return fail("", err)
	}
	return f, nil
}

// arity returns how many command-line arguments the fault takes, as
// its Args say: each <required> and each [optional] word.
func (k FaultKind) arity() (lo, hi int) {
	for _, w := range strings.Fields(k.Args()) {
		hi++
		if strings.HasPrefix(w, "<") {
			lo++
		}
	}
	return lo, hi
}

// ParseDuration reads a duration as command lines write it: "10s",
// "500ms", or a bare number of seconds ("2.5"); never negative.
func ParseDuration(s string) (time.Duration, error) {
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("duration %q is negative", s)
		}
		if math.IsNaN(n) || n > float64(math.MaxInt64)/float64(time.Second) {
			return 0, fmt.Errorf("%q is not a duration (10s, 500ms, 2m)", s)
		}
		return time.Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (10s, 500ms, 2m)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("duration %q is negative", s)
	}
	return d, nil
}

// parseAppFault parses the words after "app".
func parseAppFault(args []string) (Fault, error) {
	f := Fault{App: true}
	if len(args) > 0 {
		if args[0] == "all" {
			args = args[1:]
		} else if n, err := strconv.ParseUint(args[0], 10, 64); err == nil {
			f.Socket = n
			args = args[1:]
		}
	}
	if len(args) == 0 {
		return Fault{}, &FaultParseError{Command: "app", Err: fmt.Errorf("%w: app [N|all] <fault> (app faults: %s)", ErrFaultUsage, strings.Join(appFaultNames(), ", "))}
	}
	cmd, args := args[0], args[1:]
	kind, err := ParseFaultKind(cmd)
	if err != nil {
		return Fault{}, &FaultParseError{Command: "app", Err: err}
	}
	f.Kind = kind
	fail := func(arg string, err error) (Fault, error) {
		return Fault{}, &FaultParseError{Command: "app " + cmd, Arg: arg, Err: err}
	}
	if !kind.App() {
		return fail("", fmt.Errorf("fault %s does not act on an app (app faults: %s)", kind, strings.Join(appFaultNames(), ", ")))
	}
	words := strings.Fields(kind.AppArgs())
	lo, variadic := 0, false
	for _, w := range words {
		if strings.HasPrefix(w, "<") {
			lo++
		}
		variadic = variadic || strings.HasSuffix(w, "...]")
	}
	if len(args) < lo || (!variadic && len(args) > len(words)) {
		return fail("", fmt.Errorf("%w: %s", ErrFaultUsage, kind.AppUsage()))
	}
	count := func(s string) (int, error) {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q is not a count (0 or more)", s)
		}
		return n, nil
	}
	switch kind {
	case FaultClose:
		if f.Code, err = strconv.Atoi(args[0]); err != nil {
			return fail(args[0], fmt.Errorf("%q is not a close code", args[0]))
		}
		f.Reason = strings.Join(args[1:], " ")
	case FaultFreeze, FaultLatency:
		d, err := ParseDuration(args[0])
		if err != nil {
			return fail(args[0], err)
		}
		if kind == FaultFreeze {
			f.Duration = d
		} else {
			f.Delay = d
			if len(args) == 2 {
				if f.Jitter, err = ParseDuration(args[1]); err != nil {
					return fail(args[1], err)
				}
			}
		}
	case FaultFailConnects:
		if f.Count, err = count(args[0]); err != nil {
			return fail(args[0], err)
		}
	case FaultKick:
		f.Topic, f.Mode = AppTopic(args[0]), KickError
		if len(args) == 2 {
			if f.Mode, err = ParseKickMode(args[1]); err != nil {
				return fail(args[1], err)
			}
		}
	case FaultRejectJoins, FaultDropMessages, FaultDuplicateMessages:
		f.Topic = AppTopic(args[0])
		if f.Count, err = count(args[1]); err != nil {
			return fail(args[1], err)
		}
		f.Reason = strings.Join(args[2:], " ")
	}
	if err := f.Validate(); err != nil {
		return fail("", err)
	}
	return f, nil
}

// AppTopic returns an app channel's topic as the wire writes it:
// "room1" is "realtime:room1".
func AppTopic(s string) string {
	if s == "" || strings.HasPrefix(s, "realtime:") {
		return s
	}
	return "realtime:" + s
}
