package mask

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"rtm/realtime/protocol"
)

const seedJWT = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU"

func addSeeds(f *testing.F) {
	for _, s := range []string{
		`{"p":"ey\u004a` + seedJWT[3:] + `"}`,
		`{"p":"sb\u005fsecret_abcdefghijklmnopqrstuvwxyz"}`,
		`["x eyJhbGciOiJIUzI1NiJ9==.eyJyb2xlIjoic2VydmljZV9yb2xlIn0=.c2ln= y"]`,
		`{"\u0061ccess_token":"hunter2","n":[1,2.5e3,true,null,{"authorization":"Bearer abcdefghijk"}]}`,
		`{"` + seedJWT + `":{}}`,
		`"{\"token\":\"a\\\"b\"}"`,
		"ws://h/socket?apikey=" + seedJWT + "&vsn=2.0.0",
		"postgres://u:pass@h/db?password=x%26y",
		`token=ey%4a` + seedJWT[3:],
		`[null,null,"realtime:x","broadcast",{"payload":"truncated ey\\u004a` + seedJWT[3:],
		"Authorization: Bearer abcdefghijklmnop",
		"ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICB7.ICB7.x",
		`\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\%252525252525252525token`,
		"", "{}", "[", `"\ud800"`, "eyJh…1cmU",
	} {
		f.Add([]byte(s))
	}
}

// FuzzJSON: masking never panics, keeps valid JSON valid, and leaves
// nothing a second pass would mask.
func FuzzJSON(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		out := JSON(data)
		if protocol.Valid(data) && !protocol.Valid(out) {
			t.Fatalf("valid JSON became invalid:\n in  %q\n out %q", data, out)
		}
		if again := JSON(out); !bytes.Equal(again, out) {
			t.Fatalf("a second pass masks more:\n in  %q\n 1   %q\n 2   %q", data, out, again)
		}
	})
}

// FuzzText: as FuzzJSON for any text.
func FuzzText(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		out := Text(string(data))
		if again := Text(out); again != out {
			t.Fatalf("a second pass masks more:\n in  %q\n 1   %q\n 2   %q", data, out, again)
		}
	})
}

// FuzzBinary: masking any bytes as a binary frame never panics, a frame
// that decoded still decodes, and nothing is left to mask.
func FuzzBinary(f *testing.F) {
	for _, p := range []string{`{"t":"ey\u004a` + seedJWT[3:] + `"}`, `{}`, "raw " + seedJWT} {
		for _, fromClient := range []bool{false, true} {
			m := protocol.Message{Topic: "realtime:a", Event: "broadcast", JoinRef: "1", Ref: "2",
				Broadcast: &protocol.Broadcast{Event: "e", Payload: []byte(p), Binary: !json.Valid([]byte(p))}}
			var b []byte
			if fromClient {
				b, _, _ = protocol.V2.AppendClient(nil, &m)
			} else {
				b, _, _ = protocol.V2.AppendServer(nil, &m)
			}
			f.Add(b)
		}
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		out := Binary(data)
		if _, _, err := decodeBinary(data); err == nil {
			if _, _, err := decodeBinary(out); err != nil && !bytes.Equal(out, bytesText(data)) {
				t.Fatalf("a decodable frame no longer decodes: %v\n in  %q\n out %q", err, data, out)
			}
		}
		if again := Binary(out); !bytes.Equal(again, out) {
			t.Fatalf("a second pass masks more:\n in  %q\n 1   %q\n 2   %q", data, out, again)
		}
	})
}

// FuzzURL: URL never panics and leaves nothing Text would mask.
func FuzzURL(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		out := URL(string(data))
		if again := Text(out); again != out {
			t.Fatalf("the masked URL holds a secret:\n in  %q\n out %q\n 2   %q", data, out, again)
		}
	})
}

// FuzzUnquote: the walker's string decoder agrees with encoding/json on
// every valid JSON string.
func FuzzUnquote(f *testing.F) {
	for _, s := range []string{`a`, `\u00e9\ud83d\ude00`, `\ud800x`, `\ud800\u0041`, `\"\\\/\b\f\n\r\t`, `日本`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		q := append(append([]byte{'"'}, raw...), '"')
		if !protocol.Valid(q) {
			return
		}
		var want string
		if err := json.Unmarshal(q, &want); err != nil {
			t.Fatalf("protocol.Valid accepts %q, encoding/json does not: %v", q, err)
		}
		if got := unquote(raw); got != want {
			t.Fatalf("unquote(%q) = %q, want %q", raw, got, want)
		}
	})
}

// naiveObjectStart is objectStart by brute force: decode every suffix.
func naiveObjectStart(seg string) int {
	for i := 0; i < len(seg); i++ {
		if objectAt(seg[i:]) {
			return i
		}
	}
	return -1
}

// FuzzObjectStart: the linear search for a JWT's start agrees with the
// brute-force one.
func FuzzObjectStart(f *testing.F) {
	for _, s := range []string{"eyJh", "xxeyJhbGci", "ICAgICB7", "aICAgICB7", "CnsiYSI6", "abcdefg", "e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		seg := strings.Map(func(r rune) rune {
			if r < 256 && isB64(byte(r)) {
				return r
			}
			return 'A'
		}, s)
		if got, want := objectStart(seg), naiveObjectStart(seg); got != want {
			t.Fatalf("objectStart(%q) = %d, want %d", seg, got, want)
		}
	})
}
