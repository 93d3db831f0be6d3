package registry_test

import (
	"rtm/realtime"
	"rtm/registry"
)

// Accessors of the presence bounds the hostile tests check, so that the
// same tests can be run against a manager without them (with accessors
// that report what it has) to show that they fail there.

const defaultMaxMembers = realtime.DefaultPresenceMaxMembers

func presenceOptions(members int) registry.Options {
	return registry.Options{PresenceLimits: realtime.PresenceLimits{MaxMembers: members}}
}

func infoTruncation(info registry.ChannelInfo) *registry.PresenceTruncation {
	return info.PresenceTruncated
}

func eventTruncation(e registry.PresenceEvent) *registry.PresenceTruncation { return e.Truncated }
