package target

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseDotenv(t *testing.T) {
	text := "\uFEFF# a comment\r\n" +
		"SUPABASE_URL=https://abc.supabase.co\r\n" +
		"\n" +
		"export NEXT_PUBLIC_SUPABASE_ANON_KEY = eyJhbGciOiJIUzI1NiJ9.e30.sig   # inline comment\n" +
		"EMPTY=\n" +
		"SINGLE='literal \\n #not a comment'\n" +
		"DOUBLE=\"line1\\nline2 \\\"q\\\" \\\\ #x\" # trailing\n" +
		"MULTI=\"first\n" +
		"second\"\n" +
		"BACK=`tick's`\n" +
		"HASH=a#b\n" +
		"dotted.name-x=1\n" +
		"SUPABASE_URL=http://127.0.0.1:54321\n"
	vars, err := ParseDotenv("", text)
	if err != nil {
		t.Fatal(err)
	}
	want := []Var{
		{"SUPABASE_URL", "https://abc.supabase.co", 2},
		{"NEXT_PUBLIC_SUPABASE_ANON_KEY", "eyJhbGciOiJIUzI1NiJ9.e30.sig", 4},
		{"EMPTY", "", 5},
		{"SINGLE", `literal \n #not a comment`, 6},
		{"DOUBLE", "line1\nline2 \"q\" \\ #x", 7},
		{"MULTI", "first\nsecond", 8},
		{"BACK", "tick's", 10},
		{"HASH", "a#b", 11},
		{"dotted.name-x", "1", 12},
		{"SUPABASE_URL", "http://127.0.0.1:54321", 13},
	}
	if !reflect.DeepEqual(vars, want) {
		t.Fatalf("vars:\n got %#v\nwant %#v", vars, want)
	}
	m, err := Dotenv("", text)
	if err != nil || m["SUPABASE_URL"] != "http://127.0.0.1:54321" {
		t.Fatalf("later assignment must win: %q %v", m["SUPABASE_URL"], err)
	}
}

func TestParseDotenvErrors(t *testing.T) {
	for _, tc := range []struct {
		text   string
		line   int
		reason string
		keep   int // variables returned before the error
	}{
		{"A=1\nnot an assignment\n", 2, "is not KEY=value", 1},
		{"A=1\n=value\n", 2, "empty variable name", 1},
		{"1A=x\n", 1, "invalid variable name", 0},
		{"A B=x\n", 1, "invalid variable name", 0},
		{"A=1\nB=\"open\nC=2\n", 2, "no closing \"", 1},
		{"A='x' junk\n", 1, "unexpected", 0},
		{"A=\"x\ny\" junk\n", 2, "unexpected", 0},
		{"A=\xff\n", 1, "not valid UTF-8", 0},
	} {
		vars, err := ParseDotenv(".env", tc.text)
		var de *DotenvError
		if !errors.As(err, &de) || !errors.Is(err, ErrDotenv) {
			t.Errorf("%q: err = %v, want a DotenvError", tc.text, err)
			continue
		}
		if de.Line != tc.line || !strings.Contains(de.Reason, tc.reason) || de.File != ".env" {
			t.Errorf("%q: error %v (line %d), want line %d containing %q", tc.text, err, de.Line, tc.line, tc.reason)
		}
		if !strings.HasPrefix(err.Error(), ".env:") {
			t.Errorf("%q: error %q must start with file:line", tc.text, err)
		}
		if len(vars) != tc.keep {
			t.Errorf("%q: kept %d vars, want %d", tc.text, len(vars), tc.keep)
		}
	}
}

// FuzzParseDotenv checks the parser never panics, reports lines inside the
// text, and round-trips values it writes itself.
func FuzzParseDotenv(f *testing.F) {
	for _, s := range []string{
		"A=1\n", "export B = 'x' # c\n", "C=\"a\\nb\"\n", "D=\"multi\nline\"\n", "E=`x`", "#c\n\n", "=x", "F=\"open",
		"G=a #b\r\nH=\"\\\\\"\n", "\uFEFFI=1",
	} {
		f.Add(s, "value")
	}
	f.Fuzz(func(t *testing.T, text, value string) {
		vars, err := ParseDotenv("f", text)
		lines := strings.Count(text, "\n") + 1
		if err != nil {
			var de *DotenvError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a DotenvError", err)
			}
			if de.Line < 1 || de.Line > lines {
				t.Fatalf("error line %d outside 1..%d", de.Line, lines)
			}
		}
		for _, v := range vars {
			if v.Line < 1 || v.Line > lines {
				t.Fatalf("var %q line %d outside 1..%d", v.Key, v.Line, lines)
			}
			if checkVarName(v.Key) != "" {
				t.Fatalf("invalid key %q accepted", v.Key)
			}
		}
		// A value written double-quoted with escapes reads back exactly.
		if !strings.ContainsRune(value, '\r') && validUTF8(value) {
			line := "K=\"" + escapeDouble(value) + "\"\n"
			got, err := Dotenv("f", line)
			if err != nil {
				t.Fatalf("round trip of %q: %v", value, err)
			}
			if got["K"] != value {
				t.Fatalf("round trip of %q gave %q", value, got["K"])
			}
		}
	})
}

func escapeDouble(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`)
	return r.Replace(s)
}

func validUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }
