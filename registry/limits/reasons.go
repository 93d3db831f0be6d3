package limits

import "strings"

// reasons map the server's limit errors to the limit they report,
// matched case-insensitively as substrings of the error text, first
// match wins. The texts are Supabase Realtime's (v2.129.8) as rtm's
// embedded server repeats them: join error reasons ("Code: message"),
// channel shutdown system messages, HTTP 429 answers at connect and to
// REST broadcasts, the broadcast ack "payload_size_exceeded", and the
// "errors" of a postgres change too large to deliver whole.
var reasons = [...]struct {
	text string
	name Name
}{
	{"ChannelRateLimitReached", ChannelsPerConnection},
	{"Too many channels", ChannelsPerConnection},
	{"too_many_channels", ChannelsPerConnection},
	{"ClientJoinRateLimitReached", JoinsPerSecond},
	{"Too many joins per second", JoinsPerSecond},
	{"too_many_joins", JoinsPerSecond},
	{"ConnectionRateLimitReached", ConcurrentClients},
	{"Too many connected users", ConcurrentClients},
	{"too_many_connections", ConcurrentClients},
	{"Too many presence messages per second", PresenceEventsPerSecond},
	{"PresenceRateLimitReached", PresenceEventsPerSecond},
	{"Client presence rate limit exceeded", PresenceEventsPerSecond},
	{"Too many messages per second", MessagesPerSecond},
	{"Too many messages to broadcast", MessagesPerSecond},
	{"You have exceeded your rate limit", MessagesPerSecond},
	{"tenant_events", MessagesPerSecond},
	{"Error 413: Payload Too Large", PostgresChangePayload},
	{"payload_size_exceeded", PayloadSize},
	{"Track message size exceeded", PayloadSize},
	{"Payload too large", PayloadSize},
}

// MatchReason returns the limit a server error reports, from its text
// (a join error's reason, a system message, an HTTP answer, as the
// client words it: "CLOSED: server closed the channel: Too many
// messages per second"), and the server's reason in it: the text from
// the reason on, up to a closing bracket or quote or the line's end
// ("Too many messages per second").
func MatchReason(text string) (Name, string, bool) {
	if len(text) > 4096 {
		text = text[:4096] // the reasons are short
	}
	l := asciiLower(text)
	for _, r := range reasons {
		if i := strings.Index(l, asciiLower(r.text)); i >= 0 {
			reason := text[i:]
			if j := strings.IndexAny(reason, ")]}\"\r\n"); j >= len(r.text) {
				reason = reason[:j]
			}
			return r.name, reason, true
		}
	}
	return "", "", false
}

// asciiLower lowers ASCII letters only, so that indexes stay those of s.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// codeOf returns the "Code" of a "Code: message" reason, or "".
func codeOf(reason string) string {
	c, _, ok := strings.Cut(reason, ": ")
	if !ok || c == "" || len(c) > 64 || strings.ContainsAny(c, " \t\r\n") {
		return ""
	}
	return c
}
