package target

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrDotenv is wrapped by every .env syntax error.
var ErrDotenv = errors.New("target: .env syntax error")

// DotenvError is a syntax error in a .env file, with its line.
type DotenvError struct {
	// File is the file name ("" when parsing a string).
	File string
	// Line is the 1-based line of the error.
	Line int
	// Reason says what is wrong.
	Reason string
}

// Error implements error.
func (e *DotenvError) Error() string {
	if e.File == "" {
		return fmt.Sprintf(".env line %d: %s", e.Line, e.Reason)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason)
}

// Unwrap returns [ErrDotenv].
func (e *DotenvError) Unwrap() error { return ErrDotenv }

// Var is one assignment of a .env file.
type Var struct {
	// Key and Value are the variable's name and its unquoted value.
	Key, Value string
	// Line is the 1-based line where the assignment starts.
	Line int
}

// ParseDotenv parses the text of a .env file as the dotenv libraries of
// Node (dotenv, Next.js, Vite, Expo) read it:
//
//   - KEY=value lines, an optional "export " before KEY; blank lines and
//     lines starting with # are ignored; a UTF-8 BOM and CRLF line ends
//     are accepted;
//   - KEY is letters, digits, '_', '.' and '-', not starting with a digit;
//   - an unquoted value is trimmed and ends at " #" (an inline comment);
//   - a value in single quotes is literal, in backquotes too; a value in
//     double quotes expands \n, \r, \t, \" and \\; quoted values may span
//     lines and may be followed by a comment;
//   - a later assignment of the same key wins (see [Dotenv]).
//
// It never panics. On a syntax error it returns the variables read so far
// and a *DotenvError naming the line; file names the file in errors.
func ParseDotenv(file, text string) ([]Var, error) {
	text = strings.TrimPrefix(text, "\uFEFF")
	if !utf8.ValidString(text) {
		return nil, &DotenvError{File: file, Line: 1, Reason: "the file is not valid UTF-8"}
	}
	var vars []Var
	line := 1
	for len(text) > 0 {
		// Take one logical line (a quoted value may extend it).
		start := line
		l, rest := cutLine(text)
		trimmed := strings.TrimSpace(l)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			text = rest
			line++
			continue
		}
		body := strings.TrimLeft(l, " \t")
		if after, ok := strings.CutPrefix(body, "export "); ok {
			body = strings.TrimLeft(after, " \t")
		}
		eq := strings.IndexByte(body, '=')
		if eq < 0 {
			return vars, &DotenvError{File: file, Line: start, Reason: fmt.Sprintf("%q is not KEY=value", clip(trimmed))}
		}
		key := strings.TrimRight(body[:eq], " \t")
		if err := checkVarName(key); err != "" {
			return vars, &DotenvError{File: file, Line: start, Reason: err}
		}
		val := strings.TrimLeft(body[eq+1:], " \t")
		if val != "" && (val[0] == '"' || val[0] == '\'' || val[0] == '`') {
			// The quoted value may run past this line: search the whole
			// remaining text from the opening quote.
			// val is a suffix of l, and l a prefix of text.
			q := val[0]
			from := len(l) - len(val) + 1
			end := closingQuote(text[from:], q)
			if end < 0 {
				return vars, &DotenvError{File: file, Line: start, Reason: fmt.Sprintf("value of %s has no closing %c", key, q)}
			}
			raw := text[from : from+end]
			after := text[from+end+1:]
			tail, rest2 := cutLine(after)
			if t := strings.TrimSpace(tail); t != "" && !strings.HasPrefix(t, "#") {
				return vars, &DotenvError{File: file, Line: start + strings.Count(raw, "\n"), Reason: fmt.Sprintf("unexpected %q after the quoted value of %s", clip(t), key)}
			}
			value := raw
			if q == '"' {
				value = unescape(raw)
			}
			value = strings.ReplaceAll(value, "\r\n", "\n")
			vars = append(vars, Var{Key: key, Value: value, Line: start})
			line += strings.Count(raw, "\n") + 1
			text = rest2
			continue
		}
		if i := strings.Index(val, " #"); i >= 0 {
			val = val[:i]
		} else if i := strings.Index(val, "\t#"); i >= 0 {
			val = val[:i]
		}
		vars = append(vars, Var{Key: key, Value: strings.TrimSpace(val), Line: start})
		text = rest
		line++
	}
	return vars, nil
}

// Dotenv parses text like [ParseDotenv] and returns the variables as a
// map, later assignments winning.
func Dotenv(file, text string) (map[string]string, error) {
	vars, err := ParseDotenv(file, text)
	m := make(map[string]string, len(vars))
	for _, v := range vars {
		m[v.Key] = v.Value
	}
	return m, err
}

// cutLine splits text after its first line end ("\n" or "\r\n"); the line
// is returned without it.
func cutLine(text string) (line, rest string) {
	i := strings.IndexByte(text, '\n')
	if i < 0 {
		return strings.TrimSuffix(text, "\r"), ""
	}
	return strings.TrimSuffix(text[:i], "\r"), text[i+1:]
}

// closingQuote returns the index of the quote q that closes a value
// starting at s (after the opening quote), or -1. In double quotes a
// backslash escapes the next character.
func closingQuote(s string, q byte) int {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if q == '"' {
				i++
			}
		case q:
			return i
		}
	}
	return -1
}

// unescape expands the escapes of a double-quoted value.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case '"', '\\', '$':
			b.WriteByte(s[i])
		default:
			b.WriteByte('\\')
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// checkVarName returns why key is not a valid variable name, or "".
func checkVarName(key string) string {
	if key == "" {
		return "empty variable name before '='"
	}
	for i, r := range key {
		ok := r == '_' || r == '.' || r == '-' || (r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z') || (i > 0 && r >= '0' && r <= '9')
		if !ok {
			return fmt.Sprintf("invalid variable name %q", clip(key))
		}
	}
	return ""
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) <= 40 {
		return s
	}
	cut := 40
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
