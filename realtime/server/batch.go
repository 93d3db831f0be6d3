package server

import (
	"bytes"
	"errors"
)

// maxJSONDepth is encoding/json's nesting limit. The batch scanner applies
// it so that it accepts exactly the bodies encoding/json accepts.
const maxJSONDepth = 10000

// errBatchSyntax reports a batch body that is not valid JSON.
var errBatchSyntax = errors.New("server: invalid JSON")

// batch is the outcome of scanning a batch body.
type batch struct {
	body []byte
	// bodyErr, when set, is the whole answer's "errors" object: the body
	// is not a JSON object, or its "messages" is missing, empty or not a
	// list.
	bodyErr map[string]any
	// start is the offset of the "messages" array in body.
	start int
	// total and failed count the messages and those with errors;
	// positional holds the first maxBatchErrors messages' errors, failing
	// the first maxBatchErrors failing messages'.
	total, failed       int
	positional, failing []itemErrs
	// refusedTopic and refusal are the first message the claims may not
	// broadcast to (see tenantRefusal), and why.
	refusedTopic, refusal string
}

// scanBatch validates a batch body {"messages":[{topic, event, payload,
// private?, id?}]} in one pass, without decoding any message into a map:
// its memory is a few hundred bytes beside the body. The answer is what
// decoding the body into maps would give: a body that is not valid JSON
// (encoding/json's syntax, nesting at most 10,000 deep) is refused as a
// whole; a repeated key takes its last value. claims, when not nil,
// checks the topics' tenants.
func scanBatch(body []byte, maxPayload int, claims *Claims) *batch {
	b := &batch{body: body}
	if err := b.scan(maxPayload, claims); err != nil {
		*b = batch{body: body, bodyErr: map[string]any{"body": []string{"must be a JSON object"}}}
		return b
	}
	return b
}

// each calls f with every message of a valid batch, in order.
func (b *batch) each(f func(restMessage)) {
	_ = walkItems(b.body, b.start, func(it *batchItem) { f(it.message()) })
}

func (b *batch) scan(maxPayload int, claims *Claims) error {
	d := b.body
	i := skipSpace(d, 0)
	if i >= len(d) || d[i] != '{' {
		return errBatchSyntax // not an object, or not JSON: one answer
	}
	found := false
	i = skipSpace(d, i+1)
	if i < len(d) && d[i] == '}' {
		i++
	} else {
		for {
			key, escaped, end, err := scanKey(d, i)
			if err != nil {
				return err
			}
			i = skipSpace(d, end)
			if keyIs(key, escaped, "messages") {
				found = true
				// A later "messages" replaces an earlier one.
				*b = batch{body: d, start: i, positional: b.positional[:0], failing: b.failing[:0]}
				if i < len(d) && d[i] == '[' {
					if i, err = b.scanItems(i, maxPayload, claims); err != nil {
						return err
					}
				} else {
					start := i
					if i, err = skipValue(d, i, 1); err != nil {
						return err
					}
					if isNull(d[start:i]) {
						b.bodyErr = map[string]any{"messages": []string{"can't be blank"}}
					} else {
						b.bodyErr = map[string]any{"messages": []string{"is invalid"}}
					}
				}
			} else if i, err = skipValue(d, i, 1); err != nil {
				return err
			}
			i = skipSpace(d, i)
			if i < len(d) && d[i] == ',' {
				i = skipSpace(d, i+1)
				continue
			}
			if i < len(d) && d[i] == '}' {
				i++
				break
			}
			return errBatchSyntax
		}
	}
	if skipSpace(d, i) != len(d) {
		return errBatchSyntax
	}
	switch {
	case !found:
		b.bodyErr = map[string]any{"messages": []string{"can't be blank"}}
	case b.bodyErr == nil && b.total == 0:
		b.bodyErr = map[string]any{"messages": []string{"can't be blank"}}
	}
	return nil
}

