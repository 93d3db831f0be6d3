package mask

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf16"

	"go.uber.org/goleak"

	"rtm/realtime/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// --- generators -----------------------------------------------------

// jwtHeaders are JWT headers of every shape a verifier that decodes the
// header as JSON accepts: any alg, any member order, leading and inner
// whitespace.
var jwtHeaders = []string{
	`{"alg":"HS256","typ":"JWT"}`,
	`{"typ":"JWT","alg":"ES256","kid":"f3a1"}`,
	`{"alg":"RS512"}`,
	`{"alg":"none"}`,
	` {"alg":"HS384"}`,
	"\n\t{\"alg\":\"HS256\"}",
	`{ "alg" : "HS512" , "typ" : "JWT" }`,
	"\r\n   {\"kid\":\"x\",\"alg\":\"EdDSA\"}",
}

var jwtClaims = []string{
	`{"role":"service_role","iss":"supabase","iat":1767225600,"exp":4102444800}`,
	`{"sub":"8f2c0c1e","role":"authenticated","exp":1999999999,"aud":"authenticated"}`,
	` {"role":"anon"}`,
	"\n{\"exp\":1,\"role\":\"x\"}",
}

// segment encodes b in one of the base64 forms a JWT segment takes:
// URL alphabet with or without '=' padding (what rtm serve accepts), or
// the standard alphabet (what some libraries write).
func segment(r *rand.Rand, b []byte) string {
	switch r.IntN(4) {
	case 0, 1:
		return base64.RawURLEncoding.EncodeToString(b)
	case 2:
		return base64.URLEncoding.EncodeToString(b) // padded
	default:
		return base64.StdEncoding.EncodeToString(b)
	}
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

func genJWT(r *rand.Rand) string {
	h := jwtHeaders[r.IntN(len(jwtHeaders))]
	c := jwtClaims[r.IntN(len(jwtClaims))]
	sig := ""
	if !strings.Contains(h, `"none"`) || r.IntN(2) == 0 {
		sig = segment(r, randBytes(r, []int{32, 48, 64}[r.IntN(3)]))
	}
	return segment(r, []byte(h)) + "." + segment(r, []byte(c)) + "." + sig
}

const keyAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"

func randFrom(r *rand.Rand, alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

func genOpaque(r *rand.Rand) string {
	p := "sb_secret_"
	if r.IntN(2) == 0 {
		p = "sb_publishable_"
	}
	return p + randFrom(r, keyAlphabet, 20+r.IntN(30))
}

// secretNames are names whose values are secrets whatever they look
// like, in the spellings payloads use.
var secretNames = []string{"apikey", "api_key", "x-api-key", "token", "access_token", "Access_Token", "refresh_token",
	"user_token", "accessToken", "jwt", "secret", "client_secret", "password", "PASSWORD", "db_password",
	"authorization", "Authorization", "service_role_key", "anon_key"}

// genRandomSecret is a secret no pattern can recognise: printable ASCII
// (quotes and backslashes included) and some non-ASCII, 12 to 40
// characters, so that it cannot appear elsewhere by chance.
func genRandomSecret(r *rand.Rand) string {
	const printable = " !\"#$&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"
	var b strings.Builder
	for n := 12 + r.IntN(29); n > 0; n-- {
		switch r.IntN(12) {
		case 0:
			b.WriteString([]string{"é", "ß", "日", "😀"}[r.IntN(4)])
		default:
			b.WriteByte(printable[r.IntN(len(printable))])
		}
	}
	return b.String()
}

// filler is text that holds no secret.
func filler(r *rand.Rand) string {
	words := []string{"hello", "world", "cursor", "x", "42", "1.5", "a b", "é", "日本", "😀", "\"quoted\"", `back\slash`,
		"tab\there", "line\nbreak", "50%", "/path/to", "ok", "room:1", "realtime:broadcast:doc:1", "=", "", "ab.cd"}
	var parts []string
	for n := r.IntN(4); n > 0; n-- {
		parts = append(parts, words[r.IntN(len(words))])
	}
	return strings.Join(parts, " ")
}

// encodeString writes s as a JSON string with random escapes: any
// character may be written \uXXXX (surrogate pairs beyond the BMP, either
// hex case), '/' as \/, and the characters JSON requires escaped always
// are.
func encodeString(r *rand.Rand, b *strings.Builder, s string, escapeRate int) {
	b.WriteByte('"')
	for _, c := range s {
		must := c < 0x20 || c == '"' || c == '\\'
		if !must && (escapeRate == 0 || r.IntN(100) >= escapeRate) {
			b.WriteRune(c)
			continue
		}
		switch {
		case c == '/' && r.IntN(2) == 0:
			b.WriteString(`\/`)
		case (c == '"' || c == '\\') && r.IntN(2) == 0:
			b.WriteByte('\\')
			b.WriteRune(c)
		case c == '\n' && r.IntN(2) == 0:
			b.WriteString(`\n`)
		default:
			hex := "%04x"
			if r.IntN(2) == 0 {
				hex = "%04X"
			}
			if c > 0xFFFF {
				r1, r2 := utf16.EncodeRune(c)
				fmt.Fprintf(b, `\u`+hex+`\u`+hex, r1, r2)
			} else {
				fmt.Fprintf(b, `\u`+hex, c)
			}
		}
	}
	b.WriteByte('"')
}

func space(r *rand.Rand, b *strings.Builder) {
	if r.IntN(4) == 0 {
		b.WriteString([]string{" ", "\n", "\t", "  ", "\r\n"}[r.IntN(5)])
	}
}

// node is a JSON value to encode: string, float64, bool, nil, []node or
// members.
type members []member

type member struct {
	k string
	v any
}

func encodeValue(r *rand.Rand, b *strings.Builder, v any, rate int) {
	space(r, b)
	switch v := v.(type) {
	case string:
		encodeString(r, b, v, rate)
	case float64:
		fmt.Fprint(b, v)
	case bool:
		fmt.Fprint(b, v)
	case nil:
		b.WriteString("null")
	case []any:
		b.WriteByte('[')
		for i, x := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			encodeValue(r, b, x, rate)
		}
		space(r, b)
		b.WriteByte(']')
	case members:
		b.WriteByte('{')
		for i, m := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			space(r, b)
			encodeString(r, b, m.k, rate)
			space(r, b)
			b.WriteByte(':')
			encodeValue(r, b, m.v, rate)
		}
		space(r, b)
		b.WriteByte('}')
	}
	space(r, b)
}

