//go:build !linux

package tarpit

import "errors"

func synListener() (string, func(), error) { return "", nil, errUnsupported }

var errUnsupported = errors.New("a full accept queue needs Linux")