// scanItems checks the messages of the array at d[i] and returns the
// offset after it.
func (b *batch) scanItems(i, maxPayload int, claims *Claims) (int, error) {
	return walkItemsAt(b.body, i, func(it *batchItem) {
		e := it.check(maxPayload)
		e.index = b.total
		b.total++
		if len(b.positional) < maxBatchErrors {
			b.positional = append(b.positional, e)
		}
		if e.failed() {
			b.failed++
			if len(b.failing) < maxBatchErrors {
				b.failing = append(b.failing, e)
			}
			return
		}
		if claims != nil && b.failed == 0 && b.refusal == "" && mayBeTenantTopic(it.topic) {
			topic := decodeJSONString(it.topic)
			if why := tenantRefusal(topic, claims); why != "" {
				b.refusedTopic, b.refusal = topic, why
			}
		}
	})
}

// mayBeTenantTopic reports whether a raw topic string may decode to a
// tenant topic (see tenantOf), without decoding the plain ones: only an
// escape can hide the prefix (invalid UTF-8 becomes U+FFFD, never ASCII).
func mayBeTenantTopic(raw []byte) bool {
	const prefix = `"tenant:`
	if len(raw) >= len(prefix) && string(raw[:len(prefix)]) == prefix {
		return true
	}
	return bytes.IndexByte(raw, '\\') >= 0
}

// walkItems calls f for each item of the valid JSON array at d[i].
func walkItems(d []byte, i int, f func(*batchItem)) error {
	_, err := walkItemsAt(d, i, f)
	return err
}

// walkItemsAt validates the JSON array at d[i] (nested in one object),
// calls f with each item and returns the offset after the array.
func walkItemsAt(d []byte, i int, f func(*batchItem)) (int, error) {
	const depth = 2 // the body's object and the array
	i = skipSpace(d, i+1)
	if i < len(d) && d[i] == ']' {
		return i + 1, nil
	}
	var it batchItem
	for {
		var err error
		it = batchItem{}
		if i < len(d) && d[i] == '{' {
			if i, err = scanItem(d, i, depth, &it); err != nil {
				return i, err
			}
		} else if i, err = skipValue(d, i, depth); err != nil {
			return i, err
		}
		f(&it)
		i = skipSpace(d, i)
		if i < len(d) && d[i] == ',' {
			i = skipSpace(d, i+1)
			continue
		}
		if i < len(d) && d[i] == ']' {
			return i + 1, nil
		}
		return i, errBatchSyntax
	}
}

// scanItem reads the object at d[i], inside depth containers, into it.
func scanItem(d []byte, i, depth int, it *batchItem) (int, error) {
	if depth+1 > maxJSONDepth {
		return i, errBatchSyntax
	}
	it.object = true
	i = skipSpace(d, i+1)
	if i < len(d) && d[i] == '}' {
		return i + 1, nil
	}
	for {
		keyStart := i
		key, escaped, end, err := scanKey(d, i)
		if err != nil {
			return i, err
		}
		i = skipSpace(d, end)
		start := i
		if i, err = skipValue(d, i, depth+1); err != nil {
			return i, err
		}
		v := d[start:i:i]
		name := key
		if escaped {
			name = []byte(decodeJSONString(d[keyStart : keyStart+len(key)+2]))
		}
		switch string(name) {
		case "topic":
			it.topic = v
		case "event":
			it.event = v
		case "payload":
			it.payload = v
		case "private":
			it.private = v
		case "id":
			it.id = v
		}
		i = skipSpace(d, i)
		if i < len(d) && d[i] == ',' {
			i = skipSpace(d, i+1)
			continue
		}
		if i < len(d) && d[i] == '}' {
			return i + 1, nil
		}
		return i, errBatchSyntax
	}
}

// keyIs reports whether a raw object key (without quotes) decodes to
// name.
func keyIs(raw []byte, escaped bool, name string) bool {
	if !escaped {
		return string(raw) == name
	}
	q := make([]byte, 0, len(raw)+2)
	q = append(append(append(q, '"'), raw...), '"')
	return decodeJSONString(q) == name
}

