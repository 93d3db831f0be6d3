package registry

import (
	"encoding/json"
	"strings"

	"rtm/realtime/mask"
)

// MaskSecret masks a whole secret (an API key, a JWT) for display: the
// first and last four characters of a long value, nothing of a short one.
// The result never contains enough of the secret to use it.
func MaskSecret(s string) string { return mask.Secret(s) }

// MaskText returns s with every embedded secret masked: JWTs (any
// header, '=' padding or none), Supabase opaque keys, the values of
// apikey/token/password/… parameters and members, bearer credentials.
// Secrets are found on the decoded text: JSON text is decoded and encoded
// again (it stays valid JSON), and escapes (\u, %, …) in other text are
// decoded, so that no spelling hides a key.
func MaskText(s string) string { return mask.Text(s) }

// MaskJSON returns the JSON text b with every secret in its decoded
// strings masked, still valid JSON (invalid JSON is masked as text); b
// itself when nothing is masked.
func MaskJSON(b []byte) []byte { return mask.JSON(b) }

// MaskBinaryFrame masks a 2.0.0 binary frame: the payload of a user
// broadcast (as JSON, or as bytes when raw), its topic, event and meta;
// the frame stays decodable. Other bytes are masked as text. It returns
// b itself when nothing is masked.
func MaskBinaryFrame(b []byte) []byte { return mask.Binary(b) }

// MaskURL masks a URL for display: its password, its secret-named query
// parameters (apikey, token, …) and any key in it.
func MaskURL(s string) string { return mask.URL(s) }

// MaskEvent masks what the JSON form of an event holds as base64, out of
// reach of a pass over its text: the bytes of binary frames (see
// [MaskBinaryFrame]) and of binary messages.
func MaskEvent(e Event) Event {
	switch v := e.(type) {
	case FrameEvent:
		if len(v.Data) > 0 {
			v.Data = MaskBinaryFrame(v.Data)
		}
		return v
	case MessageEvent:
		v, _ = maskBinaryMessage(v)
		return v
	case MessageBatchEvent:
		copied := false
		for i := range v.Messages {
			m, changed := maskBinaryMessage(v.Messages[i])
			if !changed {
				continue
			}
			if !copied { // the batch's slice may be the subscriber's
				v.Messages, copied = append([]MessageEvent(nil), v.Messages...), true
			}
			v.Messages[i] = m
		}
		return v
	}
	return e
}

func maskBinaryMessage(m MessageEvent) (MessageEvent, bool) {
	if len(m.Binary) == 0 {
		return m, false
	}
	s := string(m.Binary)
	t := mask.Text(s)
	if t == s {
		return m, false
	}
	m.Binary = []byte(t)
	return m, true
}

// MarshalMasked returns the stable JSON form of e with every secret
// masked: binary fields by [MaskEvent], then every string of the JSON (a
// frame's text, a message's payload, reasons, log records) decoded and
// masked by [MaskJSON]. The result is what the manager's export, `rtm
// watch` and `rtm record` write.
func MarshalMasked(e Event) ([]byte, error) {
	b, err := json.Marshal(MaskEvent(e))
	if err != nil {
		return nil, err
	}
	return mask.JSON(b), nil
}

// secretPattern is the manager's and the log handler's handle on
// masking (see MaskText); it holds no state.
type secretPattern struct{}

func newSecretPattern() *secretPattern { return &secretPattern{} }

// mask replaces every secret found in s.
func (*secretPattern) mask(s string) string { return mask.Text(s) }

// sensitiveKey reports whether a log attribute key names a secret whose
// whole value must be masked: a secret name (see mask.IsSecretName:
// apikey, token, access_token, password, …) or "key".
func sensitiveKey(k string) bool {
	if mask.IsSecretName(k) {
		return true
	}
	if i := strings.LastIndexByte(k, '.'); i >= 0 {
		k = k[i+1:]
	}
	return strings.EqualFold(k, "key")
}
