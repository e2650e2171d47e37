package external

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"

	"github.com/wallaroo-go/machida/internal/extframe"
)

// shrinkRequest is the JSON payload of extframe.MsgShrinkRequest.
type shrinkRequest struct {
	Query     bool     `json:"query"`
	NodeNames []string `json:"node_names"`
	NodeCount int      `json:"node_count"`
}

// shrinkQueryResponse is the JSON payload of extframe.MsgShrinkQueryResponse.
type shrinkQueryResponse struct {
	NodeNames []string `json:"node_names"`
	NodeCount int      `json:"node_count"`
}

// clusterStatus is the JSON payload of extframe.MsgClusterStatusQueryResponse.
type clusterStatus struct {
	WorkerCount        int      `json:"worker_count"`
	WorkerNames        []string `json:"worker_names"`
	ProcessingMessages bool     `json:"processing_messages"`
	// Unresponsive (beyond 0.6, only when not empty): the workers that
	// this one finds stuck or silent, each with why.
	Unresponsive []string `json:"unresponsive_workers,omitempty"`
}

// partitions is the JSON payload of extframe.MsgPartitionQueryResponse (T is a
// list of step ids) and extframe.MsgPartitionCountQueryResponse (T is a count).
type partitions[T any] struct {
	State     map[string]map[string]T `json:"state_partitions"`
	Stateless map[string]map[string]T `json:"stateless_partitions"`
}

// sourceIDs is the JSON payload of extframe.MsgSourceIDsQueryResponse.
type sourceIDs struct {
	SourceIDs []string `json:"source_ids"`
}

// handle carries out one request from peer and returns the reply, or
// ok == false when there is none.
func (s *Server) handle(f extframe.Frame, peer net.Addr) (id extframe.MsgID, reply []byte, ok bool) {
	st := s.status
	switch f.ID {
	case extframe.MsgPrint:
		s.log.Printf("$$$ ExternalPrint: %s $$$", f.Payload)
	case extframe.MsgRotateLog:
		worker := string(f.Payload)
		s.log.Printf("external channel: RotateLog for worker %q from %s", worker, peer)
		if err := st.RotateLog(worker); err != nil {
			s.log.Printf("external channel: RotateLog for worker %q not done: %v", worker, err)
		}
	case extframe.MsgCleanShutdown:
		reason := fmt.Sprintf("CleanShutdown from external channel client %s", peer)
		if len(f.Payload) > 0 {
			reason += ": " + string(f.Payload)
		}
		s.log.Printf("external channel: %s", reason)
		if ks, ok := st.(KeepStateShutdown); ok && string(f.Payload) == extframe.KeepStatePayload {
			ks.ShutdownKeepingState(reason)
		} else {
			st.Shutdown(reason)
		}
	case extframe.MsgShrinkRequest:
		return s.shrink(f.Payload, peer)
	case extframe.MsgPartitionQuery:
		return extframe.MsgPartitionQueryResponse, encode(partitions[[]string]{
			State:     byWorker(st.Worker(), st.StateSteps(), list),
			Stateless: byWorker(st.Worker(), st.StatelessSteps(), list),
		}), true
	case extframe.MsgPartitionCountQuery:
		return extframe.MsgPartitionCountQueryResponse, encode(partitions[int]{
			State:     byWorker(st.Worker(), st.StateSteps(), count),
			Stateless: byWorker(st.Worker(), st.StatelessSteps(), count),
		}), true
	case extframe.MsgClusterStatusQuery:
		if !st.Initialized() {
			return extframe.MsgClusterStatusQueryResponseNotInitialized, nil, true
		}
		workers, processing := st.Cluster()
		cs := clusterStatus{
			WorkerCount:        len(workers),
			WorkerNames:        list(workers),
			ProcessingMessages: processing,
		}
		if h, ok := st.(Health); ok {
			cs.Unresponsive = h.Unresponsive()
		}
		return extframe.MsgClusterStatusQueryResponse, encode(cs), true
	case extframe.MsgSourceIDsQuery:
		return extframe.MsgSourceIDsQueryResponse, encode(sourceIDs{list(st.SourceIDs())}), true
	case extframe.MsgReportStatus:
		s.log.Printf("external channel: ReportStatus %q from %s", f.Payload, peer)
		if string(f.Payload) == "boundary-count-status" {
			if b, ok := st.(Boundaries); ok {
				s.log.Printf("boundary count: %s", b.Boundaries())
			}
		}
	case extframe.MsgStateEntityQuery:
		return extframe.MsgStateEntityQueryResponse, stateEntitiesReply(s, list), true
	case extframe.MsgStateEntityCountQuery:
		return extframe.MsgStateEntityCountQueryResponse, stateEntitiesReply(s, count), true
	case extframe.MsgStatelessPartitionQuery:
		return extframe.MsgStatelessPartitionQueryResponse, encode(byWorker(st.Worker(), st.StatelessSteps(), list)), true
	case extframe.MsgStatelessPartitionCountQuery:
		return extframe.MsgStatelessPartitionCountQueryResponse, encode(byWorker(st.Worker(), st.StatelessSteps(), count)), true
	default:
		s.log.Printf("external channel: ignoring message %s (%d payload bytes) from %s: not a request", f.ID, len(f.Payload), peer)
	}
	return 0, nil, false
}

// shrink handles a extframe.MsgShrinkRequest payload.
func (s *Server) shrink(payload []byte, peer net.Addr) (extframe.MsgID, []byte, bool) {
	var req shrinkRequest
	if err := json.Unmarshal(payload, &req); err != nil {
		s.log.Printf("external channel: invalid ShrinkRequest %q from %s: %v", payload, peer, err)
		return extframe.MsgShrinkErrorResponse, []byte("Invalid shrink request: " + err.Error()), true
	}
	if req.Query {
		eligible := list(s.status.ShrinkQuery())
		return extframe.MsgShrinkQueryResponse, encode(shrinkQueryResponse{eligible, len(eligible)}), true
	}
	s.log.Printf("external channel: ShrinkRequest from %s: node_names %q, node_count %d", peer, req.NodeNames, req.NodeCount)
	return extframe.MsgShrinkErrorResponse, []byte(s.status.Shrink(list(req.NodeNames), req.NodeCount)), true
}

// stateEntitiesReply answers a state entity query with f applied to each
// stage's keys, or "{}" if the worker cannot tell.
func stateEntitiesReply[T any](s *Server, f func([]string) T) []byte {
	entities, err := s.status.StateEntities()
	if err != nil {
		s.log.Printf("external channel: state entity query: %v", err)
		return []byte("{}")
	}
	out := make(map[string]T, len(entities))
	for stage, keys := range entities {
		out[stage] = f(keys)
	}
	return encode(out)
}

// byWorker returns {stage: {worker: f(steps)}} for every stage.
func byWorker[T any](worker string, steps map[string][]string, f func([]string) T) map[string]map[string]T {
	out := make(map[string]map[string]T, len(steps))
	for stage, ids := range steps {
		out[stage] = map[string]T{worker: f(ids)}
	}
	return out
}

// list returns s, or an empty slice for nil so that JSON shows [].
func list(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// count returns the length of s.
func count(s []string) int { return len(s) }

// encode returns the JSON of v, without HTML escaping or a trailing
// newline. v is built from strings, numbers, bools, slices and maps only,
// so encoding cannot fail; a failure is an engine bug.
func encode(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("external channel: encode %T: %v", v, err))
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
