package registry

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Kind is the type of a channel, the TYPE part of its name.
type Kind uint8

// The kinds of channel. The zero Kind is invalid.
const (
	// KindSubscription listens to postgres changes of an entity.
	KindSubscription Kind = iota + 1
	// KindPresence tracks who is present on an entity.
	KindPresence
	// KindBroadcast carries broadcasts about an entity.
	KindBroadcast
)

// Kinds returns the valid kinds in display order.
func Kinds() []Kind { return []Kind{KindSubscription, KindPresence, KindBroadcast} }

// String returns the name part of k: "subscription", "presence",
// "broadcast", or "Kind(n)" for an invalid kind.
func (k Kind) String() string {
	switch k {
	case KindSubscription:
		return "subscription"
	case KindPresence:
		return "presence"
	case KindBroadcast:
		return "broadcast"
	default:
		return fmt.Sprintf("Kind(%d)", uint8(k))
	}
}

// Valid reports whether k is one of the three kinds.
func (k Kind) Valid() bool { return k >= KindSubscription && k <= KindBroadcast }

// ParseKind parses "subscription", "presence" or "broadcast" (exactly, in
// lower case).
func ParseKind(s string) (Kind, error) {
	switch s {
	case "subscription":
		return KindSubscription, nil
	case "presence":
		return KindPresence, nil
	case "broadcast":
		return KindBroadcast, nil
	}
	return 0, fmt.Errorf("%w: type %q is not subscription, presence or broadcast", ErrInvalidName, s)
}

