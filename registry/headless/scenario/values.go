package scenario

import (
	"encoding/json"
	"math"
	"rtm/registry"
	"rtm/registry/limits"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

func (p *parser) str(n *yaml.Node, key string) (string, error) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", p.errf(n.Line, "%s must be a text, not %s", key, kindName(n))
	}
	if n.Value == "" {
		return "", p.errf(n.Line, "%s is empty", key)
	}
	return n.Value, nil
}

func (p *parser) boolean(n *yaml.Node, key string) (bool, error) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		var b bool
		if err := n.Decode(&b); err == nil {
			return b, nil
		}
	}
	return false, p.errf(n.Line, "%s must be true or false, not %s", key, kindName(n))
}

func (p *parser) integer(n *yaml.Node, key string, least int) (int, error) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		v, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
		if err == nil && v >= int64(least) && v <= math.MaxInt32 {
			return int(v), nil
		}
	}
	return 0, p.errf(n.Line, "%s must be a whole number of at least %d, not %s", key, least, kindName(n))
}

func (p *parser) duration(n *yaml.Node, key string) (time.Duration, error) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return 0, p.errf(n.Line, "%s must be a duration such as 500ms, 2s or 1m, not %s", key, kindName(n))
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		return 0, p.errf(n.Line, "%s: %q is not a duration (write 500ms, 2s, 1m)", key, n.Value)
	}
	if d <= 0 {
		return 0, p.errf(n.Line, "%s must be more than 0, not %s", key, n.Value)
	}
	if d > 24*time.Hour {
		return 0, p.errf(n.Line, "%s %s is longer than a day", key, n.Value)
	}
	return d, nil
}

// percent reads a percentage (80%, 80, 12.5%) with limits.ParsePercent.
func (p *parser) percent(n *yaml.Node, key string) (float64, error) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return 0, p.errf(n.Line, "%s must be a percentage such as 80%%, not %s", key, kindName(n))
	}
	v, err := limits.ParsePercent(n.Value)
	if err != nil {
		return 0, p.errf(n.Line, "%s: %q is not a percentage from 0 to 1000 (write 80%%)", key, n.Value)
	}
	return v, nil
}

func (p *parser) policy(n *yaml.Node) (registry.Policy, string, error) {
	s, err := p.str(n, "policy")
	if err != nil {
		return nil, "", err
	}
	pol, err := registry.ParsePolicy(s)
	if err != nil {
		return nil, "", p.errf(n.Line, "policy %q: %v", s, err)
	}
	return pol, s, nil
}

func (p *parser) channel(n *yaml.Node) (registry.Name, error) {
	s, err := p.str(n, "channel")
	if err != nil {
		return registry.Name{}, err
	}
	name, err := registry.ParseName(s)
	if err != nil {
		return registry.Name{}, p.errf(n.Line, "channel %q: %v", s, err)
	}
	return name, nil
}

func (p *parser) user(n *yaml.Node, key string) (string, error) {
	s, err := p.str(n, key)
	if err != nil {
		return "", err
	}
	if strings.ContainsAny(s, "\r\n\t") || len(s) > 255 {
		return "", p.errf(n.Line, "%s %q must be one line of at most 255 bytes", key, s)
	}
	return s, nil
}

// object converts a YAML mapping to a JSON object.
func (p *parser) object(n *yaml.Node, key string) (json.RawMessage, error) {
	if n.Kind != yaml.MappingNode {
		return nil, p.errf(n.Line, "%s must be a mapping (a JSON object), not %s", key, kindName(n))
	}
	v, err := p.toJSON(n, key)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, p.errf(n.Line, "%s: %v", key, err)
	}
	return b, nil
}

func (p *parser) toJSON(n *yaml.Node, key string) (any, error) {
	switch n.Kind {
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode {
				return nil, p.errf(k.Line, "%s: keys must be texts", key)
			}
			if seen[k.Value] {
				return nil, p.errf(k.Line, "%s: key %q given twice", key, k.Value)
			}
			seen[k.Value] = true
			v, err := p.toJSON(n.Content[i+1], key)
			if err != nil {
				return nil, err
			}
			out[k.Value] = v
		}
		return out, nil
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := p.toJSON(c, key)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return nil, nil
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err != nil {
				return nil, p.errf(n.Line, "%s: %v", key, err)
			}
			return b, nil
		case "!!int", "!!float":
			var f float64
			if err := n.Decode(&f); err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
				return nil, p.errf(n.Line, "%s: %q is not a number JSON can hold", key, n.Value)
			}
			if n.Tag == "!!int" {
				if i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64); err == nil {
					return json.Number(strconv.FormatInt(i, 10)), nil
				}
			}
			return f, nil
		case "!!str":
			return n.Value, nil
		default:
			return nil, p.errf(n.Line, "%s: values tagged %s are not supported", key, n.Tag)
		}
	}
	return nil, p.errf(n.Line, "%s: unsupported value", key)
}