// randValue is a random JSON value without secrets, depth at most d.
func randValue(r *rand.Rand, d int) any {
	switch n := r.IntN(8); {
	case n == 0:
		return float64(r.IntN(1000)) / 4
	case n == 1:
		return r.IntN(2) == 0
	case n == 2:
		return nil
	case n < 5 || d == 0:
		return filler(r)
	case n == 5:
		var a []any
		for k := r.IntN(4); k > 0; k-- {
			a = append(a, randValue(r, d-1))
		}
		return a
	default:
		var m members
		for k := r.IntN(4); k > 0; k-- {
			m = append(m, member{fmt.Sprintf("k%d", k), randValue(r, d-1)})
		}
		return m
	}
}

// place puts v somewhere in a random document: as a member value, deep
// in nested objects and arrays, as an array element, or (key) as a
// member name.
func place(r *rand.Rand, v any, asKey bool) any {
	var at any
	if asKey {
		at = members{{v.(string), randValue(r, 1)}}
	} else {
		at = v
	}
	for d := r.IntN(4); d > 0; d-- {
		switch r.IntN(2) {
		case 0:
			m := members{{"a", randValue(r, 1)}, {"b", at}}
			if r.IntN(2) == 0 {
				m[0], m[1] = m[1], m[0]
			}
			at = m
		default:
			a := []any{randValue(r, 1), at, randValue(r, 1)}
			at = a[r.IntN(2)+1:]
			if r.IntN(2) == 0 {
				at = a
			}
		}
	}
	if _, ok := at.(members); !ok && r.IntN(2) == 0 {
		at = members{{"payload", at}, {"event", "broadcast"}}
	}
	return at
}

// --- checks ---------------------------------------------------------

// holds reports whether key is in s, in s decoded (every escape level),
// or in any string of s read as JSON, recursively.
func holds(s, key string, depth int) bool {
	if strings.Contains(s, key) {
		return true
	}
	if depth > 20 {
		return false
	}
	for d, changed := decodeOnce(s); changed; d, changed = decodeOnce(d) {
		if strings.Contains(d, key) {
			return true
		}
	}
	var v any
	if looksJSON(s) && json.Unmarshal([]byte(s), &v) == nil {
		found := false
		walkStrings(v, func(x string) {
			if !found && x != s && holds(x, key, depth+1) {
				found = true
			}
		})
		return found
	}
	return false
}

func walkStrings(v any, f func(string)) {
	switch v := v.(type) {
	case string:
		f(v)
	case []any:
		for _, x := range v {
			walkStrings(x, f)
		}
	case map[string]any:
		for k, x := range v {
			f(k)
			walkStrings(x, f)
		}
	}
}