// MarshalText implements encoding.TextMarshaler.
func (k Kind) MarshalText() ([]byte, error) {
	if !k.Valid() {
		return nil, fmt.Errorf("registry: invalid kind %d", uint8(k))
	}
	return []byte(k.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *Kind) UnmarshalText(b []byte) error {
	v, err := ParseKind(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// ErrInvalidName is wrapped by every error about a malformed channel name.
var ErrInvalidName = errors.New("registry: invalid channel name")

// NameError describes what is wrong with a channel name. It wraps
// [ErrInvalidName].
type NameError struct {
	// Input is the name as given (for parsing) or as it would be built.
	Input string
	// Part is the offending part: "tenant", "type", "entity type",
	// "entity id", or "" for the name as a whole.
	Part string
	// Reason says what is wrong, e.g. "is empty", "contains ':'".
	Reason string
}

// Error implements error.
func (e *NameError) Error() string {
	if e.Part == "" {
		return fmt.Sprintf("invalid channel name %q: %s", e.Input, e.Reason)
	}
	return fmt.Sprintf("invalid channel name %q: %s %s", e.Input, e.Part, e.Reason)
}

// Unwrap returns [ErrInvalidName].
func (e *NameError) Unwrap() error { return ErrInvalidName }

// MaxTopicLen is the longest wire topic ("realtime:" + name) in bytes: the
// binary broadcast frames of serializer 2.0.0 store the topic's length in
// one byte.
const MaxTopicLen = 255

// TopicPrefix starts every wire topic.
const TopicPrefix = "realtime:"

// tenantWord starts a tenant-qualified name.
const tenantWord = "tenant"

// Name is a channel name, [tenant:TENANT_ID:]TYPE:ENTITY_TYPE:ENTITY_ID.
//
// Its parts never contain ':' and are never empty (Tenant may be empty,
// meaning no tenant), so two different Names never map to the same
// string. The zero Name is invalid. Name is comparable and usable as a map
// key; it encodes in JSON as its canonical string.
type Name struct {
	// Tenant is the tenant id, or "" for none.
	Tenant string
	// Kind is the channel type.
	Kind Kind
	// EntityType is the kind of entity ("contact", "project").
	EntityType string
	// EntityID identifies the entity ("123").
	EntityID string
}

// NewName builds and validates a name. tenant may be empty.
func NewName(kind Kind, entityType, entityID, tenant string) (Name, error) {
	n := Name{Tenant: tenant, Kind: kind, EntityType: entityType, EntityID: entityID}
	if err := n.Validate(); err != nil {
		return Name{}, err
	}
	return n, nil
}

// MustName is NewName for constants in tests and examples; it panics on an
// invalid name.
func MustName(kind Kind, entityType, entityID, tenant string) Name {
	n, err := NewName(kind, entityType, entityID, tenant)
	if err != nil {
		panic(err)
	}
	return n
}

// ParseName parses a canonical name: TYPE:ENTITY_TYPE:ENTITY_ID or
// tenant:TENANT_ID:TYPE:ENTITY_TYPE:ENTITY_ID. A leading "realtime:" (a
// wire topic) is accepted and removed.
func ParseName(s string) (Name, error) {
	in := s
	s = strings.TrimPrefix(s, TopicPrefix)
	parts := strings.Split(s, ":")
	var n Name
	switch len(parts) {
	case 3:
	case 5:
		if parts[0] != tenantWord {
			return Name{}, &NameError{Input: in, Reason: fmt.Sprintf("has 5 parts but does not start with %q (want tenant:ID:TYPE:ENTITY_TYPE:ENTITY_ID)", tenantWord)}
		}
		if parts[1] == "" {
			return Name{}, &NameError{Input: in, Part: "tenant", Reason: "is empty"}
		}
		n.Tenant = parts[1]
		parts = parts[2:]
	default:
		return Name{}, &NameError{Input: in, Reason: fmt.Sprintf("has %d ':'-separated parts (want TYPE:ENTITY_TYPE:ENTITY_ID or tenant:ID:TYPE:ENTITY_TYPE:ENTITY_ID; parts may not contain ':')", len(parts))}
	}
	k, err := ParseKind(parts[0])
	if err != nil {
		return Name{}, &NameError{Input: in, Part: "type", Reason: fmt.Sprintf("%q is not subscription, presence or broadcast", parts[0])}
	}
	n.Kind, n.EntityType, n.EntityID = k, parts[1], parts[2]
	if err := n.validate(in); err != nil {
		return Name{}, err
	}
	return n, nil
}

// Validate reports what is wrong with n, or nil: a kind out of range, an
// empty entity type or id, a part containing ':', white space, control
// characters or invalid UTF-8, or a topic longer than [MaxTopicLen].
func (n Name) Validate() error { return n.validate("") }

func (n Name) validate(in string) error {
	if in == "" {
		in = n.unchecked()
	}
	if !n.Kind.Valid() {
		return &NameError{Input: in, Part: "type", Reason: fmt.Sprintf("%s is not subscription, presence or broadcast", n.Kind)}
	}
	if n.Tenant != "" {
		if err := checkPart(in, "tenant", n.Tenant); err != nil {
			return err
		}
	}
	if err := checkPart(in, "entity type", n.EntityType); err != nil {
		return err
	}
	if err := checkPart(in, "entity id", n.EntityID); err != nil {
		return err
	}
	if l := len(TopicPrefix) + len(n.unchecked()); l > MaxTopicLen {
		return &NameError{Input: in, Reason: fmt.Sprintf("topic is %d bytes long (at most %d)", l, MaxTopicLen)}
	}
	return nil
}

func checkPart(in, part, v string) error {
	if v == "" {
		return &NameError{Input: in, Part: part, Reason: "is empty"}
	}
	if strings.IndexByte(v, ':') >= 0 {
		return &NameError{Input: in, Part: part, Reason: fmt.Sprintf("%q contains ':'", v)}
	}
	if !utf8.ValidString(v) {
		return &NameError{Input: in, Part: part, Reason: "is not valid UTF-8"}
	}
	for _, r := range v {
		if r <= ' ' || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == 0x2028 || r == 0x2029 || r == 0xa0 {
			return &NameError{Input: in, Part: part, Reason: fmt.Sprintf("%q contains white space or a control character (%U)", v, r)}
		}
	}
	return nil
}

// IsZero reports whether n is the zero Name.
func (n Name) IsZero() bool { return n == Name{} }

// String returns the canonical form of n, e.g. "presence:contact:123" or
// "tenant:abc:presence:contact:123". For an invalid name it returns the
// parts joined as given (which may not parse back).
func (n Name) String() string { return n.unchecked() }

func (n Name) unchecked() string {
	if n.IsZero() {
		return ""
	}
	var b strings.Builder
	b.Grow(len(n.Tenant) + len(n.EntityType) + len(n.EntityID) + 24)
	if n.Tenant != "" {
		b.WriteString(tenantWord)
		b.WriteByte(':')
		b.WriteString(n.Tenant)
		b.WriteByte(':')
	}
	b.WriteString(n.Kind.String())
	b.WriteByte(':')
	b.WriteString(n.EntityType)
	b.WriteByte(':')
	b.WriteString(n.EntityID)
	return b.String()
}

// Topic returns the wire topic: "realtime:" + n.String().
func (n Name) Topic() string { return TopicPrefix + n.String() }

// Entity returns "ENTITY_TYPE:ENTITY_ID".
func (n Name) Entity() string { return n.EntityType + ":" + n.EntityID }

// MarshalText implements encoding.TextMarshaler; the zero Name encodes as
// the empty string.
func (n Name) MarshalText() ([]byte, error) {
	if n.IsZero() {
		return []byte{}, nil
	}
	if err := n.Validate(); err != nil {
		return nil, err
	}
	return []byte(n.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler; the empty string
// decodes to the zero Name.
func (n *Name) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*n = Name{}
		return nil
	}
	v, err := ParseName(string(b))
	if err != nil {
		return err
	}
	*n = v
	return nil
}

// Compare orders names by tenant, then kind, entity type and entity id.
// It returns -1, 0 or +1.
func (n Name) Compare(o Name) int {
	if c := strings.Compare(n.Tenant, o.Tenant); c != 0 {
		return c
	}
	if n.Kind != o.Kind {
		if n.Kind < o.Kind {
			return -1
		}
		return 1
	}
	if c := strings.Compare(n.EntityType, o.EntityType); c != 0 {
		return c
	}
	return strings.Compare(n.EntityID, o.EntityID)
}
