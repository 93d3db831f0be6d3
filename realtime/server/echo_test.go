package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
)

// TestErrorAnswersQuoteLittle: an error answer that quotes the request (a
// topic, a path, a header, a field name) quotes at most a few hundred
// bytes of it, however long it is.
func TestErrorAnswersQuoteLittle(t *testing.T) {
	t.Parallel()
	s := servertest.New(t, servertest.WithLimits(server.Limits{MaxPayloadSizeKB: 2000}))
	long := strings.Repeat("x", 500_000)
	const bound = 1 << 10
	for _, tc := range []struct {
		name, method, path, token, ct, body string
		status                              int
	}{
		{"batch tenant topic", "POST", "/realtime/v1/api/broadcast", s.AnonKey(), "application/json",
			`{"messages":[{"topic":"tenant:` + long[:230] + `:a","event":"e","payload":{}}]}`, http.StatusForbidden},
		{"batch topic over its cap", "POST", "/realtime/v1/api/broadcast", s.AnonKey(), "application/json",
			`{"messages":[{"topic":"tenant:` + long + `:a","event":"e","payload":{}}]}`, http.StatusUnprocessableEntity},
		{"single content type", "POST", "/realtime/v1/api/broadcast/room/events/e", s.AnonKey(), "text/" + long[:50_000], `{}`, http.StatusUnsupportedMediaType},
		{"admin path", "GET", "/admin/" + long[:50_000], s.ServiceRoleKey(), "", "", http.StatusNotFound},
		{"admin pause id", "POST", "/admin/pause", s.ServiceRoleKey(), "application/json", `{"id":"` + long + `","for":"1s"}`, http.StatusNotFound},
		{"connect vsn", "GET", "/realtime/v1/websocket?apikey=" + s.AnonKey() + "&vsn=" + long[:50_000], "", "", "", http.StatusBadRequest},
		{"admin unknown field", "POST", "/admin/drop", s.ServiceRoleKey(), "application/json", `{"` + long + `":1}`, http.StatusBadRequest},
	} {
		status, body := httpDo(t, tc.method, s.URL+tc.path, tc.token, tc.ct, tc.body)
		if status != tc.status || len(body) > bound || !json.Valid([]byte(body)) {
			t.Errorf("%s: %d, %d bytes (%.120s…), want %d, at most %d bytes of JSON", tc.name, status, len(body), body, tc.status, bound)
		}
	}
}