// keyOf generates a secret of one of the shapes and where it may go.
func keyOf(r *rand.Rand) (key string, named bool) {
	switch r.IntN(4) {
	case 0, 1:
		return genJWT(r), false
	case 2:
		return genOpaque(r), false
	default:
		return genRandomSecret(r), true
	}
}

// TestJSONNeverHoldsAKey is the property: any key of the shapes rtm
// accepts (JWTs of any header, padded or not; sb_ keys), and any secret
// under a secret-named member, placed anywhere in a JSON document (a
// member value, nested, an array element, inside a longer string, a
// member name) and written in any valid JSON spelling (random \u escapes,
// escaped '/', whitespace), is in neither the masked output nor its
// decoded strings, which stay valid JSON.
func TestJSONNeverHoldsAKey(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 2026))
	for i := 0; i < 4000; i++ {
		key, named := keyOf(r)
		var v any
		switch {
		case named:
			name := secretNames[r.IntN(len(secretNames))]
			val := key
			if strings.EqualFold(name, "authorization") && r.IntN(2) == 0 {
				val = "Bearer " + key
			}
			v = place(r, members{{"n", 1.0}, {name, val}}, false)
		case r.IntN(5) == 0:
			v = place(r, key, true)
		case r.IntN(2) == 0:
			v = place(r, filler(r)+[]string{"", " ", ":", "=", "\"", "xx", "Bearer "}[r.IntN(7)]+key+[]string{"", " ", ",", "\"", "yy"}[r.IntN(5)]+filler(r), false)
		default:
			v = place(r, key, false)
		}
		var b strings.Builder
		encodeValue(r, &b, v, []int{0, 5, 30, 100}[r.IntN(4)])
		doc := b.String()
		if !json.Valid([]byte(doc)) {
			t.Fatalf("generator wrote invalid JSON: %s", doc)
		}
		out := JSON([]byte(doc))
		if !json.Valid(out) || !protocol.Valid(out) {
			t.Fatalf("masking made invalid JSON:\n in  %s\n out %s", doc, out)
		}
		if holds(string(out), key, 0) {
			t.Fatalf("key %q survives masking:\n in  %s\n out %s", key, doc, out)
		}
		if again := JSON(out); !bytes.Equal(again, out) {
			t.Fatalf("masking is not idempotent:\n 1 %s\n 2 %s", out, again)
		}
		if s := Text(doc); holds(s, key, 0) {
			t.Fatalf("Text of JSON keeps key %q: %s", key, s)
		}
	}
}

// TestJSONKeepsWhatHoldsNoKey: documents without secrets come out
// unchanged, byte for byte, whatever their escapes.
func TestJSONKeepsWhatHoldsNoKey(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for i := 0; i < 3000; i++ {
		var b strings.Builder
		encodeValue(r, &b, randValue(r, 4), []int{0, 5, 30, 100}[r.IntN(4)])
		doc := b.String()
		if out := JSON([]byte(doc)); string(out) != doc {
			t.Fatalf("a document without secrets changed:\n in  %s\n out %s", doc, out)
		}
	}
}

// escapeText spells s with random escapes of one level: JSON \uXXXX,
// JavaScript \xHH or URL %HH. Backslashes and percent signs are always
// escaped, as an encoder does, so that one level decodes back to s.
func escapeText(r *rand.Rand, s string, rate int) string {
	var b strings.Builder
	for _, c := range s {
		if c != '\\' && c != '%' && r.IntN(100) >= rate {
			b.WriteRune(c)
			continue
		}
		switch r.IntN(3) {
		case 0:
			if c > 0xFFFF {
				r1, r2 := utf16.EncodeRune(c)
				fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
			} else {
				fmt.Fprintf(&b, `\u%04x`, c)
			}
		case 1:
			for _, x := range []byte(string(c)) {
				fmt.Fprintf(&b, `\x%02X`, x)
			}
		default:
			for _, x := range []byte(string(c)) {
				fmt.Fprintf(&b, "%%%02x", x)
			}
		}
	}
	return b.String()
}