// scanKey reads an object key and its colon at d[i]: the key's raw
// content, whether it holds escapes, and the offset after the colon.
func scanKey(d []byte, i int) (key []byte, escaped bool, end int, err error) {
	if i >= len(d) || d[i] != '"' {
		return nil, false, i, errBatchSyntax
	}
	end, escaped, err = scanString(d, i)
	if err != nil {
		return nil, false, end, err
	}
	key = d[i+1 : end-1]
	end = skipSpace(d, end)
	if end >= len(d) || d[end] != ':' {
		return nil, false, end, errBatchSyntax
	}
	return key, escaped, skipSpace(d, end+1), nil
}

func skipSpace(d []byte, i int) int {
	for i < len(d) && (d[i] == ' ' || d[i] == '\t' || d[i] == '\n' || d[i] == '\r') {
		i++
	}
	return i
}

// scanString reads the string at d[i] (a '"'), validated as encoding/json
// does (escapes and control characters; any other byte is taken), and
// returns the offset after it and whether it holds escapes.
func scanString(d []byte, i int) (end int, escaped bool, err error) {
	for i++; i < len(d); i++ {
		switch c := d[i]; {
		case c == '"':
			return i + 1, escaped, nil
		case c == '\\':
			escaped = true
			i++
			if i >= len(d) {
				return i, escaped, errBatchSyntax
			}
			switch d[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(d)-i < 5 || !isHex(d[i+1]) || !isHex(d[i+2]) || !isHex(d[i+3]) || !isHex(d[i+4]) {
					return i, escaped, errBatchSyntax
				}
				i += 4
			default:
				return i, escaped, errBatchSyntax
			}
		case c < 0x20:
			return i, escaped, errBatchSyntax
		}
	}
	return i, escaped, errBatchSyntax
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// scanNumber reads the number at d[i] in JSON's grammar.
func scanNumber(d []byte, i int) (int, error) {
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && '1' <= d[i] && d[i] <= '9':
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	default:
		return i, errBatchSyntax
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || !isDigit(d[i]) {
			return i, errBatchSyntax
		}
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || !isDigit(d[i]) {
			return i, errBatchSyntax
		}
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	}
	return i, nil
}

// skipValue validates the JSON value at d[i], nested in depth containers,
// and returns the offset after it. It walks nested values with a stack of
// one byte per level, never recursing.
func skipValue(d []byte, i, depth int) (int, error) {
	var stackBuf [64]byte
	stack := stackBuf[:0] // the containers opened here: '{' or '['
	for {
		// A value starts at i.
		if i >= len(d) {
			return i, errBatchSyntax
		}
		var err error
		switch c := d[i]; {
		case c == '{' || c == '[':
			if depth+len(stack)+1 > maxJSONDepth {
				return i, errBatchSyntax
			}
			stack = append(stack, c)
			i = skipSpace(d, i+1)
			if i < len(d) && d[i] == c+2 { // '}' is '{'+2, ']' is '['+2
				stack = stack[:len(stack)-1]
				i++
				break
			}
			if c == '{' {
				if _, _, i, err = scanKey(d, i); err != nil {
					return i, err
				}
			}
			continue
		case c == '"':
			i, _, err = scanString(d, i)
		case c == 't':
			i, err = scanLiteral(d, i, "true")
		case c == 'f':
			i, err = scanLiteral(d, i, "false")
		case c == 'n':
			i, err = scanLiteral(d, i, "null")
		case c == '-' || isDigit(c):
			i, err = scanNumber(d, i)
		default:
			return i, errBatchSyntax
		}
		if err != nil {
			return i, err
		}
		// A value ended: close containers until one takes another value.
		for {
			if len(stack) == 0 {
				return i, nil
			}
			i = skipSpace(d, i)
			if i >= len(d) {
				return i, errBatchSyntax
			}
			top := stack[len(stack)-1]
			if d[i] == top+2 {
				stack = stack[:len(stack)-1]
				i++
				continue
			}
			if d[i] != ',' {
				return i, errBatchSyntax
			}
			i = skipSpace(d, i+1)
			if top == '{' {
				if _, _, i, err = scanKey(d, i); err != nil {
					return i, err
				}
			}
			break
		}
	}
}

func scanLiteral(d []byte, i int, word string) (int, error) {
	if len(d)-i < len(word) || string(d[i:i+len(word)]) != word {
		return i, errBatchSyntax
	}
	return i + len(word), nil
}
