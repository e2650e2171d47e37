package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wallaroo-go/machida/engine/barrier"
	"github.com/wallaroo-go/machida/engine/routing"
	"github.com/wallaroo-go/machida/engine/spread"
	"github.com/wallaroo-go/machida/engine/work"
	"github.com/wallaroo-go/machida/internal/linkauth"
	"github.com/wallaroo-go/machida/internal/portwait"
)

// InitializerName is the initializer's name, whatever --name says (0.6
// forces it, LIMITATIONS.md #1191).
const InitializerName = "initializer"

// ErrRefused is wrapped when the initializer refuses this worker.
var ErrRefused = errors.New("refused by the cluster")

// ErrLoopEnded is wrapped by Install when the processor loop has
// returned (a stop) before it applied the table.
var ErrLoopEnded = errors.New("the processor loop has ended")

// Config describes this worker's place in the cluster.
type Config struct {
	Name        string // this worker (InitializerName for the initializer)
	Initializer bool
	WorkerCount int // the initializer's --worker-count (1 or more)
	// Control is, on the initializer, where its control listener binds;
	// on the others, the initializer's control address to dial.
	Control string
	// MyControl and Data/MyData are where this worker's own control
	// listener (non-initializers) and data listener bind.
	MyControl string
	Data      string
	// Hello names the application, its module digest and the Python
	// major version: both ends of every link check they agree.
	Hello Hello
	// ResilienceDir holds this worker's recovery files
	// (<app>-<name>.tcp-control and .tcp-data: the addresses its
	// listeners bound). If they exist at start, the worker restarted
	// after a crash (spec 3.9): it binds those addresses again and
	// rejoins the running cluster. A clean stop deletes them. Empty: no
	// files.
	ResilienceDir string
	// Console receives the lines tools wait for ("Restarting a listener
	// at ..."); nil discards them.
	Console io.Writer
	// JoinTimeout bounds how long a worker retries its control
	// connection to the initializer (default 30 s).
	JoinTimeout time.Duration
	// StateChunk is the most bytes of state one KindState frame
	// carries (default StateChunk; tests make it small).
	StateChunk int
	Log        *slog.Logger
	// Deliver hands a batch of envelopes from a peer to this worker's
	// processor loop; it blocks while the loop's queue is full (TCP
	// backpressure reaches the peer). input numbers the peer (its Dest:
	// 1 and up), so that barriers are aligned per peer.
	Deliver func(ctx context.Context, input int, e work.Envelopes) error
	// DeliverBarrier hands a barrier from a peer's data link to the loop,
	// in order with that peer's envelopes (input as for Deliver).
	DeliverBarrier func(ctx context.Context, input int, b barrier.Barrier) error
	// SlowFrom (tests only: SlowLinkEnv) names a peer whose data link
	// this worker reads slowly (a pause before each batch), so that its
	// input backs up and other peers' barriers overtake its own.
	SlowFrom string
	// OnShutdown is called on the initializer when a worker asks for the
	// cluster to stop: the initializer then drains and stops it (see
	// RequestStop).
	OnShutdown func(reason string)
	// OnStop is called once when this worker must stop now (the
	// initializer said so, or StopAll ran here).
	OnStop func(reason string)
	// Idle reports whether this worker's processor loop has nothing to
	// do (queue empty, loop waiting), for the drained stop.
	Idle func() bool
	// Busy reports how long the user code running now has been running
	// (0 when none runs); heartbeats carry it, so a peer stuck in user
	// code is reported, not only a silent one.
	Busy func() time.Duration
	// BusyNanos, if set, returns the nanoseconds this worker's processor
	// loop has spent in user code so far; every loadEvery the member
	// sends its utilisation over the period to its peers.
	BusyNanos func() int64
	// OnSpread, if set, is called (on the member's load goroutine) with
	// new shares by worker name whenever the spread balancer moves them:
	// how this worker should deal its spread segments' messages.
	OnSpread func(shares map[string]float64)
	// OnLinkUp, if set, is told each time a data link to peer connects
	// (again, when reconnect is set) and how many batches it sends again
	// (metrics); from the link's goroutine, must not block.
	OnLinkUp func(peer string, reconnect bool, resent int)
	// Guard authenticates every control and data connection (a cluster
	// secret, TLS or both; see secure.go); nil: unauthenticated, as 0.6.
	Guard *linkauth.Guard

	// Rescaling (rescale.go). Partitions is the partition count of the
	// cluster's table (routing.DefaultPartitions if 0). Joining is the k
	// of a worker started with --join (Control is then the address it
	// joins through; 0: a member from formation). Metrics is this
	// worker's --metrics (the initializer's is the cluster's; joiners
	// learn it, see Member.Metrics).
	Partitions int
	Joining    int
	Metrics    string
	// Sinks are the addresses of this worker's application's sinks (its
	// --out); a worker that is not the initializer connects to the
	// initializer's instead (see Member.Sinks).
	Sinks []string
	// States lists the application's state steps. ExportMany exports
	// and drops partitions of one from the front of ps for about budget
	// (at least one) and returns their states; ImportMany imports states.
	// Both are the processor's, safe from any goroutine; each is one
	// call into it, so the processor loop's calls run in between.
	States     []string
	ExportMany func(step string, ps []routing.PartitionID, budget time.Duration) ([][]byte, error)
	// FlushSinks, if set, waits until what this worker's sinks were given
	// so far is written to their connections: a worker that loses
	// partitions calls it before their state leaves, so that the outputs
	// it made for their keys go out before the new owner's (a receiver
	// that merges the workers' connections sees each key in order).
	FlushSinks func(ctx context.Context) error
	ImportMany func(steps []string, ps []routing.PartitionID, datas [][]byte, budget time.Duration) (int, error)
	// DropMany forgets the state of partitions of one state step (what a
	// rescale that was undone had brought here).
	DropMany func(step string, ps []routing.PartitionID) error
	// Install applies an ownership table in the processor loop's order
	// and returns once it is applied; then runs on the loop's goroutine
	// right after, and the items it returns run before anything else.
	// DeliverCall queues f to run on the loop's goroutine in order with
	// the peers' envelopes. OnLeave is called when this worker has left
	// the cluster (a shrink): it stops alone, cleanly. An Install that
	// returns ctx's error may leave its table queued: the loop applies it
	// later, in order, and runs then. LoopEnded, if
	// set, closes once the loop has returned: Install and DeliverCall
	// then fail with ErrLoopEnded, and a wait for a call that will never
	// run gives up.
	Install     func(ctx context.Context, o work.Ownership, then func() []work.Item) error
	DeliverCall func(ctx context.Context, f func() []work.Item) error
	LoopEnded   <-chan struct{}
	OnLeave     func()
	// OnRescale, if set, is told of every grow or shrink this worker
	// coordinated ("grow" or "shrink"), whether it completed, and how long
	// it took (metrics).
	OnRescale func(kind string, ok bool, took time.Duration)
	// OnRescaled, if set, is told on a worker other than the initializer
	// (and not leaving) that a grow or shrink it took part in is
	// complete here (its new table installed), and on the initializer
	// that one is committed (every state moved; commitRescale).
	OnRescaled func()
	// OnRescaleStep, if set, is told on the initializer when a rescale
	// reaches "rescale-frozen" (every worker froze and sent its states;
	// the Commit is not told) and "rescale-committed" (the new cluster
	// is recorded; no Release is told), and on another worker when it
	// reaches "rescale-released" (it completed a Release and has not
	// acked it): a test kills the process there.
	OnRescaleStep func(step string)

	// Checkpoints (checkpoint.go). OnCheckpoint (not the initializer)
	// handles a request of the initializer (take, commit, rollback) on a
	// goroutine of its own and returns the reply (Op 0: none).
	// OnRecover (initializer) is told that worker restarted from its
	// checkpoint files (its newest committed checkpoint is id), which
	// calls for a rollback of the whole cluster. OnRecovering
	// (initializer) is told that worker restarted, rejoined and reads
	// its files (OnRecover follows); it is called on the control link's
	// reader, before anything that follows on the link is read, and must
	// not block. nil: this cluster runs without resilience.
	OnCheckpoint func(c Checkpoint) Checkpoint
	OnRecover    func(worker string, id uint64)
	OnRecovering func(worker string)
	// FreshRejoin (initializer) is asked when a worker of the formed
	// cluster joins again without a checkpoint to return to: started
	// afresh under its old name (restarted false), or restarted from
	// recovery files that hold no checkpoint (its Join's NoCheckpoints).
	// A non-empty answer refuses it with that reason; nil accepts it (its
	// keys restart empty, as after any restart without resilience).
	// Called without the Member's lock held.
	FreshRejoin func(worker string, restarted bool) string
	// NoCheckpoints (with resilience): this worker's files hold no
	// checkpoint; its Join says so. HoldsCheckpoints: they list a
	// committed one a restart would return to, so listener files that
	// record other listeners than the command line are refused (the
	// worker would otherwise start afresh and overwrite them, leaving
	// its checkpoints unreachable).
	NoCheckpoints    bool
	HoldsCheckpoints bool
}

// Member is this worker's membership in a cluster: the control and data
// listeners, formation (spec 3.2: every worker connects to the
// initializer, which tells all of them the worker list once everyone has
// joined), the data links to every peer (outbound, with their replay
// queues) and from them (inbound), and cluster-wide shutdown.
//
// Goroutines: Start's accept loops, one per control connection, one per
// outbound link, one per inbound link; all end when the context given to
// Start ends. Route is called by the processor loop; Workers and
// Processing from any goroutine.
type Member struct {
	cfg  Config
	log  *slog.Logger
	ctlL net.Listener
	datL net.Listener

	mu      sync.Mutex
	workers []string // the cluster's members in order; nil until formed
	// Slots number every worker this one has known (members, joiners,
	// and workers that left), in the order first seen: the
	// ownership-table destination of a worker is its slot plus one, and
	// never changes while processing goes on (a rescale appends slots,
	// never renumbers them).
	slots     []string
	index     map[string]int // slot of each worker
	outs      []*outbound    // by slot (nil for this worker and for workers that left)
	ctl       map[string]*ctlConn
	ready     map[string]bool
	startSent bool // (initializer) the cluster's Start was sent: once
	// readyMu (initializer) orders the topology-ready console lines:
	// each worker's comes before "All N workers" (held around them and
	// the startSent decision, not m.mu: a console write may block).
	readyMu   sync.Mutex
	started   chan struct{}
	formed    chan struct{}
	stopOnce  sync.Once
	in        *inbound
	toInit    *ctlConn // non-initializers: the control link to the initializer
	shutdownR string
	restarted bool // started from recovery files
	// joinedOnce: the initializer has let this process in once; a later
	// join is a running worker dialling a restarted initializer again.
	joinedOnce atomic.Bool
	// rollbacksRead numbers the OpRollback requests read (Checkpoint.Received).
	rollbacksRead atomic.Uint64
	// filesMu guards filesWritten, filesDeferred and topologySaved.
	// filesWritten: the recovery files hold this run's listeners (set by
	// Listen, the first grow, or, when deferred, joinAt once the
	// initializer let this worker in). filesDeferred: Listen found files
	// of another run of this name (other listeners), which may be those
	// of a worker running now under the same name: they are left as they
	// are until the initializer lets this worker in (a refused one must
	// not clobber them).
	// topologySaved: saveTopology wrote this worker's local files.
	filesMu       sync.Mutex
	filesWritten  bool
	filesDeferred bool
	topologySaved bool
	idleWait      chan IdleReply
	idleRound     uint64
	ckWait        map[CheckpointOp]*ckWaiter // checkpoint.go: the replies awaited, by op
	// opMu serialises the cluster-wide operations of the initializer: a
	// checkpoint, a rollback, a rescale; drainMu the quiescence rounds.
	opMu    sync.Mutex
	drainMu sync.Mutex
	// Initializer: joiners admitted to a join whose control link is not
	// registered yet, and the rescale whose Abort each of them is owed
	// (it was aborted before the link came: serveJoiner tells it).
	joinerUnlinked map[string]bool
	owedAbort      map[string]uint64
	// Seams for tests: beforeJoinerLink runs in serveJoiner just before
	// a joiner's control link is registered; joinerWait, comeBack and
	// joinLogEvery, if set, replace joinerLinkWait, comeBackWait and
	// joinWaitLog; onAwaitBack runs when
	// an undo starts to wait for workers to come back; beforeRejoin runs
	// before a worker that lost its initializer reconnects;
	// beforePrepareAck runs on a worker before it acks a Prepare;
	// beforePhase on the initializer before it tells the Commit, before
	// it commits (commitPoint) and before it tells the Release (a test
	// crashes it there).
	beforeJoinerLink func(worker string)
	beforePrepareAck func()
	beforePhase      func(phase uint8)
	joinerWait       time.Duration
	freezeLimit      time.Duration // replaces phaseTimeout in installWithin
	comeBack         time.Duration
	joinLogEvery     time.Duration
	onAwaitBack      func(workers []string)
	beforeRejoin     func()
	keepState        atomic.Bool            // this stop keeps the checkpoint files
	stopAsked        atomic.Bool            // initializer: a stop has begun (StopAsked)
	health           map[string]*peerHealth // by worker, from its heartbeats
	refused          linkauth.RefusalLog    // connections that did not authenticate, for the log
	loads            map[string]loadReport  // by worker, from its load frames
	cong             *congestion            // initializer: the workers whose links are congested (congestion.go)
	pending          []Join                 // initializer: workers joined before formation, in order
	committedTopo    *Topology              // initializer: the cluster of a rescale committed and not yet ended (commitRescale)
	saveMu           sync.Mutex             // held while saveTopologyAs writes the recovery files (taken before m.mu)
	dataAddrs        []string               // the workers' data listeners, by index
	table            routing.Table          // the partition table (after formation)
	metrics          string                 // the cluster's metrics address (joiners: from the initializer)
	sinks            []string               // the application's sink addresses (from the initializer)
	initCtl          string                 // non-initializers: the initializer's control address
	rs               rescaleState           // rescale.go
}

// ctlConn is one control connection; writes are serialised.
type ctlConn struct {
	name  string
	conn  net.Conn
	mu    sync.Mutex
	since time.Time // when the link was taken in
}

func (c *ctlConn) send(k Kind, p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(handshakeLimit))
	_, err := c.conn.Write(AppendFrame(nil, k, p))
	if err != nil {
		// A write cut short (a deadline) may leave half a frame: the
		// next frame would follow it and the peer would read garbage.
		// The link goes; its reader sees it closed and it is made anew.
		c.conn.Close()
		return fmt.Errorf("control link to %s: %w", c.name, err)
	}
	return nil
}

// New returns a member that is not yet listening.
func New(cfg Config) *Member {
	if cfg.JoinTimeout <= 0 {
		cfg.JoinTimeout = 30 * time.Second
	}
	if cfg.StateChunk <= 0 {
		cfg.StateChunk = StateChunk
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Initializer {
		cfg.Name = InitializerName
	}
	if cfg.Console == nil {
		cfg.Console = io.Discard
	}
	cfg.Hello.Version = WireVersion
	cfg.Hello.Worker = cfg.Name
	cfg.Hello.Incarnation = rand.Uint64() | 1
	if cfg.Partitions <= 0 {
		cfg.Partitions = routing.DefaultPartitions
	}
	return &Member{cfg: cfg, log: cfg.Log, ctl: map[string]*ctlConn{}, ready: map[string]bool{}, health: map[string]*peerHealth{}, loads: map[string]loadReport{},
		started: make(chan struct{}), formed: make(chan struct{}), metrics: cfg.Metrics, sinks: slices.Clone(cfg.Sinks), initCtl: cfg.Control,
		rs: newRescaleState(), cong: newCongestion()}
}

// Listen binds the control listener (initializer: Control; others:
// MyControl) and the data listener (Data). Call it before Start, early:
// a port that is taken is a configuration error.
func (m *Member) Listen() error {
	ctlAddr := m.cfg.MyControl
	if m.cfg.Initializer {
		ctlAddr = m.cfg.Control
	}
	// A worker's unset (or "0") listeners, as 0.6's (spec 1.2): every
	// interface, a port of the system's choosing; the initializer tells
	// the others this worker's host as it saw the connection come
	// (hostFrom). (An initializer of a cluster is given both; one
	// running alone binds loopback.)
	unset := ":0"
	if m.cfg.Initializer {
		unset = "127.0.0.1:0"
	}
	if ctlAddr == "" || ctlAddr == "0" {
		ctlAddr = unset
	}
	dataAddr := m.cfg.Data
	if dataAddr == "" || dataAddr == "0" {
		dataAddr = unset
	}
	ctlFile, dataFile := m.recoveryFiles()
	if ctlFile != "" {
		recC, errC := readAddrFile(ctlFile)
		recD, errD := readAddrFile(dataFile)
		switch {
		case errC == nil && errD == nil && (!explicitPort(ctlAddr) || sameListener(recC, ctlAddr)) && (!explicitPort(dataAddr) || sameListener(recD, dataAddr)):
			ctlAddr, dataAddr = recC, recD
			m.restarted = true
			m.cfg.Hello.Restart = true
			fmt.Fprintf(m.cfg.Console, "Restarting a listener at %s\n", ctlAddr)
			fmt.Fprintf(m.cfg.Console, "Restarting a data channel listener on %s\n", dataAddr)
		case errors.Is(errC, os.ErrNotExist) && errors.Is(errD, os.ErrNotExist):
		case errC == nil && errD == nil && m.cfg.HoldsCheckpoints:
			ctlFlag, dataFlag := "--my-control", "--my-data"
			if m.cfg.Initializer {
				ctlFlag, dataFlag = "--control", "--data"
			}
			return fmt.Errorf("the recovery files of worker %q in %s record its listeners at %s and %s, but this command line names %s and %s, and its checkpoints are there too: "+
				"start it with %s %s %s %s to recover it, or move its recovery files away to start it afresh",
				m.cfg.Name, m.cfg.ResilienceDir, recC, recD, ctlAddr, dataAddr, ctlFlag, recC, dataFlag, recD)
		case errC == nil && errD == nil:
			// Files of another run (the command line names other ports):
			// this is not a restart of that worker.
			// A worker other than the initializer replaces them once
			// the initializer has let it in (joinAt), not before:
			// they may be those of a worker running now under this
			// name, which the initializer refuses.
			if !m.cfg.Initializer {
				m.filesDeferred = true
				if err := checkWritable(m.cfg.ResilienceDir); err != nil {
					return err
				}
			}
			m.log.Warn("recovery files record other listeners than this command line; starting afresh (they are replaced once this worker is in the cluster)",
				"control_file", ctlFile, "recorded", recC+" "+recD, "command_line", ctlAddr+" "+dataAddr)
		default:
			// 0.6's words first (spec 4.2), then which and why.
			var missing []string
			for _, e := range []error{errC, errD} {
				if e != nil {
					missing = append(missing, e.Error())
				}
			}
			return fmt.Errorf("Some resilience/recovery files are missing! Cannot continue! Worker %q in %s: %s. Remove %s and %s to start this worker afresh",
				m.cfg.Name, m.cfg.ResilienceDir, strings.Join(missing, "; "), ctlFile, dataFile)
		}
	}
	var err error
	// (portwait: a worker killed and started again at once may find its
	// ports still held by its previous run for a few milliseconds.)
	busy := func(line string) { m.log.Warn(line) }
	if m.ctlL, err = portwait.Listen(ctlAddr, "control channel", busy); err != nil {
		return fmt.Errorf("control channel: unable to listen on %s: %w", ctlAddr, err)
	}
	if m.datL, err = portwait.Listen(dataAddr, "data channel", busy); err != nil {
		m.ctlL.Close()
		return fmt.Errorf("data channel: unable to listen on %s: %w", dataAddr, err)
	}
	m.log.Info("control channel listening", "addr", m.ctlL.Addr().String())
	m.log.Info("data channel listening", "addr", m.datL.Addr().String())
	// The others dial this worker's data listener at the address it
	// bound (the topology carries it): with TLS, a certificate that
	// does not name it would be refused by every peer, the cluster
	// waiting for links that never come up.
	if err := m.cfg.Guard.CheckListeners([]string{m.datL.Addr().String()}, []string{"data"}, time.Now()); err != nil {
		m.Close()
		return err
	}
	// A one-worker initializer writes them when its cluster first grows
	// (writeRecoveryFiles): until then there is nobody to rejoin, and
	// single workers of one application sharing the default /tmp must
	// not find each other's files.
	if !m.restarted && !m.filesDeferred && !m.aloneAtStart() {
		if err := m.writeRecoveryFiles(); err != nil {
			m.Close()
			return err
		}
	}
	return nil
}

// unprotectedHint is what to add to an error of the first exchange with
// the initializer when this worker runs without a cluster secret or TLS
// and the initializer closed or reset the connection: one that requires
// them does so to a peer that speaks neither.
func (m *Member) unprotectedHint(err error) string {
	if m.cfg.Guard != nil || !(errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
		return ""
	}
	return " (does the initializer run with a cluster secret or TLS that this worker lacks?)"
}

// silentPeerHint is what to add to the error of a first exchange whose
// peer said nothing before the deadline, on an unprotected worker: a
// worker started with a cluster secret waits so for the challenge an
// unprotected one never sends (a TLS one speaks first: its bytes read
// as a malformed frame, which readHello says). "" otherwise.
func silentPeerHint(guarded bool, err error) string {
	if guarded || !errors.Is(err, os.ErrDeadlineExceeded) {
		return ""
	}
	return " (nothing came: does the peer run with a cluster secret that this worker lacks? It waits so for a challenge)"
}

// aloneAtStart reports whether this worker is an initializer started as a
// cluster of one: it writes its listeners' files when its cluster first
// grows (until then there is nobody to rejoin).
func (m *Member) aloneAtStart() bool {
	return m.cfg.Initializer && m.cfg.WorkerCount <= 1
}

// checkWritable fails, saying so, if no file can be made in dir.
func checkWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".machida-write-check-*")
	if err != nil {
		return fmt.Errorf("recovery files cannot be written in %s: %w (does --resilience-dir exist and is it writable?)", dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// writeRecoveryFiles records the addresses this worker's listeners bound
// (spec 3.9), once.
func (m *Member) writeRecoveryFiles() error {
	m.filesMu.Lock()
	defer m.filesMu.Unlock()
	ctlFile, dataFile := m.recoveryFiles()
	if ctlFile == "" || m.filesWritten {
		return nil
	}
	if err := writeFile(ctlFile, addrFileText(m.ctlL.Addr().String())); err != nil {
		return err
	}
	if err := writeFile(dataFile, addrFileText(m.datL.Addr().String())); err != nil {
		return err
	}
	m.filesWritten = true
	m.filesDeferred = false
	return nil
}

// addrFileText is the content of a .tcp-control or .tcp-data file for
// addr, as 0.6 wrote them (spec 4.2): the host on one line, the port on
// the next, so that 0.6's scripts that read or rewrite them (moving a
// worker to another host) work unchanged.
func addrFileText(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host + "\n" + port
}

// readAddrFile reads a .tcp-control or .tcp-data file: host and port on
// two lines (0.6's form, which this project writes) or host:port on one
// line (what earlier versions of this project wrote). An error wraps
// os.ErrNotExist when the file is absent.
func readAddrFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	lines := strings.Fields(string(b))
	var addr string
	switch len(lines) {
	case 1:
		addr = lines[0]
	case 2:
		addr = net.JoinHostPort(lines[0], lines[1])
	default:
		return "", fmt.Errorf("%s holds %d lines, want a host and a port", path, len(lines))
	}
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		return "", fmt.Errorf("%s does not name a host and a port (%q)", path, strings.TrimSpace(string(b)))
	}
	return addr, nil
}

// sameListener says whether a listener recorded as bound at recorded is
// the one a command line asks for with asked: the same port, and the same
// host, or a host that the recorded one is bound for (a name such as
// localhost records the address it resolved to; an empty or wildcard
// host records the wildcard).
func sameListener(recorded, asked string) bool {
	if recorded == asked {
		return true
	}
	rh, rp, err1 := net.SplitHostPort(recorded)
	ah, ap, err2 := net.SplitHostPort(asked)
	if err1 != nil || err2 != nil || rp != ap {
		return false
	}
	switch {
	case rh == ah, anyInterface(rh) && anyInterface(ah):
		return true
	case net.ParseIP(ah) == nil:
		// A name: the same listener if it names the recorded address.
		ips, err := net.LookupIP(ah)
		if err != nil {
			return false
		}
		for _, ip := range ips {
			if ip.Equal(net.ParseIP(rh)) {
				return true
			}
		}
	}
	return false
}

// anyInterface reports whether a listener's host h binds every
// interface (empty, 0.0.0.0, ::).
func anyInterface(h string) bool {
	ip := net.ParseIP(h)
	return h == "" || (ip != nil && ip.IsUnspecified())
}

// explicitPort reports whether addr names a port (not unset, not 0).
func explicitPort(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port != "" && port != "0"
}

// recoveryFiles returns the paths of this worker's recovery files, or ""
// without a resilience directory.
func (m *Member) recoveryFiles() (control, data string) {
	if m.cfg.ResilienceDir == "" {
		return "", ""
	}
	base := filepath.Join(m.cfg.ResilienceDir, m.cfg.Hello.App+"-"+m.cfg.Name)
	return base + ".tcp-control", base + ".tcp-data"
}

// writeFile writes s to path through a temporary file and a rename, so a
// crash never leaves half a file.
func writeFile(path, s string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(s+"\n"), 0o644); err != nil {
		return fmt.Errorf("write recovery file %s: %w (does --resilience-dir exist and is it writable?)", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write recovery file %s: %w", path, err)
	}
	return nil
}

// RemoveFiles deletes this worker's recovery files (a clean stop, spec
// 3.8).
func (m *Member) RemoveFiles() {
	c, d := m.recoveryFiles()
	files := []string{c, d, m.legacyTopologyFile()}
	for _, ext := range localFileExts {
		files = append(files, m.ownFile(ext))
	}
	m.remove(files)
}

// remove deletes files ("" and those already gone are skipped), saying
// which could not be.
func (m *Member) remove(files []string) {
	for _, f := range files {
		if f != "" {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				m.log.Warn("recovery file not removed", "file", f, "err", err)
			}
		}
	}
}

// RemoveFilesWritten deletes the recovery files this process wrote, and
// only those: a worker that never became a member of the cluster (it was
// refused, or formation was cut short) leaves the files of another run
// of its name (perhaps a worker running now under that name) as they
// were.
func (m *Member) RemoveFilesWritten() {
	m.filesMu.Lock()
	listeners, local := m.filesWritten, m.topologySaved
	m.filesMu.Unlock()
	var files []string
	if listeners {
		c, d := m.recoveryFiles()
		files = append(files, c, d)
	}
	if local {
		for _, ext := range localFileExts {
			files = append(files, m.ownFile(ext))
		}
	}
	m.remove(files)
}

// Restarted reports whether this worker started from its recovery files.
func (m *Member) Restarted() bool { return m.restarted }

// Close frees the listeners of a member that will not be started.
func (m *Member) Close() {
	if m.ctlL != nil {
		m.ctlL.Close()
	}
	if m.datL != nil {
		m.datL.Close()
	}
}

// Start forms the cluster: it returns once every worker has joined and
// this worker knows the worker list (its data links are then being
// dialled), or with an error (the initializer could not be reached, or
// refused this worker). The member runs until ctx ends.
func (m *Member) Start(ctx context.Context) error {
	m.in = newInbound(m.cfg.Hello, m.log, func(name string) bool {
		// A peer may dial before this worker has the topology: wait
		// for it (a little), rather than refuse a link that is fine.
		select {
		case <-m.formed:
		case <-time.After(handshakeLimit):
		case <-ctx.Done():
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		_, ok := m.index[name]
		return ok
	}, func(ctx context.Context, from string, e work.Envelopes) error {
		m.mu.Lock()
		slot, ok := m.index[from]
		m.mu.Unlock()
		if !ok {
			return fmt.Errorf("envelopes from unknown worker %q", from)
		}
		input := slot + 1 // its Dest
		if from == m.cfg.SlowFrom {
			time.Sleep(slowLinkPause)
		}
		if e.Count == 0 { // a barrier or a rescale's fence (see rescale.go)
			b, fence, err := DecodeMarker(e.Data)
			switch {
			case err != nil:
				return err
			case fence != 0 && m.cfg.DeliverCall != nil:
				return m.cfg.DeliverCall(ctx, func() []work.Item { m.fenceProcessed(from, fence); return nil })
			case fence == 0 && m.cfg.DeliverBarrier != nil:
				return m.cfg.DeliverBarrier(ctx, input, b)
			}
			return nil
		}
		return m.cfg.Deliver(ctx, input, e)
	})
	m.in.guarded = m.cfg.Guard != nil
	go m.acceptLoop(ctx, m.datL, "data", func(c net.Conn) { m.in.serve(ctx, c) })
	if m.cfg.Initializer {
		if m.restarted {
			if t, err := m.loadTopology(); err == nil && (len(t.Workers) > 1 || m.cfg.WorkerCount > 1) {
				// A restart of the initializer of a running cluster:
				// the others reconnect to it (rejoin). (Also a cluster
				// shrunk to this worker alone: its --worker-count is
				// that of its start, not what it is now.)
				m.log.Info("restarting as the initializer of the cluster recorded in the recovery files", "workers", strings.Join(t.Workers, ","))
				m.setTopology(ctx, t)
				go m.acceptLoop(ctx, m.ctlL, "control", func(c net.Conn) { m.serveControl(ctx, c) })
				return nil
			} else if err != nil {
				m.log.Warn("no cluster recorded in the recovery files; forming it afresh", "err", err)
			}
		}
		go m.acceptLoop(ctx, m.ctlL, "control", func(c net.Conn) { m.serveControl(ctx, c) })
		if m.cfg.WorkerCount <= 1 {
			// (Its files are written when its cluster first grows, as
			// its listeners' are: a worker alone leaves nothing in a
			// --resilience-dir that single workers may share, /tmp by
			// default, also when it stops with an error.)
			m.setTopology(ctx, Topology{Workers: []string{m.cfg.Name}, Data: []string{m.datL.Addr().String()}})
			return nil
		}
		return m.waitFormed(ctx)
	}
	go m.acceptLoop(ctx, m.ctlL, "control", func(c net.Conn) { m.redirect(ctx, c) })
	return m.join(ctx)
}

func (m *Member) acceptLoop(ctx context.Context, l net.Listener, what string, serve func(net.Conn)) {
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				m.log.Error("accept failed", "channel", what, "err", err)
			}
			return
		}
		go func() {
			if c, ok := m.accepted(ctx, c, what); ok {
				serve(c)
			}
		}()
	}
}

// waitFormed (initializer) waits for the others to join, saying which it
// still waits for.
func (m *Member) waitFormed(ctx context.Context) error {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-m.formed:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			m.mu.Lock()
			var have []string
			for n := range m.ctl {
				have = append(have, n)
			}
			m.mu.Unlock()
			sort.Strings(have)
			m.log.Warn(fmt.Sprintf("waiting for %d more of %d workers to join", m.cfg.WorkerCount-1-len(have), m.cfg.WorkerCount-1),
				"joined", strings.Join(have, ","), "control", m.ctlL.Addr().String())
		}
	}
}

// serveControl (initializer) handles one worker's control connection.
func (m *Member) serveControl(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	r := bufio.NewReader(conn)
	conn.SetDeadline(time.Now().Add(handshakeLimit))
	peer, err := readHello(conn, r, m.cfg.Hello, ControlChannel)
	if err != nil {
		m.log.Error("control link refused", "remote", conn.RemoteAddr().String(), "err", err.Error()+silentPeerHint(m.cfg.Guard != nil, err))
		return
	}
	mine := m.cfg.Hello
	mine.Channel = ControlChannel
	f, err := ReadFrame(r)
	var j Join
	if err == nil && f.Kind != KindJoin {
		err = fmt.Errorf("%w: %v where join was expected", ErrMalformed, f.Kind)
	}
	if err == nil {
		j, err = DecodeJoin(f.Payload)
	}
	if err != nil {
		m.log.Error("control link from a worker closed", "peer", peer.Worker, "err", err)
		return
	}
	c := &ctlConn{name: j.Worker, conn: conn, since: time.Now()}
	m.mu.Lock()
	known := m.workers != nil && slices.Contains(m.workers, j.Worker) ||
		m.committedTopo != nil && slices.Contains(m.committedTopo.Workers, j.Worker) // (a joiner of it)
	fresh := ""
	// (Not a worker that came in by a grow: it comes back with its
	// --join and worker count, and the rescale floor, which lets it in
	// before the checkpoint after its grow, is recorded only once the
	// grow has ended; a joiner restarted during the release would be
	// refused and the grow wedged.)
	if known && (j.Afresh || j.NoCheckpoints) && j.Joining == 0 && m.cfg.FreshRejoin != nil {
		m.mu.Unlock()
		fresh = m.cfg.FreshRejoin(j.Worker, !j.Afresh)
		m.mu.Lock()
	}
	stale := ""
	if !known && !m.restarted && m.cfg.FreshRejoin != nil && peer.Restart && !j.NoCheckpoints {
		// (With resilience: the initializer starts afresh, this worker
		// from files that hold checkpoints. Its state would be of
		// another run than everyone else's, which restart empty.)
		stale = fmt.Sprintf("worker %q comes back from recovery files that hold checkpoints, but this cluster was started afresh: its initializer had no recovery files "+
			"(a clean stop removed them while %s was down, or they were moved away). Move %s's files out of its --resilience-dir and start it again "+
			"(its state starts empty, as every other worker's did), or stop the cluster and put the initializer's files back", j.Worker, j.Worker, j.Worker)
	}
	if j.Joining > 0 && !(peer.Restart && known) {
		reason := stale
		if reason == "" {
			reason = m.sinkMismatch(j)
		}
		if reason != "" {
			m.mu.Unlock()
			conn.Write(AppendFrame(nil, KindRefuse, Text(reason)))
			m.log.Error("refused a worker", "worker", j.Worker, "reason", reason)
			return
		}
		m.mu.Unlock()
		m.serveJoiner(ctx, c, r, j, mine)
		return
	}
	reason := ""
	switch {
	case j.Worker == "" || j.Worker == InitializerName:
		reason = fmt.Sprintf("a worker cannot be named %q", j.Worker)
	case m.ctl[j.Worker] != nil && !peer.Restart:
		reason = fmt.Sprintf("a worker named %q has already joined", j.Worker)
	case m.workers != nil && !known:
		reason = fmt.Sprintf("the cluster is formed with %d workers; %q %s", len(m.workers), j.Worker, notAMember)
	case stale != "":
		reason = stale
	case fresh != "":
		reason = fresh
	default:
		reason = m.sinkMismatch(j)
	}
	if reason != "" {
		m.mu.Unlock()
		conn.Write(AppendFrame(nil, KindRefuse, Text(reason)))
		m.log.Error("refused a worker", "worker", j.Worker, "reason", reason)
		return
	}
	conn.SetDeadline(time.Time{})
	conn.Write(AppendFrame(nil, KindHello, mine.Encode()))
	if old := m.ctl[j.Worker]; old != nil {
		old.conn.Close() // the link of the run that crashed
	}
	if m.workers != nil && j.Frozen != 0 {
		// Noted before its link counts: maybeUndoOrphans (which starts
		// the undo once every worker has a link) must not start it
		// without this worker. (m.mu, then rs.mu.)
		epoch := m.table.Epoch()
		if m.committedTopo != nil {
			epoch = m.committedTopo.Epoch
		}
		if j.FrozenEpoch > epoch {
			m.noteOrphan(j.Worker, j.Frozen)
		}
	}
	m.ctl[j.Worker] = c
	data := hostFrom(j.Data, conn.RemoteAddr())
	m.log.Info("worker joined", "worker", j.Worker, "data", data)
	var topo *Topology
	if m.workers == nil {
		// A worker that comes again before the cluster has formed (it
		// crashed and was started again) replaces its entry: one per
		// name.
		entry := Join{Worker: j.Worker, Control: j.Control, Data: data}
		if i := slices.IndexFunc(m.pending, func(p Join) bool { return p.Worker == j.Worker }); i >= 0 {
			m.pending[i] = entry
		} else {
			m.pending = append(m.pending, entry)
		}
		if len(m.pending) == m.cfg.WorkerCount-1 {
			t := Topology{Workers: []string{m.cfg.Name}, Data: []string{m.datL.Addr().String()}, Sinks: slices.Clone(m.sinks)}
			// The others in the order of their names, not in the
			// order they registered (routing.CompareNames).
			slices.SortStableFunc(m.pending, func(a, b Join) int { return routing.CompareNames(a.Worker, b.Worker) })
			for _, p := range m.pending {
				t.Workers = append(t.Workers, p.Worker)
				t.Data = append(t.Data, p.Data)
			}
			topo = &t
			// Formed in the same hold of the lock: a worker that goes
			// or comes back from now on meets a formed cluster.
			m.setTopologyLocked(ctx, t)
		}
	} else {
		// A worker that restarted: it gets the topology again, alone,
		// and the others hear it is back (their links to it redial now,
		// at its data listener: started afresh, it may listen at
		// another).
		m.log.Info("worker rejoined (after a restart of it or of this initializer, or a lost control link)", "worker", j.Worker)
		moved := false
		if i := slices.Index(m.workers, j.Worker); i >= 0 && i < len(m.dataAddrs) && m.dataAddrs[i] != data {
			m.log.Warn("a restarted worker listens at another data address; the cluster sends to it there", "worker", j.Worker,
				"was", m.dataAddrs[i], "now", data)
			m.dataAddrs[i] = data
			moved = true
		}
		if ct := m.committedTopo; ct != nil {
			if i := slices.Index(ct.Workers, j.Worker); i >= 0 && ct.Data[i] != data {
				ct.Data = slices.Clone(ct.Data)
				ct.Data[i] = data
				moved = true
			}
		}
		t := m.topologyLocked()
		if m.committedTopo != nil {
			// (It may have been frozen in that rescale: it completes
			// it, see settleOrphaned.)
			t = *m.committedTopo
		}
		m.mu.Unlock()
		if moved {
			m.saveTopology()
		}
		c.send(KindTopology, t.Encode())
		// Another worker may have rejoined at a new data listener
		// between t and its sending, and its PeerBack, sent to c
		// before t, be undone by t: c hears of it again.
		m.mu.Lock()
		var since []PeerBack
		for _, d := range m.listenersMovedLocked(t.Workers, t.Data) {
			since = append(since, PeerBack{Worker: t.Workers[d[0]], Data: m.dataAddrs[d[1]]})
		}
		m.mu.Unlock()
		for _, p := range since {
			c.send(KindPeerBack, p.Encode())
		}
		m.peerBack(PeerBack{Worker: j.Worker, Data: data})
		m.broadcastExcept(j.Worker, KindPeerBack, PeerBack{Worker: j.Worker, Data: data}.Encode())
		m.mu.Lock()
	}
	m.mu.Unlock()
	if topo != nil {
		m.saveTopology()
		m.broadcast(KindTopology, topo.Encode())
	}
	m.maybeUndoOrphans(ctx) // (once every worker is back)
	m.readControl(ctx, c, r)
	m.mu.Lock()
	if m.ctl[j.Worker] == c {
		delete(m.ctl, j.Worker)
		if m.workers == nil {
			// Gone before the cluster formed: it is waited for again
			// (and forms the cluster if it comes back).
			m.pending = slices.DeleteFunc(m.pending, func(p Join) bool { return p.Worker == j.Worker })
		}
		if m.workers == nil && ctx.Err() == nil && m.shutdownR == "" {
			m.log.Warn("a worker left before the cluster formed; waiting for it to join again", "worker", j.Worker)
		}
	}
	m.mu.Unlock()
}

// Heartbeats (control links, both directions): every heartbeatEvery a
// worker tells its peer how long its user code has been running. A peer
// silent for silentAfter, or in user code for stuckAfter, is reported in
// the log and by Unresponsive (the external channel's cluster status).
const (
	heartbeatEvery = time.Second
	silentAfter    = 5 * time.Second
	stuckAfter     = 10 * time.Second
)

type peerHealth struct {
	last     time.Time     // last heartbeat
	busy     time.Duration // user code running that long at the last heartbeat
	reported string        // the kind of trouble last logged (healthOf up to " for "; "" when healthy)
}

// heartbeats runs until ctx ends: it sends this worker's heartbeat on its
// control links and checks its peers'.
func (m *Member) heartbeats(ctx context.Context) {
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var busy time.Duration
		if m.cfg.Busy != nil {
			busy = m.cfg.Busy()
		}
		m.mu.Lock()
		cs := m.controlConnsLocked()
		m.mu.Unlock()
		for _, c := range cs {
			c.send(KindHeartbeat, Seq(uint64(busy.Milliseconds())))
		}
		m.checkHealth(time.Now())
	}
}

// Load reports (control links, both directions): every loadEvery a
// worker tells its peers how busy its processor loop was over the last
// period; a report older than loadStale is ignored.
const (
	loadEvery = 250 * time.Millisecond
	loadStale = 2 * time.Second
)

type loadReport struct {
	util float64
	at   time.Time
}

// balance runs until ctx ends: it measures this worker's utilisation,
// sends it to its peers, and moves the shares of its spread dealing
// towards the less busy workers (package spread).
func (m *Member) balance(ctx context.Context) {
	if m.cfg.BusyNanos == nil {
		return
	}
	t := time.NewTicker(loadEvery)
	defer t.Stop()
	members := m.Workers()
	bal := spread.NewBalancer(members)
	lastBusy, lastAt := m.cfg.BusyNanos(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if ws := m.Workers(); !slices.Equal(ws, members) {
			// Grown or shrunk: the dealing starts even again over the
			// new members, here and in the processor (which may still
			// deal by weights measured before).
			members = ws
			bal = spread.NewBalancer(members)
			if m.cfg.OnSpread != nil {
				m.cfg.OnSpread(bal.Shares())
			}
		}
		busy, now := m.cfg.BusyNanos(), time.Now()
		util := 0.0
		if el := now.Sub(lastAt); el > 0 {
			util = min(1, max(0, float64(busy-lastBusy)/float64(el)))
		}
		lastBusy, lastAt = busy, now
		m.mu.Lock()
		cs := m.controlConnsLocked()
		utils := map[string]float64{m.cfg.Name: util}
		for w, r := range m.loads {
			if now.Sub(r.at) < loadStale && slices.Contains(members, w) {
				utils[w] = r.util
			}
		}
		m.mu.Unlock()
		for _, c := range cs {
			c.send(KindLoad, Load(util))
		}
		if m.cfg.OnSpread != nil {
			if shares, changed := bal.Update(utils); changed {
				m.cfg.OnSpread(shares)
			}
		}
	}
}

// controlConnsLocked lists this worker's control links (to the
// initializer, and from or to every peer); m.mu held.
func (m *Member) controlConnsLocked() []*ctlConn {
	var cs []*ctlConn
	if m.toInit != nil {
		cs = append(cs, m.toInit)
	}
	for _, c := range m.ctl {
		cs = append(cs, c)
	}
	return cs
}

// heard records a peer's heartbeat. (Only a member's: a leaver beats
// until it stops, after it has left, and would then be reported silent.)
func (m *Member) heard(peer string, busy time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.workers != nil && !slices.Contains(m.workers, peer) {
		return
	}
	h := m.health[peer]
	if h == nil {
		h = &peerHealth{}
		m.health[peer] = h
	}
	h.last, h.busy = time.Now(), busy
}

