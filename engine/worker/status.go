package worker

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wallaroo-go/machida/engine/cluster"
	"github.com/wallaroo-go/machida/engine/external"
	"github.com/wallaroo-go/machida/engine/routing"
	"github.com/wallaroo-go/machida/engine/topology"
)

// Queries answers the external channel's questions that only the
// processor can (the keys of the state it holds). Safe for concurrent use.
type Queries interface {
	// StateEntities returns the keys held here, per state stage.
	StateEntities() (map[topology.StepID][]string, error)
}

// Migrator moves the state of one partition of a state stage between
// workers (a grow or a shrink); each method is safe from any goroutine.
type Migrator interface {
	ExportPartitions(step topology.StepID, ps []routing.PartitionID, budget time.Duration) ([][]byte, error)
	ImportPartitions(steps []topology.StepID, ps []routing.PartitionID, datas [][]byte, budget time.Duration) (int, error)
	DropPartitions(step topology.StepID, ps []routing.PartitionID) error
}

// Stages lists the application's state and stateless stages; the
// external channel shows each by its decimal id (StepID.Number).
type Stages struct {
	State     []topology.StepID
	Stateless []topology.StepID
}

// status implements external.Status for a single worker: its cluster is
// itself. The atomics are written by Run and read by the channel's
// connection goroutines.
type status struct {
	cfg         *Config
	initialized atomic.Bool
	shutdown    func(reason string)
	member      atomic.Pointer[cluster.Member] // set once the cluster is formed
	memberCtx   func() context.Context         // the member's handlers' context (a shrink runs under it)
	keep        atomic.Bool                    // a stop that keeps the checkpoint files was asked here
	res         *resilience                    // nil without resilience
}

var _ external.Status = (*status)(nil)

func (s *status) Initialized() bool { return s.initialized.Load() }

// Cluster answers cluster-status: the workers, and whether this worker
// processes messages as usual (processing_messages). It does not before
// it is ready, while it takes part in a grow or shrink, and, during a
// rollback to a checkpoint, on the initializer (which holds every source
// then) and on the restarted worker until the rollback is done: 0.6
// stopped its world then, and tools wait for processing_messages to come
// back to true on every worker.
func (s *status) Cluster() ([]string, bool) {
	steady := s.initialized.Load() && !s.res.holding()
	if m := s.member.Load(); m != nil {
		return m.Workers(), steady && m.Started() && !m.Rescaling()
	}
	return []string{s.cfg.Name}, steady
}

func (s *status) Worker() string { return s.cfg.Name }

// Boundaries implements external.Boundaries: this worker's data links to
// its peers, for the boundary-count-status report.
func (s *status) Boundaries() string {
	m := s.member.Load()
	if m == nil {
		return "0 data links (a single worker)"
	}
	links := m.Links()
	parts := make([]string, 0, len(links))
	for _, l := range links {
		state := "up"
		if !l.Up {
			state = "down"
		}
		parts = append(parts, fmt.Sprintf("%s %s, %d batches sent, %d unacknowledged", l.Peer, state, l.Sent, l.Pending))
	}
	return fmt.Sprintf("%d data links: %s", len(links), strings.Join(parts, "; "))
}

// Unresponsive implements external.Health: the peers this worker finds
// stuck or silent.
func (s *status) Unresponsive() []string {
	if m := s.member.Load(); m != nil {
		return m.Unresponsive()
	}
	return nil
}

// StepsPerStage is how many steps each state and stateless stage reports
// on this worker: Wallaroo 0.6 runs `parallelism` (default 10) step actors
// per stage on every worker (spec 2.3), and tools and tests expect that
// count from the partition queries.
const StepsPerStage = 10

