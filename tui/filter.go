package tui

import (
	"fmt"
	"regexp"
	"strings"
)

// filter is a pane's filter: a case-insensitive regular expression; a
// leading "!" inverts it. Text that is not a valid expression is matched
// literally.
type filter struct {
	text   string
	re     *regexp.Regexp
	invert bool
}

// newFilter parses a filter. The error, if any, says the text was taken
// literally; the filter is usable either way.
func newFilter(text string) (filter, error) {
	f := filter{text: text}
	expr := text
	if strings.HasPrefix(expr, "!") {
		f.invert = true
		expr = expr[1:]
	}
	if expr == "" {
		return filter{}, nil
	}
	re, err := regexp.Compile("(?i)" + expr)
	if err != nil {
		f.re = regexp.MustCompile("(?i)" + regexp.QuoteMeta(expr))
		return f, fmt.Errorf("filter %q is not a valid regular expression, matching it literally: %w", expr, err)
	}
	f.re = re
	return f, nil
}

// active reports whether the filter hides anything.
func (f filter) active() bool { return f.re != nil }

// match reports whether s passes the filter.
func (f filter) match(s string) bool {
	if f.re == nil {
		return true
	}
	return f.re.MatchString(s) != f.invert
}