// TestTextNeverHoldsAKey: a key in text that is not JSON (a log line, a
// URL, a truncated frame), spelled with up to three levels of escapes
// (\u, \x, %), is neither in the masked text nor in any decoding of it.
func TestTextNeverHoldsAKey(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 9))
	for i := 0; i < 4000; i++ {
		key, named := keyOf(r)
		var s string
		if named {
			name := secretNames[r.IntN(len(secretNames))]
			k := strings.Map(func(c rune) rune {
				if strings.ContainsRune(" &\"',;#()[]{}<>\\\n\t%", c) {
					return 'x' // an unquoted value ends there
				}
				return c
			}, key)
			key = k
			s = []string{name + "=" + k, `"` + name + `": "` + strings.ReplaceAll(k, `"`, `\"`) + `"`, "ws://h/x?vsn=2&" + name + "=" + k + "&a=b"}[r.IntN(3)]
		} else {
			s = filler(r) + []string{" ", "", "\"", "=", "Bearer "}[r.IntN(5)] + key + []string{"", " ", "yy"}[r.IntN(3)] + filler(r)
		}
		for lv := r.IntN(4); lv > 0; lv-- {
			s = escapeText(r, s, []int{3, 20, 100}[r.IntN(3)])
		}
		if r.IntN(3) == 0 {
			s = `[null,null,"realtime:x","broadcast",{"payload":` + s // truncated: not JSON
		}
		out := Text(s)
		if holds(out, key, 0) {
			t.Fatalf("key %q survives masking:\n in  %s\n out %s", key, s, out)
		}
		if again := Text(out); again != out {
			t.Fatalf("masking is not idempotent:\n 1 %s\n 2 %s", out, again)
		}
	}
}

// TestKnownShapes pins the masked form of each shape.
func TestKnownShapes(t *testing.T) {
	jwt := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU"
	padded := "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0=.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU="
	esc := `ey\u004ahbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU`
	for _, c := range []struct{ in, want string }{
		{`{"p":"` + esc + `"}`, `{"p":"eyJh…1cmU"}`},
		{`{"p":"sb\u005fsecret_abcdefghijklmnopqrstuvwxyz"}`, `{"p":"sb_s…wxyz"}`},
		{`{"p":"x ` + padded + ` y"}`, `{"p":"x eyJh…cmU= y"}`},
		{`{"\u0061ccess_token":"hunter2-hunter2","n":1}`, `{"\u0061ccess_token":"…","n":1}`},
		{`{"authorization":"Bearer ` + jwt + `"}`, `{"authorization":"Bearer eyJh…1cmU"}`},
		{`{"` + jwt + `":1}`, `{"eyJh…1cmU":1}`},
		{`{"token":"eyJh…1cmU"}`, `{"token":"eyJh…1cmU"}`},
		{"ws://h/socket?apikey=" + jwt + "&vsn=2.0.0", "ws://h/socket?apikey=eyJh…1cmU&vsn=2.0.0"},
		{"token=abc&x=1", "token=…&x=1"},
		{"Authorization: Bearer abcdefghijklmnopqrstuvwxyz", "Authorization: Bearer abcd…wxyz"},
		{"connect: " + esc, "connect: eyJh…1cmU"},
		{"join refused: InvalidJWTToken: Token has expired 3 seconds ago", "join refused: InvalidJWTToken: Token has expired 3 seconds ago"},
		{"version 1.2.3 at 10.0.0.1", "version 1.2.3 at 10.0.0.1"},
		{`["1","1","realtime:broadcast:token:1","phx_join",{}]`, `["1","1","realtime:broadcast:token:1","phx_join",{}]`},
		{"password: hunter2-hunter2", "password: …"},
		{`{"type":"presence","event":"track","payload":{"key":"ann","token_expiry":"x"}}`, `{"type":"presence","event":"track","payload":{"key":"ann","token_expiry":"x"}}`},
	} {
		if got := Text(c.in); got != c.want {
			t.Errorf("Text(%s)\n got  %s\n want %s", c.in, got, c.want)
		}
	}
}

func TestSecretAndIsMasked(t *testing.T) {
	if Secret("") != "" || Secret("short") != "…" {
		t.Fatal("short secrets")
	}
	if got := Secret("ééééééééééééééééé"); got != "éééé…éééé" {
		t.Fatalf("Secret cut a character: %q", got)
	}
	for _, s := range []string{"…", "eyJh…K08A", "eyJh…K08A (211 chars)", "…ab"} {
		if !IsMasked(s) {
			t.Errorf("IsMasked(%q) = false", s)
		}
	}
	for _, s := range []string{"", "abc", "eyJhb…K08A", "a…b…c", "ab…cd (x chars)", "hunter2"} {
		if IsMasked(s) {
			t.Errorf("IsMasked(%q) = true", s)
		}
	}
	for _, n := range []string{"apikey", "X-Api-Key", "access_token", "accessToken", "join.access_token", "client_secret", "PASSWORD", "service_role_key"} {
		if !IsSecretName(n) {
			t.Errorf("IsSecretName(%q) = false", n)
		}
	}
	for _, n := range []string{"key", "presence_key", "token_expiry", "masked", "event", "tokens", ""} {
		if IsSecretName(n) {
			t.Errorf("IsSecretName(%q) = true", n)
		}
	}
}

