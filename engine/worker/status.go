package worker

import (
	"fmt"
	"sort"
	"sync/atomic"

	"github.com/wallaroo-go/machida/engine/external"
)

// Queries answers the external channel's questions that only the
// processor can (the keys of the state it holds). Safe for concurrent use.
type Queries interface {
	// StateEntities returns the keys held here, per state stage id.
	StateEntities() (map[string][]string, error)
}

// Stages names the application's stages for the external channel: the
// decimal ids of its state and stateless stages.
type Stages struct {
	State     []string
	Stateless []string
}

// status implements external.Status for a single worker: its cluster is
// itself. The atomics are written by Run and read by the channel's
// connection goroutines.
type status struct {
	cfg         *Config
	initialized atomic.Bool
	shutdown    func(reason string)
}

var _ external.Status = (*status)(nil)

func (s *status) Initialized() bool { return s.initialized.Load() }

func (s *status) Cluster() ([]string, bool) {
	return []string{s.cfg.Name}, s.initialized.Load()
}

func (s *status) Worker() string { return s.cfg.Name }

// StateSteps lists, per state stage, the partitions this worker owns: a
// state stage keeps its keys per partition.
func (s *status) StateSteps() map[string][]string {
	out := make(map[string][]string, len(s.cfg.Stages.State))
	for _, st := range s.cfg.Stages.State {
		out[st] = append([]string(nil), s.cfg.Partitions...)
	}
	return out
}

// StatelessSteps lists one step per stateless stage: one interpreter runs
// every stateless stage of this worker.
func (s *status) StatelessSteps() map[string][]string {
	out := make(map[string][]string, len(s.cfg.Stages.Stateless))
	for _, st := range s.cfg.Stages.Stateless {
		out[st] = []string{st + "0"}
	}
	return out
}

// SourceIDs lists the connection slots of every TCP source (MaxConns
// each) and one id per generator source.
func (s *status) SourceIDs() []string {
	var ids []string
	for i, sc := range s.cfg.Sources {
		slots := 1
		if !sc.Generator {
			slots = sc.maxConns()
		}
		for j := 0; j < slots; j++ {
			ids = append(ids, fmt.Sprintf("%d%03d", i+1, j))
		}
	}
	return ids
}

func (s *status) StateEntities() (map[string][]string, error) {
	out := make(map[string][]string, len(s.cfg.Stages.State))
	for _, st := range s.cfg.Stages.State {
		out[st] = []string{}
	}
	if s.cfg.Queries == nil {
		return out, nil
	}
	got, err := s.cfg.Queries.StateEntities()
	if err != nil {
		return nil, err
	}
	for st, keys := range got {
		keys = append([]string(nil), keys...)
		sort.Strings(keys)
		out[st] = keys
	}
	return out, nil
}

func (s *status) Shutdown(reason string) { s.shutdown(reason) }

// ShrinkQuery: a single worker is the initializer, which hosts the sources
// and cannot leave, so no worker is eligible.
func (s *status) ShrinkQuery() []string { return []string{} }

func (s *status) Shrink(names []string, count int) string {
	if len(names) == 0 && count == 0 {
		return "Cannot shrink 0 workers!"
	}
	return "Invalid shrink targets!"
}

// RotateLog is not supported: this worker keeps no event log.
func (s *status) RotateLog(string) bool { return false }
