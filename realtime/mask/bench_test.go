package mask

import (
	"strings"
	"testing"
)

// hostile are inputs built to make a careless masker quadratic, each
// about n bytes.
func hostile(n int) map[string]string {
	rep := func(s string) string { return strings.Repeat(s, n/len(s)+1)[:n] }
	return map[string]string{
		"whitespace-header": rep("ICAg") + "." + rep("ICAg") + ".x",
		"dots":              rep("ICB7."),
		"padding":           rep("eyJ9=") + "." + rep("="),
		"token-equals":      rep("token="),
		"token-colon":       rep(`"token":`),
		"bearer":            rep("Bearer "),
		"sb":                rep("sb_secret_"),
		"backslashes":       rep(`\`),
		"percent":           "%" + rep("25") + "token=x",
		"quotes":            `"` + rep(`\"`),
		"json-escapes":      `["` + rep(`\u0074oken=`) + `"]`,
		"nested-json":       nestedJSON(n),
	}
}

// nestedJSON is a JSON string holding JSON holding a string … as deep as
// n bytes allow.
func nestedJSON(n int) string {
	s := `{"token":"abcdefghijklmnopqrstuvwxyz"}`
	for len(s) < n/2 {
		s = `["` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"]`
	}
	return s
}

// TestHostileInputs: inputs built to make masking quadratic are masked
// (in linear time: a quadratic pass over a MiB would not end within the
// test's timeout) and hold nothing a second pass would mask.
func TestHostileInputs(t *testing.T) {
	for name, s := range hostile(1 << 20) {
		out := Text(s)
		if Text(out) != out {
			t.Errorf("%s: a second pass masks more", name)
		}
		if strings.Contains(out, "abcdefghijklmnopqrstuvwxyz") {
			t.Errorf("%s: a secret survives", name)
		}
	}
}

func BenchmarkHostile(b *testing.B) {
	for _, n := range []int{1 << 16, 1 << 20} {
		for name, s := range hostile(n) {
			b.Run(name+"/"+map[int]string{1 << 16: "64KiB", 1 << 20: "1MiB"}[n], func(b *testing.B) {
				b.SetBytes(int64(len(s)))
				for b.Loop() {
					Text(s)
				}
			})
		}
	}
}