// checkHealth logs each change in a peer's health.
func (m *Member) checkHealth(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, h := range m.health {
		why := healthOf(h, now)
		// Logged when the kind of trouble changes (silent, stuck,
		// healthy), not every time its duration grows by a second.
		kind, _, _ := strings.Cut(why, " for ")
		if kind != h.reported {
			if why == "" {
				m.log.Info("worker answers again", "worker", name)
			} else {
				m.log.Warn("worker unresponsive", "worker", name, "why", why)
			}
			h.reported = kind
		}
	}
}

func healthOf(h *peerHealth, now time.Time) string {
	switch {
	case now.Sub(h.last) > silentAfter:
		return fmt.Sprintf("no heartbeat for %v", now.Sub(h.last).Round(time.Second))
	case h.busy > stuckAfter:
		return fmt.Sprintf("in user code for %v (stuck?)", h.busy.Round(time.Second))
	}
	return ""
}

// Unresponsive lists the peers that are silent or stuck in user code, as
// "<worker>: <why>", sorted.
func (m *Member) Unresponsive() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	var out []string
	for name, h := range m.health {
		if why := healthOf(h, now); why != "" {
			out = append(out, name+": "+why)
		}
	}
	sort.Strings(out)
	return out
}

// hostFrom fills in the host of addr from the connection's remote
// address when addr binds every interface (spec 3.1). (A listener bound
// to one address, loopback included, is reachable only there.)
func hostFrom(addr string, remote net.Addr) string {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if !anyInterface(h) {
		return addr
	}
	rh, _, err := net.SplitHostPort(remote.String())
	if err != nil {
		return addr
	}
	return net.JoinHostPort(rh, p)
}

// peerBack makes this worker's data link to the worker p names drop its
// connection, if any, and dial it at once at p.Data (it restarted and
// listens again, perhaps at another address).
func (m *Member) peerBack(p PeerBack) {
	m.mu.Lock()
	if i := slices.Index(m.workers, p.Worker); p.Data != "" && i >= 0 && i < len(m.dataAddrs) {
		m.dataAddrs[i] = p.Data
	}
	m.mu.Unlock()
	o := m.linkTo(p.Worker)
	switch {
	case o == nil:
	case p.Data != "" && o.address() != p.Data:
		m.log.Info("a restarted worker listens at another data address", "peer", p.Worker, "was", o.address(), "now", p.Data)
		o.moveTo(p.Data)
	default:
		o.peerRestarted()
	}
}

// linkTo is this worker's data link to the worker named name (nil if
// none).
func (m *Member) linkTo(name string) *outbound {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, o := range m.outs {
		if o != nil && o.peer == name {
			return o
		}
	}
	return nil
}

// readControl reads one control connection until it ends.
func (m *Member) readControl(ctx context.Context, c *ctlConn, r *bufio.Reader) {
	for {
		f, err := ReadFrame(r)
		if err != nil {
			if ctx.Err() == nil && !m.stopping() {
				m.log.Warn("control link closed", "peer", c.name, "err", err)
			}
			return
		}
		switch f.Kind {
		case KindReady:
			if m.rs.joinerReady(c.name) {
				continue // a joiner's Ready is its Prepare ack
			}
			m.readyMu.Lock()
			m.mu.Lock()
			m.ready[c.name] = true
			member := slices.Contains(m.workers, c.name)
			sent := m.startSent
			m.mu.Unlock()
			if !sent {
				// 0.6's initializer line (spec 3.2, step 5), before
				// maybeStart's "All N workers" line (readyMu).
				fmt.Fprintf(m.cfg.Console, "%s reported topology ready!\n", c.name)
			}
			m.readyMu.Unlock()
			if m.Started() {
				if member && m.rs.startLater(c.name) {
					m.log.Warn("a worker back from a restart during a grow or shrink: started once it has ended", "worker", c.name)
				} else if member {
					c.send(KindStart, nil) // a worker back from a restart
				} else {
					m.log.Warn("a worker that is not a member says it is ready (a joiner of an aborted grow?); not started", "worker", c.name)
				}
			} else {
				m.maybeStart()
			}
		case KindStart:
			m.markStarted()
		case KindTopology:
			t, err := DecodeTopology(f.Payload)
			if err != nil {
				m.log.Error("control link closed", "peer", c.name, "err", err)
				return
			}
			m.settleOrphaned(ctx, t)
			m.setTopology(ctx, t)
			m.saveTopology()
		case KindShutdown:
			reason, _ := DecodeText(f.Payload)
			if m.cfg.Initializer {
				// A worker asks: the initializer drains the cluster.
				if m.cfg.OnShutdown != nil {
					m.cfg.OnShutdown(reason)
				}
			} else {
				m.stopHere(reason) // the initializer says: stop now
			}
		case KindIdle:
			round, err := DecodeSeq(f.Payload)
			if err != nil {
				m.log.Error("control link closed", "peer", c.name, "err", err)
				return
			}
			c.send(KindIdleReply, m.idleReply(round).Encode())
		case KindIdleReply:
			r, err := DecodeIdleReply(f.Payload)
			if err != nil {
				m.log.Error("control link closed", "peer", c.name, "err", err)
				return
			}
			m.mu.Lock()
			if m.idleWait != nil && r.Round == m.idleRound {
				select {
				case m.idleWait <- r:
				default:
				}
			}
			m.mu.Unlock()
		case KindHeartbeat:
			ms, err := DecodeSeq(f.Payload)
			if err != nil {
				m.log.Error("control link closed", "peer", c.name, "err", err)
				return
			}
			m.heard(c.name, time.Duration(ms)*time.Millisecond)
		case KindHeartbeatAck:
		case KindLoad:
			util, err := DecodeLoad(f.Payload)
			if err != nil {
				m.log.Error("control link closed", "peer", c.name, "err", err)
				return
			}
			m.mu.Lock()
			m.loads[c.name] = loadReport{util: util, at: time.Now()}
			m.mu.Unlock()
		case KindCongestion:
			on, err := DecodeCongestion(f.Payload)
			if err != nil {
				m.log.Error("control link closed", "peer", c.name, "err", err)
				return
			}
			if m.cfg.Initializer {
				m.cong.set(c.name, on, time.Now())
				m.log.Debug("congestion", "worker", c.name, "congested", on)
			}
		case KindPeerBack:
			pb, err := DecodePeerBack(f.Payload)
			if err != nil {
				m.log.Error("control link closed", "peer", c.name, "err", err)
				return
			}
			m.peerBack(pb)
		case KindCheckpoint:
			if err := m.checkpointFrame(c, f); err != nil {
				m.log.Error("control link closed", "peer", c.name, "err", err)
				return
			}
		case KindRescale, KindRescaleAck, KindState, KindShrink, KindShrinkReply:
			if err := m.rescaleFrame(ctx, c, f); err != nil {
				m.log.Error("control link closed", "peer", c.name, "err", err)
				return
			}
		default:
			m.log.Error("control link closed", "peer", c.name, "err", fmt.Errorf("%w: %v on a control link", ErrMalformed, f.Kind))
			return
		}
	}
}

// join (non-initializer) connects to the initializer, retrying for up to
// JoinTimeout, and waits for the topology. A worker joining a running
// cluster (Joining > 0) may be sent on to the initializer by the worker
// it called (a redirect), and waits for the rescale's Prepare instead;
// a refusal is then a *JoinError.
func (m *Member) join(ctx context.Context) error {
	if m.restarted && m.cfg.Joining > 0 {
		// A joined worker back from its files: the initializer it last
		// knew first, not the worker its --join named (which may have
		// left the cluster since); the command line's if that one
		// cannot be reached. (A worker started with --control names the
		// initializer itself.)
		if rec := m.recordedInitializer(); rec != "" && rec != m.cfg.Control {
			m.log.Info("rejoining at the initializer recorded in the recovery files", "initializer", rec, "command_line", m.cfg.Control)
			err := m.joinVia(ctx, rec)
			var refused *JoinError
			if err == nil || ctx.Err() != nil || errors.As(err, &refused) {
				return err
			}
			m.log.Warn("the recorded initializer cannot be reached; trying the command line's address", "initializer", rec, "err", err)
		}
	}
	return m.joinVia(ctx, m.cfg.Control)
}

// joinVia is join through addr, following the redirects of a worker
// that is not the initializer.
func (m *Member) joinVia(ctx context.Context, addr string) error {
	for hops := 0; ; hops++ {
		err := m.joinAt(ctx, addr, uint32(max(m.cfg.Joining, 0)))
		var redir *redirectError
		if errors.As(err, &redir) && hops < 3 {
			m.log.Info("joining through the initializer", "asked", addr, "initializer", redir.addr)
			addr = redir.addr
			continue
		}
		return err
	}
}