// TestBinaryFrames: the payload of a binary user broadcast is masked as
// JSON (escapes decoded) or, when raw, as bytes, and the frame still
// decodes.
func TestBinaryFrames(t *testing.T) {
	jwt := "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU"
	esc := `{"t":"ey\u004a` + jwt[3:] + `"}`
	for _, c := range []struct {
		name   string
		client bool
		b      protocol.Broadcast
	}{
		{"json from the server", false, protocol.Broadcast{Event: "e", Payload: []byte(esc)}},
		{"json from a client", true, protocol.Broadcast{Event: "e", Payload: []byte(esc)}},
		{"raw from the server", false, protocol.Broadcast{Event: "e", Binary: true, Payload: []byte("raw " + jwt)}},
		{"meta", false, protocol.Broadcast{Event: "e", Payload: []byte(`{}`), Meta: []byte(`{"id":"` + jwt + `"}`)}},
	} {
		m := protocol.Message{Topic: "realtime:broadcast:a:b", Event: "broadcast", Broadcast: &c.b, JoinRef: "1", Ref: "2"}
		var frame []byte
		var err error
		if c.client {
			frame, _, err = protocol.V2.AppendClient(nil, &m)
		} else {
			frame, _, err = protocol.V2.AppendServer(nil, &m)
		}
		if err != nil {
			t.Fatal(err)
		}
		out := Binary(frame)
		if holds(string(out), jwt, 0) {
			t.Fatalf("%s: the key survives: %q", c.name, out)
		}
		back, _, err := decodeBinary(out)
		if err != nil || back.Broadcast == nil {
			t.Fatalf("%s: the masked frame does not decode: %v", c.name, err)
		}
		if !c.b.Binary && !strings.Contains(string(back.Broadcast.Payload), "eyJh…1cmU") && len(c.b.Meta) == 0 {
			t.Fatalf("%s: payload %s", c.name, back.Broadcast.Payload)
		}
	}
	if plain := []byte{4, 1, 1, 0, 1, 'a', 'b', '{', '}'}; !bytes.Equal(Binary(plain), plain) {
		t.Fatal("a frame without secrets changed")
	}
}

func TestURL(t *testing.T) {
	jwt := "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
	for _, c := range []struct{ in, want string }{
		{"wss://x.supabase.co/realtime/v1/websocket?apikey=" + jwt + "&vsn=2.0.0", "wss://x.supabase.co/realtime/v1/websocket?apikey=eyJh…VyZQ&vsn=2.0.0"},
		{"postgres://u:secret@h:5432/db?sslmode=disable", "postgres://u:xxxxx@h:5432/db?sslmode=disable"},
		{"postgres://u@h/db?password=hunter2", "postgres://u@h/db?password=…"},
		{"ws://h/x?token=ey%4ahbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ", "ws://h/x?token=eyJh…VyZQ"},
		{"http://h/cb#access_token=" + jwt + "&refresh_token=abcdefghij", "http://h/cb#access_token=eyJh…VyZQ&refresh_token=…"},
		{"postgres://u:p%zz@h/db", "postgres://u:xxxxx@h/db"},
		{"http://127.0.0.1:54321", "http://127.0.0.1:54321"},
	} {
		if got := URL(c.in); got != c.want {
			t.Errorf("URL(%s)\n got  %s\n want %s", c.in, got, c.want)
		}
	}
}

func TestReplaceAttr(t *testing.T) {
	jwt := "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
	var b bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&b, &slog.HandlerOptions{ReplaceAttr: ReplaceAttr}))
	log.Info("connect "+`ey\u004a`+jwt[3:], "token", "opaque-secret-value-123456", "err", fmt.Errorf("refused: %s", jwt),
		"apikey", "eyJh…VyZQ (64 chars)", slog.Group("join", "access_token", jwt), "n", 3)
	out := b.String()
	if holds(out, jwt, 0) || strings.Contains(out, "opaque-secret-value-123456") {
		t.Fatalf("a secret in the log: %s", out)
	}
	if !strings.Contains(out, `"apikey":"eyJh…VyZQ (64 chars)"`) || !strings.Contains(out, `"n":3`) {
		t.Fatalf("masked values or other attrs changed: %s", out)
	}
}
