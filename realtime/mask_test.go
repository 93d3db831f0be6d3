package realtime

import (
	"strings"
	"testing"
)

// TestMaskURLEveryShape: the endpoint as logged and put in errors holds
// no password, no opaque key, and no token under any parameter name,
// padded or percent-escaped.
func TestMaskURLEveryShape(t *testing.T) {
	padded := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImsifQ==.eyJyb2xlIjoic2VydmljZV9yb2xlIn0=.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU="
	sb := "sb_secret_Zm9vYmFyYmF6cXV4cXV1eGNvcmdl"
	got := maskURL("wss://user:hunter2@h/realtime/v1/websocket?apikey=" + sb + "&token=" + padded + "&x=ey%4a" + padded[3:] + "&vsn=2.0.0")
	for _, s := range []string{"hunter2", sb, padded, padded[3:], "c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU"} {
		if strings.Contains(got, s) {
			t.Fatalf("maskURL leaks %q: %s", s, got)
		}
	}
	if !strings.Contains(got, "vsn=2.0.0") || !strings.Contains(got, "apikey=sb_s…") {
		t.Fatalf("maskURL over-masks: %s", got)
	}
}
