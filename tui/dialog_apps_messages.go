package tui

import (
	"fmt"
	"strings"

	"rtm/registry/apps"
	"rtm/theme"
)

// The Apps view's messages: the selected channel's last messages each
// way, those the app sent by the REST broadcast API among them (marked
// "via REST" with the upstream's HTTP status), and the REST broadcasts
// that no open socket of the app took (a server-side sender, a browser
// that sends no x-client-info), which the model keeps on the request.
// REST messages count in a channel's MSGS but not in the socket's
// frames, and a topic the app only sent to by REST (a channel the model
// added without a status) is not counted as one of the socket's
// channels.

// restOnly is the status shown for a topic the app only sent to by
// REST on that socket.
const restOnly = "REST only (not joined)"

// maxRESTRows is the most REST broadcasts of no socket the view lists
// (the newest).
const maxRESTRows = 3

// channelsHeading counts a socket's channels: the topics it joined,
// and apart those it only sent to by REST.
func channelsHeading(s apps.Socket) string {
	joined := 0
	for _, c := range s.Channels {
		if c.Status != "" {
			joined++
		}
	}
	h := fmt.Sprintf("CHANNELS of #%d  %d", s.ID, joined)
	if rest := len(s.Channels) - joined; rest > 0 {
		h += fmt.Sprintf("  (+%d topic(s) sent to by REST only)", rest)
	}
	return h
}

// messagesHeading names the selected channel's messages and how many
// are kept of how many seen.
func messagesHeading(c apps.Channel) string {
	h := fmt.Sprintf("MESSAGES of %s  %s", sanitize(c.Topic), fmtCount(c.MessagesFromApp+c.MessagesToApp))
	if kept := uint64(len(c.Messages)); kept < c.MessagesFromApp+c.MessagesToApp {
		h += fmt.Sprintf(" (the last %d kept)", kept)
	}
	return h
}

// messageRows renders the newest n of msgs (oldest first, as kept).
func messageRows(st *theme.Styles, msgs []apps.Message, n, inner int) []string {
	if len(msgs) == 0 {
		return []string{st.Muted.Render("  none yet")}
	}
	var out []string
	for _, mm := range msgs[max(0, len(msgs)-n):] {
		p := st.Text
		if mm.Via == apps.ViaREST && mm.HTTPStatus >= 300 {
			p = st.Error
		}
		out = append(out, p.Render(truncText("  "+messageLine(mm), inner)))
	}
	return out
}

// messageLine is one message: time, direction, event, how it came (a
// REST broadcast's status), payload.
func messageLine(mm apps.Message) string {
	dir := "→app"
	if mm.Dir == "app->upstream" {
		dir = "app→"
	}
	parts := []string{mm.Time.Format("15:04:05.000"), dir, sanitize(mm.Event)}
	if mm.UserEvent != "" {
		parts = append(parts, sanitize(mm.UserEvent))
	}
	if mm.Via == apps.ViaREST {
		parts = append(parts, fmt.Sprintf("via REST %d", mm.HTTPStatus))
	}
	payload := sanitize(mm.Payload)
	if mm.Clipped {
		payload += " (clipped)"
	}
	return strings.Join(parts, " ") + "  " + payload
}

// restRows lists the newest REST broadcasts no open socket of the app
// took (none: no rows).
func restRows(st *theme.Styles, snap apps.Snapshot, inner int) []string {
	var lone []apps.RESTRequest
	for _, r := range snap.REST {
		if r.Socket == 0 {
			lone = append(lone, r)
		}
	}
	if len(lone) == 0 {
		return nil
	}
	out := []string{"", st.Table.Header.Render(truncText(fmt.Sprintf("REST BROADCASTS of no app socket  %d (of %s REST requests)",
		len(lone), fmtCount(snap.Stats.RESTRequests)), inner))}
	for _, r := range lone[max(0, len(lone)-maxRESTRows):] {
		p := st.Text
		if r.Status >= 300 || !r.Decoded {
			p = st.Error
		}
		out = append(out, p.Render(truncText("  "+restLine(r), inner)))
	}
	return out
}

// restLine is one REST broadcast request: time, status, path, who sent
// it, and its first message (or why its body was not decoded).
func restLine(r apps.RESTRequest) string {
	parts := []string{r.Time.Format("15:04:05.000"), fmt.Sprintf("%d %s", r.Status, sanitize(r.Path))}
	who := strings.TrimSpace(r.Token.Role + " " + r.Token.Subject)
	if who == "" {
		who = "no token"
	}
	parts = append(parts, sanitize(who))
	if r.ClientInfo != "" {
		parts = append(parts, sanitize(r.ClientInfo))
	}
	switch {
	case r.Clipped:
		parts = append(parts, "not decoded: over the proxy's copy bound")
	case !r.Decoded:
		parts = append(parts, "not decoded: "+sanitize(r.Error))
	default:
		parts = append(parts, fmt.Sprintf("%d message(s)", r.MessageCount))
	}
	line := strings.Join(parts, " · ")
	if len(r.Messages) > 0 {
		mm := r.Messages[0]
		line += "  " + sanitize(mm.UserEvent) + "  " + sanitize(mm.Payload)
	}
	return line
}