func (m *Member) joinAt(ctx context.Context, addr string, joining uint32) error {
	deadline := time.Now().Add(m.cfg.JoinTimeout)
	var conn net.Conn
	var err error
	for {
		var d net.Dialer
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err = d.DialContext(dctx, "tcp", addr)
		cancel()
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		if m.cfg.Joining > 0 {
			return fmt.Errorf("cannot reach the worker to join through at %s after %v: %w; --join takes the control address of a running worker", addr, m.cfg.JoinTimeout, err)
		}
		return fmt.Errorf("cannot reach the initializer's control channel at %s after %v: %w; start the initializer first, with --control %s", addr, m.cfg.JoinTimeout, err, addr)
	}
	// (A joiner may dial any worker of the cluster, which sends it on
	// to the initializer.)
	peer := "the initializer at " + addr
	if m.cfg.Joining > 0 {
		peer = "the worker at " + addr
	}
	if conn, err = dialled(ctx, m.cfg.Guard, conn, linkauth.Control, addr); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrRefused, peer, err)
	}
	closer := context.AfterFunc(ctx, func() { conn.Close() })
	r := bufio.NewReader(conn)
	conn.SetDeadline(time.Now().Add(handshakeLimit))
	mine := m.cfg.Hello
	mine.Channel = ControlChannel
	if _, err := conn.Write(AppendFrame(nil, KindHello, mine.Encode())); err != nil {
		closer()
		conn.Close()
		return fmt.Errorf("%s: %w%s", peer, err, m.unprotectedHint(err))
	}
	j := Join{Worker: m.cfg.Name, Control: m.ctlL.Addr().String(), Data: m.datL.Addr().String(), Joining: joining,
		Sinks: uint32(len(m.cfg.Sinks))}
	if !m.joinedOnce.Load() {
		j.Afresh, j.NoCheckpoints = !m.restarted, m.restarted && m.cfg.NoCheckpoints
	} else {
		j.Frozen, j.FrozenEpoch = m.rs.frozenIn()
	}
	if _, err := conn.Write(AppendFrame(nil, KindJoin, j.Encode())); err != nil {
		closer()
		conn.Close()
		return fmt.Errorf("%s: %w%s", peer, err, m.unprotectedHint(err))
	}
	if _, err := readHello(conn, r, m.cfg.Hello, ControlChannel); err != nil {
		closer()
		conn.Close()
		var refused *refusedError
		if errors.As(err, &refused) {
			if m.cfg.Joining > 0 {
				return &JoinError{Reason: refused.reason}
			}
			return fmt.Errorf("%w: %s says: %s", ErrRefused, peer, refused.reason)
		}
		var redir *redirectError
		if errors.As(err, &redir) {
			return err
		}
		return fmt.Errorf("%s: %w%s", peer, err, m.unprotectedHint(err))
	}
	conn.SetDeadline(time.Time{})
	m.filesMu.Lock()
	deferred := m.filesDeferred
	m.filesMu.Unlock()
	if deferred {
		// Let in: the files of another run of this name were no
		// running worker's; this one's listeners replace them.
		if err := m.writeRecoveryFiles(); err != nil {
			closer()
			conn.Close()
			return err
		}
	}
	m.joinedOnce.Store(true)
	c := &ctlConn{name: InitializerName, conn: conn}
	m.mu.Lock()
	m.toInit = c
	m.initCtl = addr
	m.mu.Unlock()
	if m.cfg.Joining > 0 && !m.restarted {
		m.log.Info("asked to join the cluster; waiting for the other joiners and the rescale", "through", addr)
	} else {
		m.log.Info("joined the cluster; waiting for the other workers", "initializer", addr)
	}
	go func() {
		m.readControl(ctx, c, r)
		if ctx.Err() == nil && !m.stopping() && !m.rs.isLeaving() {
			// (A worker back from a restart may wait for its start
			// while a grow or shrink ends: it reconnects too. So does
			// a joiner that has all its states: the initializer may
			// come back with it in the cluster.)
			frozen, committed := m.rs.orphaned()
			if m.Started() || m.restarted || committed {
				// The initializer crashed: it comes back from its
				// recovery files at the same address.
				m.log.Warn("lost the control link to the initializer; reconnecting", "initializer", addr)
				if m.rs.forgetUnfrozen() {
					m.log.Warn("the grow or shrink under way ended with the initializer; nothing had moved")
				} else if frozen {
					m.log.Warn("the initializer was lost during a grow or shrink whose state had begun to move: its moving partitions stay parked until the initializer is back, whose recorded cluster says whether it completes or is undone")
				}
				go m.rejoin(ctx, addr)
				return
			}
			m.log.Error("lost the control link to the initializer")
			if m.cfg.Joining > 0 {
				// (A joiner: its join failed, as a tool waiting for
				// the Join Error line reads it.)
				m.rs.failJoin(&JoinError{Reason: "lost the control link to the initializer before joining; start this worker again once the cluster is back"})
				return
			}
			m.rs.lostInitializer()
		}
	}()
	select {
	case <-m.formed:
		return nil
	case err := <-m.rs.joinFailed:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// setTopology installs the worker list and the partition table and
// starts the outbound links (once: later changes are rescales).
//
// Once formed, a topology (the initializer sends one to a worker that
// rejoins) only updates where the workers' data listeners are: a worker
// that missed a PeerBack while its control link was down learns it so.
func (m *Member) setTopology(ctx context.Context, t Topology) {
	m.mu.Lock()
	var moved []PeerBack
	if m.workers == nil {
		m.setTopologyLocked(ctx, t)
	} else if t.Epoch >= m.table.Epoch() {
		data := m.reachableLocked(t)
		for _, d := range m.listenersMovedLocked(t.Workers, data) {
			if w := t.Workers[d[0]]; w != m.cfg.Name {
				moved = append(moved, PeerBack{Worker: w, Data: data[d[0]]})
			}
		}
	}
	m.mu.Unlock()
	for _, p := range moved {
		m.peerBack(p)
	}
}

// setTopologyLocked is setTopology with m.mu held.
func (m *Member) setTopologyLocked(ctx context.Context, t Topology) {
	if m.workers != nil {
		return
	}
	table, err := tableOf(t, m.cfg.Partitions)
	if err != nil {
		m.log.Error("the cluster's topology is not usable", "err", err)
		return
	}
	if t.Metrics != "" && m.metrics == "" {
		m.metrics = t.Metrics
	}
	if t.Sinks != nil && !m.cfg.Initializer {
		// (The initializer keeps those of its own command line, also
		// when it restarts from a saved topology.)
		m.sinks = slices.Clone(t.Sinks)
	}
	m.table = table
	m.installWorkersLocked(ctx, t.Workers, m.reachableLocked(t))
	m.log.Info("cluster formed", "workers", strings.Join(t.Workers, ","))
	close(m.formed)
	go m.heartbeats(ctx)
	go m.balance(ctx)
	go m.watchCongestion(ctx)
}

// listenersMovedLocked lists the workers whose data listener data (by
// workers' order) names otherwise than this member knows it: for each,
// its index in workers and in this member's list. m.mu held.
func (m *Member) listenersMovedLocked(workers, data []string) [][2]int {
	var out [][2]int
	for i, w := range workers {
		if k := slices.Index(m.workers, w); k >= 0 && k < len(m.dataAddrs) && i < len(data) && m.dataAddrs[k] != data[i] {
			out = append(out, [2]int{i, k})
		}
	}
	return out
}

// reachableLocked is t's data listeners as this worker dials them: an
// initializer whose --data binds every interface is reached at the host
// of its control channel, as this worker reached it (the others' hosts
// the initializer filled in as their connections came). m.mu held.
func (m *Member) reachableLocked(t Topology) []string {
	i := slices.Index(t.Workers, InitializerName)
	if i < 0 || i >= len(t.Data) || m.cfg.Initializer || m.initCtl == "" {
		return t.Data
	}
	h, p, err := net.SplitHostPort(t.Data[i])
	if err != nil || !anyInterface(h) {
		return t.Data
	}
	ch, _, err := net.SplitHostPort(m.initCtl)
	if err != nil {
		return t.Data
	}
	data := slices.Clone(t.Data)
	data[i] = net.JoinHostPort(ch, p)
	return data
}

// installWorkersLocked makes workers (with data listeners data) the
// cluster's members: every worker gets a slot (a new one is appended,
// with an outbound link) and the links of workers no longer listed are
// closed. m.mu held.
func (m *Member) installWorkersLocked(ctx context.Context, workers, data []string) {
	m.addSlotsLocked(ctx, workers, data)
	for slot, name := range m.slots {
		if o := m.outs[slot]; o != nil && !slices.Contains(workers, name) {
			if o.cancel != nil {
				o.cancel()
			}
			m.outs[slot] = nil
			delete(m.health, name)
			delete(m.loads, name)
		}
	}
	m.workers = slices.Clone(workers)
	m.dataAddrs = slices.Clone(data)
}

// addSlotsLocked gives each of workers without a link one (a new slot,
// or the old slot of a worker that left and comes back). m.mu held.
func (m *Member) addSlotsLocked(ctx context.Context, workers, data []string) {
	if m.index == nil {
		m.index = map[string]int{}
	}
	for i, w := range workers {
		slot, ok := m.index[w]
		if !ok {
			slot = len(m.slots)
			m.slots = append(m.slots, w)
			m.outs = append(m.outs, nil)
			m.index[w] = slot
		}
		if w == m.cfg.Name || m.outs[slot] != nil {
			continue
		}
		o := newOutbound(w, data[i], m.cfg.Hello, m.log)
		o.guard = m.cfg.Guard
		o.onUp = m.cfg.OnLinkUp
		o.full = m.cong.note
		o.stopping = m.stopping
		octx, cancel := context.WithCancel(ctx)
		o.cancel = cancel
		m.outs[slot] = o
		go o.run(octx)
	}
}

// tableOf is the partition table a topology describes: its owners, or
// for a newly formed cluster the first table of its workers.
func tableOf(t Topology, partitions int) (routing.Table, error) {
	names := make([]routing.WorkerName, len(t.Workers))
	for i, w := range t.Workers {
		names[i] = routing.WorkerName(w)
	}
	if len(t.Owners) == 0 {
		return routing.NewTable(partitions, names)
	}
	owners := make([]routing.WorkerName, len(t.Owners))
	for p, o := range t.Owners {
		if int(o) >= len(names) {
			return routing.Table{}, fmt.Errorf("partition %d owned by worker %d of %d", p, o, len(names))
		}
		owners[p] = names[o]
	}
	return routing.FromOwners(owners, names, t.Epoch)
}

// topologyLocked is the cluster as it is now, table included. m.mu held.
func (m *Member) topologyLocked() Topology {
	t := Topology{Workers: slices.Clone(m.workers), Data: slices.Clone(m.dataAddrs), Epoch: m.table.Epoch(), Metrics: m.metrics, Sinks: slices.Clone(m.sinks)}
	idx := map[routing.WorkerName]uint16{}
	for i, w := range m.workers {
		idx[routing.WorkerName(w)] = uint16(i)
	}
	for _, o := range m.table.Owners() {
		t.Owners = append(t.Owners, idx[o])
	}
	return t
}

// Table returns the cluster's partition table (zero before formation).
func (m *Member) Table() routing.Table {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.table
}

// sinkMismatch is the reason to refuse a worker whose application has
// another number of sinks than this initializer's ("" if none). m.mu held.
func (m *Member) sinkMismatch(j Join) string {
	if int(j.Sinks) == len(m.sinks) {
		return ""
	}
	return fmt.Sprintf("worker %q runs an application with %d sink(s), the initializer's has %d (%s): start every worker with the same application and options",
		j.Worker, j.Sinks, len(m.sinks), strings.Join(m.sinks, ", "))
}

// Sinks returns the addresses of the application's sinks every worker
// connects to: the initializer's own, as the topology it sent says (a
// worker started with another --out still writes where the initializer's
// application does, as in 0.6, where the topology came from the
// initializer).
func (m *Member) Sinks() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.sinks)
}

// Metrics returns the cluster's metrics address: a joiner's comes from
// the initializer.
func (m *Member) Metrics() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.metrics
}

// Workers returns the cluster's workers in order (the initializer first),
// or nil before formation.
func (m *Member) Workers() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.workers...)
}

// Inputs returns the number of processor-loop inputs a barrier would be
// aligned over by default: this worker's own sources (input 0) and one
// per slot (the peers' Dests). BarrierInputs names the ones of now.
func (m *Member) Inputs() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.slots) + 1
}

// SlowLinkEnv names the environment variable with which a test makes a
// worker read one peer's data link slowly: "<worker>:<peer>" (the
// worker of that name, the link from that peer). See Config.SlowFrom.
const SlowLinkEnv = "MACHIDA_TEST_SLOW_LINK"

// slowLinkPause is SlowFrom's pause per batch.
const slowLinkPause = 2 * time.Millisecond

// SlowFromEnv returns the peer whose link worker reads slowly according
// to value (SlowLinkEnv's), "" for none.
func SlowFromEnv(value, worker string) string {
	w, peer, ok := strings.Cut(value, ":")
	if !ok || w != worker {
		return ""
	}
	return peer
}

// BarrierInputs lists the loop inputs a barrier arrives on from the
// other workers of the cluster as it is now: each one's Dest.
func (m *Member) BarrierInputs() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int
	for _, w := range m.othersLocked() {
		out = append(out, m.index[w]+1)
	}
	return out
}

