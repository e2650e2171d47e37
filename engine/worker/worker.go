package worker

import (
	"context"
	"errors"
	"fmt"
	"github.com/wallaroo-go/machida/engine/barrier"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wallaroo-go/machida/engine/checkpoint"
	"github.com/wallaroo-go/machida/engine/cluster"
	"github.com/wallaroo-go/machida/engine/external"
	"github.com/wallaroo-go/machida/engine/metrics"
	"github.com/wallaroo-go/machida/engine/routing"
	"github.com/wallaroo-go/machida/engine/sink"
	"github.com/wallaroo-go/machida/engine/source"
	"github.com/wallaroo-go/machida/engine/topology"
	"github.com/wallaroo-go/machida/engine/work"
	"github.com/wallaroo-go/machida/internal/linkauth"
)

// Processor runs the application's segments: see work.Processor.
type Processor = work.Processor

// SourceConfig describes one source: a TCP listener, or (Generator) a
// generator whose messages the processor makes itself.
type SourceConfig struct {
	Name       string // pipeline name
	Generator  bool   // a GenSourceConfig source; the fields below are unused
	Addr       string
	HeaderLen  int
	Length     source.LengthFunc
	MaxPayload int
	// Raw: the processor frames this source's bytes itself (a decoder
	// with its own payload_length), see source.Batch.Raw.
	Raw bool
}

// SinkConfig describes one TCP sink.
type SinkConfig struct {
	Name string // the sink's own name (a sink connector's), or empty
	Addr string
}

// label names the sink in log lines: its address, after its name if it
// has one.
func (c SinkConfig) label() string {
	if c.Name == "" {
		return c.Addr
	}
	return c.Name + " (" + c.Addr + ")"
}

// Config is everything Run needs.
type Config struct {
	Sources   []SourceConfig
	Sinks     []SinkConfig
	Processor Processor
	// Console receives the lines operators and tools wait for (stdout).
	Console io.Writer
	// Log receives diagnostics (stderr).
	Log *slog.Logger
	// Ownership, if set, is installed before the first item is processed
	// (partitions marked as owned by another destination loop back into
	// this processor when Route is nil: the single-worker test hook).
	Ownership *work.Ownership
	// Route sends envelopes bound for other destinations; nil loops them
	// back (one worker).
	Route func(ctx context.Context, e work.Envelopes) error
	// QueueBatches bounds the items waiting for the processor (default 64).
	QueueBatches int
	// QueueBytes bounds the bytes of frames waiting for or in the
	// processor (default 8 MiB).
	QueueBytes int
	// MaxBatchesPerCall bounds how many queued batches one Process call
	// takes (default 64).
	MaxBatchesPerCall int
	// ShutdownTimeout bounds how long a clean stop may take to process
	// what the sources had queued and flush the sinks (default 5s).
	ShutdownTimeout time.Duration
	// Name is the worker's name in the cluster ("initializer").
	Name string
	// External is the address of the external (operator) channel; empty
	// for none.
	External string
	// ExternalListener, if set, is External bound already (by the
	// process, before its slow start-up: a connection made meanwhile
	// waits in the backlog instead of being refused).
	ExternalListener net.Listener
	// ExternalGuard, if set, makes operator tools authenticate on the
	// external channel (see package linkauth).
	ExternalGuard *linkauth.Guard
	// Stages describes the application for the external channel's
	// queries.
	Stages Stages
	// Queries answers the state-entity queries; may be nil.
	Queries Queries
	// OnReady, if set, is called once the worker is serving.
	OnReady func()
	// Cluster, if set, makes this worker a member of a cluster (see
	// package cluster): Run forms the cluster before it serves, installs
	// the ownership table of the formed cluster (Partitions partitions
	// spread over its workers), routes envelopes over the data links
	// and stops the whole cluster when this worker is told to stop.
	Cluster    *cluster.Config
	Partitions int
	// Busy reports how long the user code running now has run (0 when
	// none does); cluster heartbeats carry it.
	Busy func() time.Duration
	// OnStopDeadline, if set, is called (on its own goroutine) when a stop
	// has not finished within ShutdownTimeout: the host uses it to
	// interrupt user code that does not return.
	OnStopDeadline func()
	// App is the application's name (build_application's).
	App string
	// OnFormed, if set, is called once this cluster member knows its
	// cluster, with the cluster's metrics address (a joiner learns it
	// from the initializer).
	OnFormed func(metrics string)
	// Metrics, if set, receives the counters and gauges of the edges
	// (sink bytes and reconnects, source connections closed for errors,
	// queue depths, data link reconnects and replays); the processor
	// records its histograms into it on its own.
	Metrics *metrics.Registry
	// Resilience, if set, turns on checkpoints and recovery
	// (--run-with-resilience); the processor must be a Checkpointer.
	Resilience *Resilience
}

func (c SourceConfig) maxConns() int { return source.DefaultMaxConns }