// stepIDs returns the StepsPerStage step ids of a stage on the worker
// named worker: the stage's decimal id, ten digits of the worker's name
// (its CRC-32), and one more digit, 0 to 9. They are decimal, stable
// across queries and runs, and distinct across the cluster, as 0.6's
// step ids were (every worker ran its own steps): the last digit tells
// the steps of a stage on a worker apart, the ten before it the workers
// (a clash needs two names of one cluster with the same CRC-32), the
// rest is the stage id, and stage ids are distinct.
func stepIDs(stage, worker string) []string {
	prefix := fmt.Sprintf("%s%010d", stage, crc32.ChecksumIEEE([]byte(worker)))
	ids := make([]string, StepsPerStage)
	for i := range ids {
		ids[i] = prefix + strconv.Itoa(i)
	}
	return ids
}

// stageSteps maps every stage (by its decimal id) to its step ids on the
// worker named worker.
func stageSteps(stages []topology.StepID, worker string) map[string][]string {
	out := make(map[string][]string, len(stages))
	for _, st := range stages {
		out[st.Number()] = stepIDs(st.Number(), worker)
	}
	return out
}

// StateSteps lists, per state stage, the StepsPerStage steps 0.6 would
// run on this worker. (Keys are kept per partition; steps are what the
// partition queries report.)
func (s *status) StateSteps() map[string][]string {
	return stageSteps(s.cfg.Stages.State, s.cfg.Name)
}

// StatelessSteps lists, per stateless stage, its StepsPerStage steps.
func (s *status) StatelessSteps() map[string][]string {
	return stageSteps(s.cfg.Stages.Stateless, s.cfg.Name)
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
		out[st.Number()] = []string{}
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
		out[st.Number()] = keys
	}
	return out, nil
}

func (s *status) Shutdown(reason string) { s.shutdown(reason) }

// ShutdownKeepingState stops the cluster like Shutdown, but a last
// checkpoint is taken and the files stay (cluster_shutdown --keep-state).
func (s *status) ShutdownKeepingState(reason string) {
	if s.cfg.Resilience == nil {
		s.cfg.Log.Warn("asked to stop keeping the state, but this worker runs without --run-with-resilience: there is no state on disk to keep; stopping")
	} else {
		s.keep.Store(true)
		if m := s.member.Load(); m != nil {
			m.SetKeepState()
		}
	}
	s.shutdown(reason + " (keeping the state)")
}

// ShrinkQuery lists the workers a shrink asked of this worker may
// remove: none on a single worker (the initializer hosts the sources and
// cannot leave).
func (s *status) ShrinkQuery() []string {
	if m := s.member.Load(); m != nil {
		return m.ShrinkQuery()
	}
	return []string{}
}

// Shrink asks the cluster to shrink (spec 3.5) and returns 0.6's reply.
func (s *status) Shrink(names []string, count int) string {
	if m := s.member.Load(); m != nil {
		ctx := context.Background()
		if s.memberCtx != nil {
			ctx = s.memberCtx()
		}
		return m.Shrink(ctx, names, count)
	}
	if len(names) == 0 && count == 0 {
		return "Cannot shrink 0 workers!"
	}
	return "Invalid shrink targets!"
}

// RotateLog rotates this worker's event log (spec 4.6), or passes the
// request on to the named worker of the cluster.
func (s *status) RotateLog(worker string) error {
	if worker != s.cfg.Name {
		if m := s.member.Load(); m != nil {
			return m.RotateLog(worker)
		}
		return fmt.Errorf("this worker is %q, and it is in no cluster", s.cfg.Name)
	}
	if s.res == nil {
		return errors.New("this worker runs without --run-with-resilience (it keeps no event log)")
	}
	if !s.res.cfg.LogRotation {
		return errors.New("this worker runs without --log-rotation")
	}
	// Off the channel's goroutine: a rotation waits for a checkpoint
	// write under way.
	go func() {
		if err := s.res.rotate("RotateLog from the external channel"); err != nil {
			s.res.warn("RotateLog not done", "err", err)
		}
	}()
	return nil
}