// SendBarrier forwards b on the data link to every other worker, behind
// everything routed to it before (on the loop's goroutine).
func (m *Member) SendBarrier(b barrier.Barrier) {
	m.mu.Lock()
	var outs []*outbound
	for _, w := range m.othersLocked() {
		if o := m.outs[m.index[w]]; o != nil {
			outs = append(outs, o)
		}
	}
	m.mu.Unlock()
	marker := BarrierMarker(b)
	for _, o := range outs {
		o.Send(context.Background(), work.Envelopes{Data: marker})
	}
}

// WorkerAt names the worker of destination d ("" if none).
func (m *Member) WorkerAt(d work.Dest) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if i := int(d) - 1; i >= 0 && i < len(m.slots) {
		return m.slots[i]
	}
	return ""
}

// Dest returns the ownership-table destination of worker w: its slot
// plus one (0 is always Here).
func (m *Member) Dest(w string) work.Dest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return work.Dest(m.index[w] + 1)
}

// holdDest is the destination that parks envelopes for partitions moving
// to the worker in slot during a rescale (see rescale.go): negative, so
// never a link's.
func holdDest(slot int) work.Dest { return work.Dest(-2 - slot) }

// heldSlot reads a holdDest.
func heldSlot(d work.Dest) (int, bool) { return int(-2 - d), d <= -2 }

// Route implements the loop's Route: the batch goes to the worker its
// destination names, over that link's replay queue (blocking while it is
// full).
func (m *Member) Route(ctx context.Context, e work.Envelopes) error {
	if len(e.Data) > MaxEnvelopeData {
		// It could never cross: the peer would refuse the frame, and
		// the link would send it again for ever.
		return fmt.Errorf("a batch of %d envelopes is %d bytes, more than a link carries (%d): a message this large cannot go to another worker", e.Count, len(e.Data), MaxEnvelopeData)
	}
	if _, ok := heldSlot(e.Dest); ok {
		m.park(e)
		return nil
	}
	m.mu.Lock()
	i := int(e.Dest) - 1
	var o *outbound
	if i >= 0 && i < len(m.outs) {
		o = m.outs[i]
	}
	m.mu.Unlock()
	if o == nil {
		return fmt.Errorf("no data link for destination %d", e.Dest)
	}
	return o.Send(ctx, e)
}

// Congested implements the loop's Hold: while the replay queue of any
// link to a peer is full, or (initializer) any worker says one of its
// own is (congestion.go), a channel that closes when that may have
// changed; nil otherwise.
func (m *Member) Congested() <-chan struct{} {
	if c := m.congestedHere(); c != nil {
		return c
	}
	return m.cong.held()
}

// congestedHere returns, while a replay queue of this worker's data
// links is full or it has parked as much as it may (a rescale's), a
// channel that closes when that may have changed; nil otherwise.
func (m *Member) congestedHere() <-chan struct{} {
	for _, o := range m.outbounds() {
		if o == nil {
			continue
		}
		if c := o.congested(); c != nil {
			return c
		}
	}
	return m.parkedFull()
}

// outbounds returns a copy of the outbound links (nil entries for this
// worker and for peers that left), to go through without m.mu.
func (m *Member) outbounds() []*outbound {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*outbound(nil), m.outs...)
}

// LinkStatus is one outbound data link as Links reports it.
type LinkStatus struct {
	Peer    string
	Up      bool
	Sent    uint64 // batches pushed since this process started
	Pending int    // batches not acknowledged yet (its replay queue)
}

// Links reports this worker's outbound data links (0.6's boundaries), in
// the order of its destinations.
func (m *Member) Links() []LinkStatus {
	outs := m.outbounds()
	var out []LinkStatus
	for _, o := range outs {
		if o == nil {
			continue
		}
		sent, pending, up := o.stats()
		out = append(out, LinkStatus{Peer: o.peer, Up: up, Sent: sent, Pending: pending})
	}
	return out
}