func (c *Config) setDefaults() {
	if c.Name == "" {
		c.Name = "initializer"
	}
	if c.QueueBatches <= 0 {
		c.QueueBatches = 64
	}
	if c.MaxBatchesPerCall <= 0 {
		c.MaxBatchesPerCall = 64
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 5 * time.Second
	}
	if c.QueueBytes <= 0 {
		c.QueueBytes = 8 << 20
	}
	if c.Console == nil {
		c.Console = io.Discard
	}
	if c.Log == nil {
		c.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// ErrListen wraps a failure to bind a listener of the worker's (a source,
// the control, data or external channel): a user configuration error,
// the address is taken or invalid.
var ErrListen = errors.New("listener")

// Run runs the worker until ctx is cancelled (clean stop, nil error) or the
// processor fails (its error is returned, after what was already produced
// has been flushed to the sinks).
//
// A clean stop first stops the sources, then processes what they had
// queued and flushes the sinks, all within cfg.ShutdownTimeout; what is
// left after that is dropped with a log line, so a stuck sink or slow user
// code cannot keep the worker from exiting.
func Run(ctx context.Context, cfg Config) error {
	cfg.setDefaults()
	// The edge packages (sources, sinks, external channel) log through a
	// *log.Logger that writes into the same slog handler.
	plog := slog.NewLogLogger(cfg.Log.Handler(), slog.LevelInfo)
	warnLog := slog.NewLogLogger(cfg.Log.Handler(), slog.LevelWarn)
	// Bind every source's port first, so a port that is taken is
	// reported before anything else listens or connects; the sources
	// listen only at INIT PHASE II, so a client that connects before the
	// worker is ready is refused (spec 1.5).
	q := work.NewQueue(cfg.QueueBatches, cfg.QueueBytes)
	reg := cfg.Metrics
	reg.Gauge(metrics.QueueDepth, func() float64 { l, _ := q.Depth(); return float64(l) }, "lane", "sources")
	reg.Gauge(metrics.QueueDepth, func() float64 { _, p := q.Depth(); return float64(p) }, "lane", "peers")
	var sources []*source.TCP
	var gens []int
	closeSources := func() {
		for _, s := range sources {
			s.Close()
		}
	}
	for i, sc := range cfg.Sources {
		if sc.Generator {
			gens = append(gens, i)
			continue
		}
		closedErr := reg.Counter(metrics.FramingErrors, "pipeline", sc.Name)
		s, err := source.NewTCP(source.TCPConfig{
			Name: sc.Name, Index: i, Addr: sc.Addr, HeaderLen: sc.HeaderLen,
			Length: sc.Length, MaxPayload: sc.MaxPayload, Raw: sc.Raw,
			OnClosed: closedErr.Inc, ClosedLog: warnLog,
		}, q, plog)
		if err == nil {
			if err = s.Bind(); err != nil {
				err = fmt.Errorf("%w: %w", ErrListen, err)
			}
		}
		if err != nil { // a NewTCP error (source.ErrConfig) is not a listen error
			closeSources()
			return err
		}
		sources = append(sources, s)
	}
	var member *cluster.Member
	var shutdownMember func(reason string)
	// stopWhy is why this worker's cluster stops, for the others and the
	// log: the first reason a stop was asked for (a worker's failure
	// names it and its error), else stoppedAsked.
	var stopWhy atomic.Pointer[string]
	// workerFailed: some worker stopped on an error, also one that
	// failed once a stop was under way (its reason is then not the
	// first): with resilience every worker keeps its files.
	var workerFailed atomic.Bool
	noteStopWhy := func(reason string) {
		if failedStop(reason) {
			workerFailed.Store(true)
		}
		stopWhy.CompareAndSwap(nil, &reason)
	}
	stopReason := func() string {
		if p := stopWhy.Load(); p != nil {
			return *p
		}
		return stoppedAsked
	}
	// memberCtxOf is the context of the member's handlers (set below,
	// before the member starts).
	var memberCtxRef atomic.Pointer[context.Context]
	memberCtxOf := func() context.Context {
		if c := memberCtxRef.Load(); c != nil {
			return *c
		}
		return context.Background()
	}
	// 0.6's startup banners, one per mode its builds had: clustering and
	// autoscale always (ours always can), resilience with
	// --run-with-resilience (informational; nothing waits for them).
	if cfg.Resilience != nil {
		fmt.Fprintln(cfg.Console, "****RESILIENCE MODE is active****")
	}
	fmt.Fprintln(cfg.Console, "****CLUSTERING MODE is active****")
	fmt.Fprintln(cfg.Console, "****AUTOSCALE MODE is active****")
	// Checkpoints: res drives them (nil without resilience); pause holds
	// the sources while the cluster comes to rest for one.
	pause := &gate{}
	var res *resilience
	var stallAt string // (tests: StallStartEnv)
	if cfg.Resilience != nil {
		cp, ok := cfg.Processor.(Checkpointer)
		if !ok {
			closeSources()
			return fmt.Errorf("--run-with-resilience: this processor cannot take checkpoints")
		}
		if cfg.App == "" {
			cfg.App = "app"
		}
		res = newResilience(*cfg.Resilience, cp, checkpoint.Open(cfg.Resilience.Dir, cfg.App, cfg.Name), q, pause,
			func(msg string, args ...any) { cfg.Log.Info(msg, args...) },
			func(msg string, args ...any) { cfg.Log.Debug(msg, args...) },
			func(msg string, args ...any) { cfg.Log.Warn(msg, args...) },
			func(line string) { fmt.Fprintln(cfg.Console, line) })
		crash, err := parseCrashPoints(cfg.Resilience.CrashAt, cfg.Name)
		if err != nil {
			closeSources()
			return err
		}
		res.crash = crash
		if stallAt, err = parseStall(cfg.Resilience.StallStart, cfg.Name); err != nil {
			closeSources()
			return err
		}
	}
	// A cluster stops in one drained step (see cluster.Member.Drain):
	// stopNow closes when this worker must stop at once; sourcesDone
	// when its sources have stopped reading; idle mirrors the loop.
	stopNow := make(chan struct{})
	var stopOnce sync.Once
	finalStop := func() { stopOnce.Do(func() { close(stopNow) }) }
	sourcesDone := make(chan struct{})
	var idle atomic.Bool
	// loopEnded closes once the processor loop has returned (after an
	// error in user code too), or when Run returns without a loop:
	// nothing more will be processed here, so a drain must not wait for
	// this worker's queue, and what waits for the loop to apply a table
	// or run a call gives up instead of waiting for ever (a stop during
	// a grow).
	loopEnded := make(chan struct{})
	endLoop := sync.OnceFunc(func() { close(loopEnded) })
	defer endLoop()
	// busy counts the loop's time in user code: the member reports the
	// utilisation it gives to peers, and deals spread segments by theirs.
	var busy atomic.Int64
	// flushSinks is set once the sinks exist (a rescale that moves
	// partitions away flushes them first).
	var flushSinks atomic.Pointer[func(ctx context.Context) error]
	if cfg.Cluster != nil {
		cc := *cfg.Cluster
		cc.FlushSinks = func(ctx context.Context) error {
			if f := flushSinks.Load(); f != nil {
				return (*f)(ctx)
			}
			return nil
		}
		cc.Log = cfg.Log
		cc.Console = cfg.Console
		cc.Deliver = func(ctx context.Context, input int, e work.Envelopes) error {
			if res != nil && res.discarding.Load() && res.hold(input, e) {
				return nil // held until the recovery of a restart ends: see resilience
			}
			return q.Put(ctx, work.EnvelopesItem(input, e))
		}
		cc.DeliverBarrier = func(ctx context.Context, input int, b barrier.Barrier) error {
			if res == nil || res.discarding.Load() {
				return nil // no checkpoints here, or not until the rollback
			}
			return q.Put(ctx, work.BarrierItem(input, b))
		}
		cc.OnShutdown = func(reason string) { shutdownMember(reason) }
		cc.OnStop = func(reason string) {
			cfg.Log.Log(context.Background(), stopLevel(reason), "the cluster is stopping now", "reason", reason)
			finalStop()
			shutdownMember(reason)
		}
		cc.Idle = func() bool {
			if !member.Started() || isClosed(loopEnded) {
				// A joiner before its start (its loop has not run), or a
				// loop that has ended: nothing here will move any more.
				return true
			}
			// While the sources are paused (until the first checkpoint,
			// and during a rollback), their queued input waits and does
			// not count.
			local, peer := q.Depth()
			return idle.Load() && peer == 0 && (local == 0 || pause.paused())
		}
		if res != nil {
			cc.FreshRejoin = res.freshRejoin
			cc.NoCheckpoints = res.holdsNoCheckpoint()
			cc.HoldsCheckpoints = res.holdsCommittedCheckpoint()
			cc.OnCheckpoint = func(c cluster.Checkpoint) cluster.Checkpoint { return res.handle(memberCtxOf(), c) }
			cc.OnRecover = func(w string, id uint64) {
				cfg.Log.Info("a restarted worker asks for a rollback", "worker", w, "its_checkpoint", id)
				select {
				case res.recover <- recoverRequest{who: w}:
				default:
				}
			}
			cc.OnRecovering = func(w string) {
				select {
				case res.recover <- recoverRequest{who: w, reading: true}:
				default:
				}
			}
		}
		cc.States = make([]string, len(cfg.Stages.State))
		for i, st := range cfg.Stages.State {
			cc.States[i] = st.String()
		}
		if mig, ok := cfg.Processor.(Migrator); ok {
			cc.ExportMany = func(s string, ps []routing.PartitionID, budget time.Duration) ([][]byte, error) {
				id, err := topology.ParseStepID(s)
				if err != nil {
					return nil, err
				}
				return mig.ExportPartitions(id, ps, budget)
			}
			cc.ImportMany = func(steps []string, ps []routing.PartitionID, datas [][]byte, budget time.Duration) (int, error) {
				ids := make([]topology.StepID, len(steps))
				for i, s := range steps {
					id, err := topology.ParseStepID(s)
					if err != nil {
						return 0, err
					}
					ids[i] = id
				}
				return mig.ImportPartitions(ids, ps, datas, budget)
			}
			cc.DropMany = func(s string, ps []routing.PartitionID) error {
				id, err := topology.ParseStepID(s)
				if err != nil {
					return err
				}
				return mig.DropPartitions(id, ps)
			}
		}
		cc.DeliverCall = func(ctx context.Context, f func() []work.Item) error {
			return putForLoop(ctx, q, loopEnded, work.CallItem(work.ControlInput, f))
		}
		cc.Install = func(ctx context.Context, own work.Ownership, then func() []work.Item) error {
			if res != nil {
				// Partitions moved: the next checkpoint exports every key
				// (the image still holds those that left).
				res.forceFull.Store(true)
			}
			return install(ctx, q, loopEnded, own, then)
		}
		cc.LoopEnded = loopEnded
		cc.OnLeave = func() {
			cfg.Log.Info("this worker left the cluster; stopping")
			finalStop()
			shutdownMember("left the cluster")
		}
		cc.Busy = cfg.Busy
		cc.BusyNanos = busy.Load
		cc.Partitions = cfg.Partitions
		if res != nil {
			cc.OnRescaled = res.recordFloor
			cc.OnRescaleStep = res.crash.reached // (tests: CrashAtEnv)
		}
		if reg != nil || res != nil {
			cc.OnRescale = func(kind string, ok bool, took time.Duration) {
				if res != nil && ok {
					res.afterRescale()
				} else if res != nil {
					res.checkpointSoon()
				}
				if reg == nil {
					return
				}
				outcome := "completed"
				if !ok {
					outcome = "failed"
				}
				reg.Counter(metrics.Rescales, "kind", kind, "outcome", outcome).Inc()
				secs := took.Seconds()
				reg.Gauge(metrics.LastRescale, func() float64 { return secs }, "kind", kind)
			}
			cc.OnLinkUp = func(peer string, reconnect bool, resent int) {
				// (Both series exist from the link's first connection,
				// at 0: a rate over them needs no special first case.)
				c := reg.Counter(metrics.LinkReconnects, "peer", peer)
				if reconnect {
					c.Inc()
				}
				reg.Counter(metrics.LinkReplays, "peer", peer).Add(uint64(resent))
			}
		}
		if ss, ok := cfg.Processor.(work.SpreadSetter); ok {
			cc.OnSpread = func(shares map[string]float64) {
				weights := make(map[work.Dest]float64, len(shares))
				for w, sh := range shares {
					d := work.Here
					if w != cfg.Name {
						d = member.Dest(w)
					}
					weights[d] = sh
				}
				ss.SetSpread(weights)
			}
		}
		cc.Sinks = nil
		for _, sc := range cfg.Sinks {
			cc.Sinks = append(cc.Sinks, sc.Addr)
		}
		member = cluster.New(cc)
		if res != nil {
			res.member = member
			if mig, ok := cfg.Processor.(Migrator); ok {
				res.dropNotOwned = func() (int, error) {
					var ps []routing.PartitionID
					for p, mine := range member.Table().Local(routing.WorkerName(cfg.Name)) {
						if !mine {
							ps = append(ps, routing.PartitionID(p))
						}
					}
					if len(ps) == 0 {
						return 0, nil
					}
					for _, st := range cfg.Stages.State {
						if err := mig.DropPartitions(st, ps); err != nil {
							return 0, fmt.Errorf("state step %s: %w", st, err)
						}
					}
					return len(ps), nil
				}
			}
		}
		if err := member.Listen(); err != nil {
			closeSources()
			return fmt.Errorf("%w: %w", ErrListen, err)
		}
		if res != nil && member.Restarted() {
			res.discarding.Store(true) // until the cluster has rolled back
		}
	}
	if res != nil {
		// Before joining: a worker that cannot return to a checkpoint
		// must not take part (nothing is delivered to it, so nothing is
		// lost with it).
		if err := res.checkFiles(cfg.Name, member == nil || cfg.Name == cluster.InitializerName); err != nil {
			if member != nil {
				member.Close()
			}
			closeSources()
			return err
		}
	}
	ctx, shutdown := context.WithCancel(ctx)
	defer shutdown()
	shutdownMember = func(reason string) {
		noteStopWhy(reason)
		if ctx.Err() != nil {
			// (Already stopping: the workers told to stop ask the
			// initializer in turn; once is enough in the log. A
			// failure is said all the same.)
			if failedStop(reason) && reason != stopReason() {
				cfg.Log.Warn("a worker failed while the cluster stops", "reason", reason)
			} else {
				cfg.Log.Debug("stop requested", "reason", reason)
			}
			return
		}
		cfg.Log.Log(context.Background(), stopLevel(reason), "stop requested", "reason", reason)
		shutdown()
	}
	// memberCtx keeps the cluster links up while a stop drains; it ends
	// when Run returns.
	memberCtx, endMember := context.WithCancel(context.WithoutCancel(ctx))
	defer endMember()
	memberCtxRef.Store(&memberCtx)
	// awaitWorkersGone: once the initializer has told the workers to
	// stop, it stays until they have gone (at most workersGoneLimit),
	// so that its exit cannot throw away a stop frame the network has
	// yet to deliver. Deferred after endMember, so it runs before it.
	var told chan struct{} // (set below)
	awaitWorkersGone := func() {
		if member == nil || cfg.Name != cluster.InitializerName {
			return
		}
		if ctx.Err() != nil && member.Started() {
			// A stop is under way (asked, or this worker's loop
			// ended): its goroutine tells the workers, perhaps only
			// now (after the drain the end of Run cuts short).
			select {
			case <-told:
			case <-time.After(workersGoneLimit):
			}
		}
		if left := member.AwaitWorkersGone(context.Background(), workersGoneLimit); len(left) > 0 {
			cfg.Log.Warn("exiting while workers are still connected; if one keeps running, stop it with SIGTERM", "workers", strings.Join(left, ","))
		}
	}
	defer awaitWorkersGone()
	// drainCtx bounds the work done after a stop was asked for: it ends
	// ShutdownTimeout after ctx does.
	drainCtx, endDrain := context.WithCancel(context.WithoutCancel(ctx))
	defer endDrain()
	go func() {
		select {
		case <-ctx.Done():
		case <-drainCtx.Done():
			return
		}
		t := time.NewTimer(cfg.ShutdownTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			cfg.Log.Warn("shutdown: not finished in time; dropping what is left", "timeout", cfg.ShutdownTimeout)
			endDrain()
			if cfg.OnStopDeadline != nil {
				go cfg.OnStopDeadline()
			}
		case <-drainCtx.Done():
		}
	}()

	// The external channel answers from the start (cluster-status says
	// "not initialized" until the worker is ready) and can stop the worker.
	st := &status{cfg: &cfg, res: res, memberCtx: memberCtxOf, shutdown: func(reason string) {
		cfg.Log.Info("shutting down", "reason", reason)
		shutdown() // a cluster member then stops its cluster (below)
	}}
	if cfg.External != "" {
		ext := external.NewServer(external.Config{Addr: cfg.External, Guard: cfg.ExternalGuard, Listener: cfg.ExternalListener}, st, plog)
		if err := ext.Listen(); err != nil {
			closeSources()
			if member != nil {
				member.Close()
			}
			return fmt.Errorf("%w: %w", ErrListen, err)
		}
		extCtx, stopExt := context.WithCancel(context.WithoutCancel(ctx))
		extDone := make(chan struct{})
		go func() {
			defer close(extDone)
			if err := ext.Serve(extCtx); err != nil {
				cfg.Log.Error("external channel", "err", err)
			}
		}()
		defer func() {
			stopExt()
			<-extDone
		}()
	}

	// stopUnformed tells the workers that joined a cluster not yet
	// formed to stop (the initializer's part of a stop while forming),
	// once: from the goroutine below or from the forming code's return,
	// whichever comes first, so the process never exits before they are
	// told.
	stopUnformed := sync.OnceFunc(func() {
		if member != nil && cfg.Name == cluster.InitializerName {
			member.StopAll(stopReason())
		}
	})
	// stoppedBeforeStart ends a clean stop that came before the cluster
	// started (while it formed, or while its sinks and links came up):
	// the others are told (initializer), and no recovery file this run
	// wrote is left (spec 3.8); a restart that never rejoined keeps what
	// it was restarted from, and files of another run of this name that
	// this one had not yet replaced stay as they were.
	stoppedBeforeStart := func() {
		if member == nil {
			return
		}
		stopUnformed()
		if !member.Restarted() {
			member.RemoveFilesWritten()
		}
	}
	// told closes once the goroutine below has done what a stop asks of
	// this worker (on the initializer: the workers were told to stop).
	told = make(chan struct{})
	if member != nil {
		// A stop asked of this worker (a signal, the external channel, a
		// worker asking the initializer) stops the whole cluster, drained.
		go func() {
			defer close(told)
			<-ctx.Done()
			why := stopReason()
			switch {
			case member.Leaving():
				finalStop() // it left: only this worker stops
			case !member.Started():
				stopUnformed()
				finalStop()
			case cfg.Name == cluster.InitializerName:
				member.StopAsked()
				<-sourcesDone
				if err := member.Drain(drainCtx); err != nil {
					cfg.Log.Warn("stopping with messages still between workers", "err", err)
				}
				if res != nil && workerFailed.Load() { // (read after the drain: a failure during it counts)
					// A worker failed: its files stay, so every worker
					// keeps its own (the cluster resumes from their last
					// checkpoint once started again); no checkpoint is
					// taken now, as the failed worker takes no part.
					member.SetKeepState()
				} else if res != nil && (res.cfg.KeepStateOnStop || member.KeepState() || st.keep.Load()) {
					member.SetKeepState() // the others keep their files too
					if id, err := res.checkpoint(drainCtx); err != nil {
						cfg.Log.Error("the last checkpoint before the stop failed; the files hold the one before it", "id", id, "err", err)
					} else {
						fmt.Fprintf(cfg.Console, "Checkpoint %d taken at the stop: starting the same workers again resumes from it\n", id)
					}
				}
				member.StopAll(why)
			default:
				if res != nil && res.cfg.KeepStateOnStop {
					// Its --keep-state-on-stop holds for the whole
					// cluster it stops (the initializer coordinates).
					member.SetKeepState()
				}
				if err := member.RequestStop(why); err != nil {
					cfg.Log.Warn("could not ask the initializer to stop the cluster; stopping this worker alone", "err", err)
					finalStop()
					return
				}
				select {
				case <-stopNow:
				case <-drainCtx.Done():
					finalStop()
				}
			}
		}()
		formed := make(chan error, 1)
		go func() { formed <- member.Start(memberCtx) }()
		var err error
		select {
		case err = <-formed:
		case <-ctx.Done():
			err = ctx.Err()
			// Start still runs: the joined workers are told first
			// (over the links it holds), then it ends with them and
			// writes no recovery file after that.
			stopUnformed()
			awaitWorkersGone()
			endMember()
			select {
			case <-formed:
			case <-time.After(5 * time.Second):
			}
		}
		if err != nil {
			closeSources()
			if ctx.Err() != nil {
				stoppedBeforeStart()
				return nil
			}
			if !member.Restarted() {
				// Never a member of a formed cluster (refused, the
				// initializer not reached, or formation cut short): the
				// same command line run again is a new join, not a
				// restart from these files. (Only the files it wrote: a
				// refused worker may share its name with a running one.)
				member.RemoveFilesWritten()
			}
			return fmt.Errorf("form the cluster: %w", err)
		}
		st.member.Store(member)
		if res != nil && cfg.Name != cluster.InitializerName && member.Restarted() {
			// At once, before the sinks, the links and the files: the
			// initializer pauses its sources until this worker asks for
			// the recovery (OpRecover, once its files are read), so
			// what peers send it meanwhile (held, see resilience) stays
			// what was in flight, however long the files take to read.
			if err := member.SendCheckpoint(cluster.Checkpoint{Op: cluster.OpRecovering}); err != nil {
				cfg.Log.Warn("could not tell the initializer that this worker reads its files (the initializer's sources go on meanwhile)", "err", err)
			}
		}
		table := member.Table()
		if table.Partitions() == 0 {
			closeSources()
			return fmt.Errorf("partition the cluster: no partition table (see the log)")
		}
		if err := initializerSinks(&cfg, member.Sinks(), cfg.Log); err != nil {
			closeSources()
			return err
		}
		own := work.OwnershipOf(table, routing.WorkerName(cfg.Name), func(w routing.WorkerName) work.Dest { return member.Dest(string(w)) })
		cfg.Ownership = &own
		if cfg.OnFormed != nil {
			cfg.OnFormed(member.Metrics())
		}
	}

	fmt.Fprintln(cfg.Console, "|~~ INIT PHASE I: Initializing sinks ~~|")
	sinks := make([]*sink.TCP, len(cfg.Sinks))
	for i, sc := range cfg.Sinks {
		bytes := reg.Counter(metrics.SinkBytes, "sink", sc.label())
		again := reg.Counter(metrics.SinkReconnects, "sink", sc.label())
		sinks[i] = sink.NewTCP(sink.TCPConfig{Name: sc.label(), Addr: sc.Addr,
			OnWrite: func(n int) { bytes.Add(uint64(n)) }, OnReconnect: again.Inc}, plog)
		sinks[i].Start(drainCtx)
	}
	flush := func(ctx context.Context) error {
		var errs []error
		for _, s := range sinks {
			errs = append(errs, s.Flush(ctx))
		}
		return errors.Join(errs...)
	}
	flushSinks.Store(&flush)
	if res != nil {
		res.flushSinks.Store(&flush)
	}
	closeSinks := func() {
		endDrain() // Close must not wait for a peer that is gone
		for _, s := range sinks {
			if err := s.Close(); err != nil && !errors.Is(err, context.Canceled) {
				cfg.Log.Warn("sink close", "err", err)
			}
		}
	}
	for _, s := range sinks {
		if err := s.WaitConnected(ctx); err != nil {
			closeSinks()
			closeSources()
			stoppedBeforeStart() // stopped before the sinks came up
			return nil
		}
	}

	if member != nil {
		// Every data link up, then the initializer starts the cluster
		// once every worker is this far.
		err := member.LinksUp(ctx)
		if err == nil {
			err = member.Ready()
		}
		if err == nil {
			err = member.WaitStarted(ctx)
		}
		if err != nil {
			closeSinks()
			closeSources()
			if ctx.Err() != nil {
				stoppedBeforeStart()
				return nil
			}
			if cfg.Cluster.Joining > 0 && !member.Restarted() {
				// A joiner whose grow failed (aborted, or its
				// initializer went): never a member, nothing to come
				// back to. (A worker of a cluster that formed keeps
				// its files: its initializer may come back from its
				// own and take it back.)
				member.RemoveFilesWritten()
			}
			return fmt.Errorf("start the cluster: %w", err)
		}
	}
	fmt.Fprintln(cfg.Console, "|~~ INIT PHASE II: Initializing sources ~~|")
	srcCtx, stopSources := context.WithCancel(ctx)
	defer stopSources()

	// Listen before anything says ready: a client that connects once it
	// has read "Application has successfully initialized" is taken.
	// failStarted returns err of a failure after the cluster formed: the
	// initializer stops every worker first (they would wait for it to
	// come back); another worker's peers see it go, as when one crashes.
	failStarted := func(err error) error {
		if member != nil && cfg.Name == cluster.InitializerName {
			member.StopAll("the initializer could not start: " + err.Error())
		}
		return err
	}
	for _, s := range sources {
		if err := s.Listen(); err != nil {
			closeSources()
			closeSinks()
			return failStarted(fmt.Errorf("%w: %w", ErrListen, err))
		}
	}
	var wg sync.WaitGroup
	for _, s := range sources {
		wg.Add(1)
		go func(s *source.TCP) {
			defer wg.Done()
			if err := s.Serve(srcCtx, drainCtx); err != nil && !errors.Is(err, context.Canceled) {
				cfg.Log.Error("source", "err", err)
			}
		}(s)
	}
	if res != nil {
		if stallAt != "" {
			if err := stallUntil(ctx, stallAt); err != nil {
				stopSources()
				wg.Wait()
				closeSinks()
				if ctx.Err() != nil {
					return nil
				}
				return failStarted(err)
			}
		}
		// Before any input is processed: nobody else calls the
		// processor yet.
		if _, err := res.start(); err != nil {
			stopSources()
			wg.Wait()
			closeSinks()
			return failStarted(fmt.Errorf("recover from the files in %s: %w (move them away to start with empty state)", cfg.Resilience.Dir, err))
		}
	}
	if cfg.Ownership != nil {
		// Before any source item: the queue is empty and nobody else
		// calls the processor yet.
		if err := cfg.Processor.SetOwnership(*cfg.Ownership); err != nil {
			stopSources()
			wg.Wait()
			closeSinks()
			return failStarted(fmt.Errorf("install the ownership table: %w", err))
		}
	}
	st.initialized.Store(true)
	fmt.Fprintln(cfg.Console, "|~~ INIT PHASE III: Application is ready to work! ~~|")
	if member == nil || cfg.Name == cluster.InitializerName {
		fmt.Fprintln(cfg.Console, "Application has successfully initialized")
	}
	if cfg.OnReady != nil {
		cfg.OnReady()
	}

	// When the sources have stopped, close the queue so the loop drains
	// it. A cluster member also takes envelopes from its peers until it
	// is told to stop (a worker with no sources of its own has work too).
	go func() {
		wg.Wait()
		close(sourcesDone)
		if member != nil {
			<-stopNow
		}
		q.Close()
	}()
	ws := make([]work.Sink, len(sinks))
	names := make([]string, len(sinks))
	for i, s := range sinks {
		ws[i] = s
		names[i] = cfg.Sinks[i].label()
	}
	lc := work.LoopConfig{
		Processor: cfg.Processor, Queue: q, Sinks: ws, SinkNames: names,
		Generators: gens, MaxItemsPerCall: cfg.MaxBatchesPerCall,
		Route: cfg.Route, Log: cfg.Log, Console: cfg.Console,
	}
	if member != nil {
		lc.Route = member.Route
		lc.InputName = func(input int) string { return member.WorkerAt(work.Dest(input)) }
	}
	if res != nil {
		var peers barrierPeers
		if member != nil {
			peers = member
		}
		res.hookLoop(&lc, peers, member == nil || cfg.Name == cluster.InitializerName)
	}
	if member != nil {
		lc.Inputs = member.Inputs()
		lc.Idle = &idle
		lc.Hold = func() <-chan struct{} {
			if c := pause.hold(); c != nil {
				return c
			}
			return member.Congested()
		}
		lc.BusyNanos = &busy
	} else if res != nil {
		lc.Hold = pause.hold
	}
	var resDone chan struct{}
	if res != nil && (member == nil || cfg.Name == cluster.InitializerName) {
		resDone = res.stopped
		// As in 0.6, the sources start muted until the first checkpoint
		// is committed (it is taken at once).
		pause.pause()
		if member != nil && member.Restarted() && res.multi() {
			// The initializer of a running cluster restarted: every
			// worker goes back to one checkpoint first (queued before
			// run starts, so no checkpoint comes before it). A full
			// queue holds restarted workers' requests for the same
			// rollback: this one would add nothing (and run, which
			// empties it, has not started yet).
			select {
			case res.recover <- recoverRequest{who: cluster.InitializerName}:
			default:
			}
		} else {
			res.endDiscarding(ctx, true)
		}
		go res.run(ctx)
	} else if res != nil {
		if restored, id := res.wasRestored(); restored || member.Restarted() {
			// Asked until the recovery has come: a request lost (the
			// control link being made anew, the initializer busy) would
			// leave this worker holding its input for ever.
			go func() {
				wait := time.Duration(0)
				for asked := false; ; {
					select {
					case <-ctx.Done():
						return
					case <-memberCtx.Done():
						return
					case <-time.After(wait):
					}
					if asked && !res.discarding.Load() {
						return
					}
					if err := member.SendCheckpoint(cluster.Checkpoint{Op: cluster.OpRecover, ID: id}); err != nil {
						cfg.Log.Warn("could not ask the initializer for the cluster's recovery; asking again", "err", err)
						wait = 500 * time.Millisecond
					} else {
						asked, wait = true, 10*time.Second
					}
				}
			}()
		}
	}
	err := work.Loop(srcCtx, drainCtx, lc)
	endLoop()
	if err != nil && member != nil {
		// (Before the shutdown: the stop it starts tells the others.)
		why := fmt.Sprintf("worker %s %s: %v", cfg.Name, stoppedOnError, err)
		if ctx.Err() != nil && cfg.Name != cluster.InitializerName {
			// A stop was under way already (its request is sent): the
			// initializer hears of the failure too, for the files.
			if rerr := member.RequestStop(why); rerr != nil {
				cfg.Log.Warn("could not tell the initializer of this failure", "err", rerr)
			}
		}
		noteStopWhy(why)
	}
	shutdown() // after an error too: starts the shutdown deadline
	if resDone != nil {
		<-resDone // its ctx has ended: no checkpoint runs any more
	}
	// Whatever the loop left (after an error, or past the shutdown
	// deadline) is dropped, so that the sources can finish.
	dropped := make(chan [2]int, 1)
	go func() {
		n, b := q.Discard()
		dropped <- [2]int{n, b}
	}()
	wg.Wait()
	if d := <-dropped; d[0] > 0 {
		cfg.Log.Warn("stopped with input not processed", "items", d[0], "bytes", d[1])
	}
	if member != nil {
		if ferr := member.Flush(drainCtx); ferr != nil {
			cfg.Log.Warn("envelopes not acknowledged by peers at shutdown", "err", ferr)
		}
	}
	for i, s := range sinks {
		if ferr := s.Flush(drainCtx); ferr != nil {
			cfg.Log.Warn("output not delivered at shutdown", "sink", cfg.Sinks[i].label(), "err", ferr)
		}
	}
	closeSinks()
	// (A worker that left in a shrink keeps nothing: its keys are the
	// others' now, and the cluster would refuse it back.)
	keep := res != nil && (res.cfg.KeepStateOnStop || st.keep.Load() || (member != nil && member.KeepState())) &&
		!(member != nil && member.Leaving())
	if res != nil && keep && member == nil && err == nil {
		if id, ferr := res.final(); ferr != nil {
			cfg.Log.Error("the last checkpoint before the stop failed; the files hold the one before it", "id", id, "err", ferr)
		} else {
			fmt.Fprintf(cfg.Console, "Checkpoint %d taken at the stop: starting the same command line again resumes from it\n", id)
		}
	}
	if err == nil && !keep {
		// A clean stop leaves no recovery files (spec 3.8).
		if member != nil {
			member.RemoveFiles()
		}
		if res != nil {
			if rerr := res.removeFiles(); rerr != nil {
				cfg.Log.Warn("checkpoint files not removed", "err", rerr)
			}
		}
	} else if res != nil && (err != nil || workerFailed.Load()) {
		cfg.Log.Info("the checkpoint files stay: starting the same command line again resumes from the last checkpoint", "dir", cfg.Resilience.Dir)
	}
	return err
}

// stoppedAsked is the reason a cluster stops when nothing failed (a
// signal, cluster_shutdown); stoppedOnError is in the reason when a
// worker's loop failed ("worker NAME stopped on an error: ..."), which
// the others log as a warning.
const (
	stoppedAsked   = "the cluster was told to stop"
	stoppedOnError = "stopped on an error"
)

// failedStop reports whether reason is a worker's failure.
func failedStop(reason string) bool { return strings.Contains(reason, stoppedOnError) }

// stopLevel is the log level of a stop for reason: a failure warns.
func stopLevel(reason string) slog.Level {
	if failedStop(reason) {
		return slog.LevelWarn
	}
	return slog.LevelInfo
}

// workersGoneLimit bounds how long a stopping initializer waits for the
// workers it told to stop to close their control links.
const workersGoneLimit = 10 * time.Second

// initializerSinks points cfg's sinks at the addresses the initializer's
// application gave them (sinks, from the cluster's topology), as 0.6
// took the whole topology from the initializer: a worker started with
// another --out still writes where the initializer's application does,
// and says so. A different number of sinks means the workers run
// different pipelines: an error.
func initializerSinks(cfg *Config, sinks []string, log *slog.Logger) error {
	if sinks == nil {
		return nil
	}
	if len(sinks) != len(cfg.Sinks) {
		return fmt.Errorf("form the cluster: the initializer's application has %d sink(s) (%s), this worker's %d: start every worker with the same application and options",
			len(sinks), strings.Join(sinks, ", "), len(cfg.Sinks))
	}
	cfg.Sinks = slices.Clone(cfg.Sinks) // (the caller's stays as it was)
	for i, addr := range sinks {
		if cfg.Sinks[i].Addr != addr {
			log.Warn("sink address differs from the initializer's; using the initializer's, as the cluster's topology comes from it",
				"sink", i, "initializer", addr, "this worker", cfg.Sinks[i].Addr)
			cfg.Sinks[i].Addr = addr
		}
	}
	return nil
}

// install queues own for the processor loop (in the peers' lane, so it
// is taken even while the sources' lane is held) and waits until the
// loop has applied it and run then (cluster.Config.Install); it gives
// up when ctx ends or the loop has ended (loopEnded closed: the table
// will never be applied, cluster.ErrLoopEnded).
func install(ctx context.Context, q *work.Queue, loopEnded <-chan struct{}, own work.Ownership, then func() []work.Item) error {
	applied := make(chan error, 1)
	it := work.OwnershipItem(own)
	it.Input = work.ControlInput
	it.Applied = func(err error) []work.Item {
		var first []work.Item
		if err == nil && then != nil {
			first = then()
		}
		applied <- err
		return first
	}
	if err := putForLoop(ctx, q, loopEnded, it); err != nil {
		return fmt.Errorf("install the table of epoch %d: %w", own.Epoch, err)
	}
	select {
	case err := <-applied:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-loopEnded:
		select {
		case err := <-applied: // (applied as the loop ended)
			return err
		default:
		}
		return fmt.Errorf("install the table of epoch %d: %w", own.Epoch, cluster.ErrLoopEnded)
	}
}

// putForLoop puts it in q for the processor loop, waiting for room until
// ctx ends or the loop has ended (loopEnded closed: nobody would take
// it, cluster.ErrLoopEnded; the queue is emptied only later in a stop).
func putForLoop(ctx context.Context, q *work.Queue, loopEnded <-chan struct{}, it work.Item) error {
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-loopEnded:
			cancel()
		case <-pctx.Done():
		}
	}()
	err := q.Put(pctx, it)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		select {
		case <-loopEnded:
			return cluster.ErrLoopEnded
		default:
		}
	}
	return err
}

// isClosed reports whether c is closed (c is only ever closed, never sent on).
func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
