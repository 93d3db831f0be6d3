package registry

import "encoding/json"

type socketInfoJSON SocketInfo

// MarshalJSON implements json.Marshaler; RTT is "rtt_ms" and RTTHistory
// "rtt_history_ms".
func (s SocketInfo) MarshalJSON() ([]byte, error) {
	hist := make([]float64, len(s.RTTHistory))
	for i, d := range s.RTTHistory {
		hist[i] = ms(d)
	}
	return json.Marshal(struct {
		socketInfoJSON
		RTT     float64   `json:"rtt_ms"`
		History []float64 `json:"rtt_history_ms"`
	}{socketInfoJSON(s), ms(s.RTT), hist})
}

// UnmarshalJSON implements json.Unmarshaler.
func (s *SocketInfo) UnmarshalJSON(b []byte) error {
	var v struct {
		socketInfoJSON
		RTT     float64   `json:"rtt_ms"`
		History []float64 `json:"rtt_history_ms"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = SocketInfo(v.socketInfoJSON)
	s.RTT = fromMS(v.RTT)
	s.RTTHistory = nil
	for _, h := range v.History {
		s.RTTHistory = append(s.RTTHistory, fromMS(h))
	}
	return nil
}

type metricsJSON Metrics

// MarshalJSON implements json.Marshaler; durations are "connected_for_ms"
// and "connected_total_ms".
func (m Metrics) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		metricsJSON
		For   float64 `json:"connected_for_ms"`
		Total float64 `json:"connected_total_ms"`
	}{metricsJSON(m), ms(m.ConnectedFor), ms(m.ConnectedTotal)})
}

// UnmarshalJSON implements json.Unmarshaler.
func (m *Metrics) UnmarshalJSON(b []byte) error {
	var v struct {
		metricsJSON
		For   float64 `json:"connected_for_ms"`
		Total float64 `json:"connected_total_ms"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*m = Metrics(v.metricsJSON)
	m.ConnectedFor, m.ConnectedTotal = fromMS(v.For), fromMS(v.Total)
	return nil
}

type faultStateJSON FaultState

// MarshalJSON implements json.Marshaler; Latency is "latency_ms".
func (f FaultState) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		faultStateJSON
		Latency float64 `json:"latency_ms"`
	}{faultStateJSON(f), ms(f.Latency)})
}

// UnmarshalJSON implements json.Unmarshaler.
func (f *FaultState) UnmarshalJSON(b []byte) error {
	var v struct {
		faultStateJSON
		Latency float64 `json:"latency_ms"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*f = FaultState(v.faultStateJSON)
	f.Latency = fromMS(v.Latency)
	return nil
}
