package pgcdc

import (
	"context"
	"encoding/json"
	"errors"

	"rtm/realtime/server"
)

// Source adapts the feed to the embedded server's server.ChangeSource:
// use it as server.Config.Changes.
func (f *Feed) Source() server.ChangeSource { return source{f} }

type source struct{ f *Feed }

func (s source) SubscribeChanges(ctx context.Context, req server.ChangeRequest) (server.ChangeSubscription, error) {
	r := Request{Role: req.Role, Claims: json.RawMessage(req.Claims)}
	for _, b := range req.Bindings {
		r.Bindings = append(r.Bindings, Binding{ID: b.ID, Event: b.Event, Schema: b.Schema, Table: b.Table, Filter: b.Filter})
	}
	if req.Deliver != nil {
		r.Deliver = func(d Delivery) { req.Deliver(d.IDs, d.Data) }
	}
	if req.Status != nil {
		r.OnStatus = func(st Status) { req.Status(st.Kind == StatusReady, st.Message) }
	}
	sub, err := s.f.Subscribe(ctx, r)
	if err != nil {
		return nil, err
	}
	return sub, nil
}

// Unavailable is a ChangeSource for a server without a database: every
// postgres_changes subscription is refused with reason, so the channel
// says why no change arrives and how to get them (e.g. "PostgreSQL is
// not installed: apt-get install postgresql").
func Unavailable(reason string) server.ChangeSource { return unavailable(reason) }

type unavailable string

func (u unavailable) SubscribeChanges(context.Context, server.ChangeRequest) (server.ChangeSubscription, error) {
	return nil, errors.New(string(u))
}