// LinksUp waits until every outbound data link has connected once, or
// a worker not yet started learns that its join failed (its initializer
// went, or aborted the grow: a link to a peer that will never know it
// would be waited for for ever).
func (m *Member) LinksUp(ctx context.Context) error {
	for {
		outs := m.outbounds()
		all := true
		var wait chan struct{}
		for _, o := range outs {
			if o == nil {
				continue
			}
			o.mu.Lock()
			if !o.up {
				all = false
				wait = o.wake
			}
			o.mu.Unlock()
			if !all {
				break
			}
		}
		if all {
			return nil
		}
		select {
		case <-wait:
		case err := <-m.rs.joinFailed:
			select {
			case m.rs.joinFailed <- err: // (for WaitStarted too)
			default:
			}
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Ready says this worker is ready (links up, sinks connected). On a
// worker it tells the initializer; the initializer starts the cluster
// once it and every worker are ready. WaitStarted then returns.
func (m *Member) Ready() error {
	if m.cfg.Initializer {
		m.mu.Lock()
		m.ready[m.cfg.Name] = true
		m.mu.Unlock()
		m.maybeStart()
		return nil
	}
	m.mu.Lock()
	c := m.toInit
	m.mu.Unlock()
	return c.send(KindReady, Text(m.cfg.Name))
}

func (m *Member) maybeStart() {
	if !m.cfg.Initializer {
		return
	}
	held := m.orphansHeld()
	m.readyMu.Lock()
	m.mu.Lock()
	n := len(m.ready)
	want := m.cfg.WorkerCount
	if len(m.workers) > 0 {
		want = len(m.workers) // grown or shrunk since formation
	}
	if n < want || m.startSent || held {
		// (Held while workers back frozen in a rescale of a crashed
		// run are undone: undoOrphans starts the cluster.)
		m.mu.Unlock()
		m.readyMu.Unlock()
		return
	}
	m.startSent = true // (the initializer's Ready and a worker's may race here)
	m.mu.Unlock()
	fmt.Fprintf(m.cfg.Console, "All %d workers reporting Topology ready!\n", want)
	m.readyMu.Unlock()
	m.broadcast(KindStart, nil)
	m.markStarted()
}

func (m *Member) markStarted() {
	m.mu.Lock()
	defer m.mu.Unlock()
	select {
	case <-m.started:
	default:
		close(m.started)
	}
}

// WaitStarted blocks until the whole cluster is ready.
func (m *Member) WaitStarted(ctx context.Context) error {
	select {
	case <-m.started:
		return nil
	case err := <-m.rs.joinFailed: // a joiner whose grow was aborted
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Started reports whether the cluster is processing.
func (m *Member) Started() bool {
	select {
	case <-m.started:
		return true
	default:
		return false
	}
}

// broadcast sends a control message to every worker (initializer only).
func (m *Member) broadcast(k Kind, p []byte) { m.broadcastExcept("", k, p) }

// broadcastExcept is broadcast to every control link but the one of the
// worker named except.
func (m *Member) broadcastExcept(except string, k Kind, p []byte) {
	m.mu.Lock()
	cs := make([]*ctlConn, 0, len(m.ctl))
	for name, c := range m.ctl {
		if name != except {
			cs = append(cs, c)
		}
	}
	m.mu.Unlock()
	for _, c := range cs {
		if err := c.send(k, p); err != nil {
			m.log.Warn("control message not sent", "peer", c.name, "kind", k.String(), "err", err)
		}
	}
}

// A clean stop of the cluster (spec 3.8) is drained: no message that a
// source read is dropped on the way between workers.
//
//  1. Whichever worker is told to stop asks the initializer
//     (RequestStop); the initializer itself simply begins.
//  2. The initializer stops its sources (the only ones) and runs
//     quiescence rounds (Drain): every worker reports whether it is idle
//     (its queue empty, its loop waiting, every batch it sent
//     acknowledged) and how many batches it has sent to peers and
//     received from them. Two rounds in a row in which every worker is
//     idle and those totals did not change mean nothing is in flight
//     anywhere.
//  3. The initializer tells every worker to stop now (StopAll); each
//     flushes its sinks and exits 0.
//
// The worker's ShutdownTimeout bounds all of it: past it, each stops
// with what it has. The initializer then stays until the workers have
// closed their control links, at most 10 s more (AwaitWorkersGone).

// RequestStop (non-initializer) asks the initializer to stop the
// cluster. An error means the initializer could not be told; the worker
// then stops alone.
func (m *Member) RequestStop(reason string) error {
	m.mu.Lock()
	c := m.toInit
	m.mu.Unlock()
	if c == nil {
		return errors.New("no control link to the initializer")
	}
	if m.KeepState() {
		if err := c.send(KindCheckpoint, Checkpoint{Op: OpKeepState}.Encode()); err != nil {
			return err
		}
	}
	return c.send(KindShutdown, Text(reason))
}

// StopAll (initializer) tells every worker to stop now.
func (m *Member) StopAll(reason string) {
	if m.KeepState() {
		m.broadcast(KindCheckpoint, Checkpoint{Op: OpKeepState}.Encode())
	}
	m.broadcast(KindShutdown, Text(reason))
	m.stopHere(reason)
}

// AwaitWorkersGone (initializer, at the end of a stop) waits until every
// worker has closed its control link, up to limit or ctx's end, reading
// them meanwhile: a process that exits with a peer's bytes unread resets
// its connections, and the reset throws away what it had not yet
// delivered, the Shutdown frame among them if the network lost it once
// (the worker would wait for its initializer for ever). It reports the
// workers still connected when it gave up; it returns at once if the
// workers were not told to stop (StopAll).
func (m *Member) AwaitWorkersGone(ctx context.Context, limit time.Duration) []string {
	if !m.stopping() {
		return nil
	}
	deadline := time.Now().Add(limit)
	for {
		m.mu.Lock()
		left := slices.Sorted(maps.Keys(m.ctl))
		m.mu.Unlock()
		if len(left) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return left
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// StopAsked (initializer) notes that a stop of the cluster has begun,
// before its drain and its last checkpoint: a grow or shrink that fails
// meanwhile does not wait for lost workers to come back to its undo
// (they will not), so the drain and the checkpoint, which wait for it,
// are not held for a minute.
func (m *Member) StopAsked() { m.stopAsked.Store(true) }

// stopComing reports whether a stop of the cluster has begun here
// (StopAsked) or been decided (stopping).
func (m *Member) stopComing() bool { return m.stopAsked.Load() || m.stopping() }

// stopHere marks this member as stopping and runs OnStop once.
func (m *Member) stopHere(reason string) {
	m.stopOnce.Do(func() {
		m.mu.Lock()
		m.shutdownR = reason
		m.mu.Unlock()
		if m.cfg.OnStop != nil {
			m.cfg.OnStop(reason)
		}
	})
}

// idleReply is this worker's answer to an Idle round.
func (m *Member) idleReply(round uint64) IdleReply {
	r := IdleReply{Round: round, Idle: m.cfg.Idle == nil || m.cfg.Idle()}
	if !r.Idle {
		m.log.Debug("not idle: the processor loop has work", "round", round)
	}
	outs := m.outbounds()
	for i, o := range outs {
		if o == nil {
			continue
		}
		pushed, pending, up := o.stats()
		r.Sent += pushed
		if pending > 0 {
			r.Idle = false
			m.log.Debug("not idle: batches not acknowledged", "round", round, "slot", i, "pending", pending, "up", up)
		}
	}
	m.rs.mu.Lock()
	// (Not rs.busy: a rescale accepted but waiting for the lock a
	// rollback's drain holds has nothing on its way yet.)
	parked, busy := len(m.rs.parked), m.rs.pending != nil
	m.rs.mu.Unlock()
	if parked > 0 || busy {
		// A grow or shrink under way holds messages back (parked until
		// the release): they are on their way too.
		r.Idle = false
		m.log.Debug("not idle: a grow or shrink is under way", "round", round, "parked", parked)
	}
	if m.in != nil {
		r.Processed = m.in.delivered()
	}
	return r
}

// Drain (initializer) waits until nothing is in flight anywhere in the
// cluster (see above), or ctx ends.
func (m *Member) Drain(ctx context.Context) error {
	m.drainMu.Lock()
	defer m.drainMu.Unlock()
	var last [2]uint64
	stable := 0
	for round := uint64(1); ; round++ {
		m.mu.Lock()
		cs := make([]*ctlConn, 0, len(m.ctl))
		for _, c := range m.ctl {
			cs = append(cs, c)
		}
		replies := make(chan IdleReply, len(cs))
		m.idleWait = replies
		m.idleRound = round
		m.mu.Unlock()
		for _, c := range cs {
			if err := c.send(KindIdle, Seq(round)); err != nil {
				return fmt.Errorf("drain: %s did not take the idle check: %w", c.name, err)
			}
		}
		all := m.idleReply(round)
		got := 0
		timeout := time.NewTimer(2 * time.Second)
	collect:
		for got < len(cs) {
			select {
			case r := <-replies:
				got++
				all.Idle = all.Idle && r.Idle
				all.Sent += r.Sent
				all.Processed += r.Processed
			case <-timeout.C:
				break collect
			case <-ctx.Done():
				timeout.Stop()
				return fmt.Errorf("drain: still busy (sent %d, received %d batches): %w", all.Sent, all.Processed, ctx.Err())
			}
		}
		timeout.Stop()
		// Idle includes "every batch I sent was acknowledged", so with
		// every worker idle nothing is queued or on a link; unchanged
		// totals since the last round mean nothing moved in between.
		// (The totals are per process: a worker that restarted counts
		// from zero, so sent and received need not agree.)
		quiet := got == len(cs) && all.Idle
		if quiet && [2]uint64{all.Sent, all.Processed} == last {
			stable++
		} else {
			stable = 0
		}
		last = [2]uint64{all.Sent, all.Processed}
		if stable >= 1 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("drain: still busy (sent %d, received %d batches): %w", all.Sent, all.Processed, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (m *Member) stopping() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.shutdownR != ""
}

// Flush waits until every batch sent to a peer has been acknowledged, or
// ctx ends (at a clean stop, so peers have what this worker made).
func (m *Member) Flush(ctx context.Context) error {
	outs := m.outbounds()
	var errs []error
	for _, o := range outs {
		if o == nil {
			continue
		}
		for {
			o.mu.Lock()
			n, wake, up := o.q.Pending(), o.wake, o.up
			o.mu.Unlock()
			if n == 0 {
				break
			}
			if !up {
				// The peer has gone (it is stopping too): what it has not
				// acknowledged is lost with it.
				errs = append(errs, fmt.Errorf("link to %s is down with %d batches not acknowledged", o.peer, n))
				break
			}
			select {
			case <-wake:
			case <-ctx.Done():
				return errors.Join(append(errs, fmt.Errorf("link to %s: %d batches not acknowledged at shutdown", o.peer, n))...)
			}
		}
	}
	return errors.Join(errs...)
}

// topologyFile (the initializer's, <app>-initializer.local-topology as
// in 0.6) records the cluster it runs: its workers, their data listeners
// and the partition table, so that a restarted initializer takes up the
// same cluster (what 0.6 kept in its .local-topology and
// .connection-addresses files, in our format). "" without a resilience
// directory.
func (m *Member) topologyFile() string { return m.initializerFile(".local-topology") }

// legacyTopologyFile is where earlier versions of this project kept the
// topology (<app>-initializer.cluster): read when .local-topology is not
// there, removed with the other files.
func (m *Member) legacyTopologyFile() string { return m.initializerFile(".cluster") }

// initializerFile is the initializer's recovery file with extension ext,
// "" on other workers or without a resilience directory.
func (m *Member) initializerFile(ext string) string {
	if m.cfg.ResilienceDir == "" || !m.cfg.Initializer {
		return ""
	}
	return filepath.Join(m.cfg.ResilienceDir, m.cfg.Hello.App+"-"+m.cfg.Name+ext)
}

// ownFile is this worker's recovery file with extension ext, "" without
// a resilience directory.
func (m *Member) ownFile(ext string) string {
	if m.cfg.ResilienceDir == "" {
		return ""
	}
	return filepath.Join(m.cfg.ResilienceDir, m.cfg.Hello.App+"-"+m.cfg.Name+ext)
}

// localFileExts are the files saveTopology writes on every worker, under
// 0.6's names (spec 4.2), in our formats; .connection-addresses not on
// the initializer, as in 0.6.
var localFileExts = []string{".local-topology", ".workers", ".local-keys", ".connection-addresses"}

// saveTopology writes the cluster as this worker knows it now, at
// formation and after every grow or shrink: .local-topology (the
// topology message: workers, data listeners, partition table, sinks; the
// initializer reads its own back when it restarts), .workers (the names,
// one per line, as 0.6 wrote them), .local-keys (the partitions of the
// key space this worker owns: its keys are those whose partition is
// listed; their states are in the checkpoints) and, on other workers,
// .connection-addresses (the initializer's control address and every
// worker's data listener). Only the initializer's topology is read back;
// the rest is for operators and their scripts.
func (m *Member) saveTopology() {
	if m.cfg.ResilienceDir == "" {
		return
	}
	m.mu.Lock()
	t := m.topologyLocked()
	if m.committedTopo != nil {
		t = *m.committedTopo // (recorded already: not the cluster of before)
	}
	m.mu.Unlock()
	m.saveTopologyAs(t)
}

// saveTopologyAs is saveTopology of t, the cluster as it is or as a
// rescale makes it (commitRescale); the error is that of the topology
// (also logged), the one file read back.
func (m *Member) saveTopologyAs(t Topology) error {
	if m.cfg.ResilienceDir == "" {
		return nil
	}
	// (One at a time: they write through the same temporary files.)
	m.saveMu.Lock()
	defer m.saveMu.Unlock()
	m.filesMu.Lock()
	m.topologySaved = true
	m.filesMu.Unlock()
	m.mu.Lock()
	initCtl := m.initCtl
	m.mu.Unlock()
	path := m.ownFile(".local-topology")
	tmp := path + ".tmp"
	err := os.WriteFile(tmp, t.Encode(), 0o644)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		err = fmt.Errorf("record the cluster's topology: %w", err)
		m.log.Warn("the cluster's topology was not recorded; a restarted initializer could not take it up", "file", path, "err", err)
	}
	topoErr := err
	if err := writeFile(m.ownFile(".workers"), strings.Join(t.Workers, "\n")); err != nil {
		m.log.Warn("the list of workers was not recorded", "err", err)
	}
	me := -1
	for i, w := range t.Workers {
		if w == m.cfg.Name {
			me = i
		}
	}
	keys := []string{fmt.Sprintf("# partitions of %d owned by %s (table epoch %d), one per line", len(t.Owners), m.cfg.Name, t.Epoch)}
	for p, o := range t.Owners {
		if int(o) == me {
			keys = append(keys, strconv.Itoa(p))
		}
	}
	if err := writeFile(m.ownFile(".local-keys"), strings.Join(keys, "\n")); err != nil {
		m.log.Warn("the partitions this worker owns were not recorded", "err", err)
	}
	if !m.cfg.Initializer {
		addrs := []string{"control " + InitializerName + " " + initCtl}
		for i, w := range t.Workers {
			addrs = append(addrs, "data "+w+" "+t.Data[i])
		}
		if err := writeFile(m.ownFile(".connection-addresses"), strings.Join(addrs, "\n")); err != nil {
			m.log.Warn("the cluster's addresses were not recorded", "err", err)
		}
	}
	return topoErr
}

// recordedInitializer is the initializer's control address in this
// worker's .connection-addresses (saveTopology), or "".
func (m *Member) recordedInitializer() string {
	path := m.ownFile(".connection-addresses")
	if path == "" {
		return ""
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "control" && f[1] == InitializerName {
			return f[2]
		}
	}
	return ""
}

// loadTopology reads what saveTopology wrote.
func (m *Member) loadTopology() (Topology, error) {
	path := m.topologyFile()
	if path == "" {
		return Topology{}, errors.New("no resilience directory")
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		// Written by an earlier version of this project.
		if old, oerr := os.ReadFile(m.legacyTopologyFile()); oerr == nil {
			b, err, path = old, nil, m.legacyTopologyFile()
		}
	}
	if err != nil {
		return Topology{}, err
	}
	t, err := DecodeTopology(b)
	if err != nil {
		// Earlier versions wrote no sink addresses (an empty list reads
		// the same).
		if old, oerr := DecodeTopology(append(b, 0, 0, 0, 0)); oerr == nil {
			return old, nil
		}
		return Topology{}, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// notAMember ends the reason an initializer gives for refusing a worker
// that is not in its cluster (a worker that dials it again reads it).
const notAMember = "is not one of them"

// rejoin (not the initializer) reconnects the control link to a
// restarted initializer, every 500 ms until it answers or this worker
// stops, and tells it this worker is ready again.
func (m *Member) rejoin(ctx context.Context, addr string) {
	if m.beforeRejoin != nil {
		m.beforeRejoin()
	}
	for ctx.Err() == nil && !m.stopping() {
		err := m.joinAt(ctx, addr, 0)
		if err == nil {
			m.peerBack(PeerBack{Worker: InitializerName}) // its data listener is back too
			if err := m.Ready(); err != nil {
				m.log.Warn("rejoined the initializer but could not say ready", "err", err)
			}
			m.log.Info("reconnected to the initializer", "initializer", addr)
			return
		}
		// Refused as not a member: the initializer has a cluster
		// without this worker. (Other refusals pass: an initializer
		// that has not yet seen the old link go says it is joined.)
		var refused *JoinError // (a worker that came by a grow is refused so)
		if (errors.Is(err, ErrRefused) || errors.As(err, &refused)) && strings.Contains(err.Error(), notAMember) && m.leftWhileOrphaned(ctx) {
			return
		}
		if !m.Started() && !m.restarted && errors.As(err, &refused) && strings.Contains(refused.Reason, notAMember) {
			// A joiner whose grow had committed here: the initializer
			// came back with the cluster from before it (and undoes it).
			m.rs.failJoin(&JoinError{Reason: "the initializer was lost during the grow and came back without this worker (" + refused.Reason + ")"})
			return
		}
		m.log.Warn("the initializer is not back yet", "initializer", addr, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}
