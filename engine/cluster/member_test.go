package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wallaroo-go/machida/engine/work"
	"github.com/wallaroo-go/machida/internal/linkauth"
)

type got struct {
	mu   sync.Mutex
	byIn map[int][]string
}

func (g *got) deliver(_ context.Context, in int, e work.Envelopes) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.byIn[in] = append(g.byIn[in], string(e.Data))
	return nil
}

func (g *got) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, v := range g.byIn {
		n += len(v)
	}
	return n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func hello() Hello { return Hello{App: "app", Digest: "d1", PyMajor: 3} }

// startCluster forms a cluster of n members on loopback.
func startCluster(t *testing.T, ctx context.Context, n int, mod func(i int, c *Config)) ([]*Member, []*got) {
	t.Helper()
	return startClusterIn(t, func(int) context.Context { return ctx }, n, mod)
}

// startClusterIn is startCluster with member i running until ctxOf(i)
// ends (a test crashes one member by ending its context).
func startClusterIn(t *testing.T, ctxOf func(i int) context.Context, n int, mod func(i int, c *Config)) ([]*Member, []*got) {
	t.Helper()
	ctx := ctxOf(0)
	var ms []*Member
	var gs []*got
	stops := make([]string, n)
	var smu sync.Mutex
	for i := 0; i < n; i++ {
		g := &got{byIn: map[int][]string{}}
		i := i
		cfg := Config{Name: fmt.Sprintf("worker%d", i), Initializer: i == 0, WorkerCount: n,
			Control: "127.0.0.1:0", Data: "127.0.0.1:0", MyControl: "127.0.0.1:0", Hello: hello(),
			Deliver: g.deliver, JoinTimeout: 10 * time.Second,
			OnStop: func(r string) { smu.Lock(); stops[i] = r; smu.Unlock() }}
		if i == 0 {
			// The initializer drains and stops the cluster when asked.
			cfg.OnShutdown = func(r string) {
				go func() {
					if err := ms[0].Drain(ctx); err != nil {
						t.Errorf("drain: %v", err)
					}
					ms[0].StopAll(r)
				}()
			}
		}
		if i > 0 {
			cfg.Control = ms[0].ctlL.Addr().String()
		}
		if mod != nil {
			mod(i, &cfg)
		}
		m := New(cfg)
		if err := m.Listen(); err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
		gs = append(gs, g)
	}
	errs := make(chan error, n)
	for i, m := range ms {
		go func(m *Member) { errs <- m.Start(ctxOf(i)) }(m)
	}
	for range ms {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	return ms, gs
}

// startAll has every member say ready and waits until each has started.
func startAll(t *testing.T, ctx context.Context, ms []*Member) {
	t.Helper()
	for _, m := range ms {
		if err := m.Ready(); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range ms {
		if err := m.WaitStarted(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// Every member connects its sinks where the initializer's application
// says (0.6 took the topology from the initializer), whatever its own
// command line gave.
func TestMember_SinksComeFromTheInitializer(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ms, _ := startCluster(t, ctx, 3, func(i int, c *Config) {
		c.Sinks = []string{fmt.Sprintf("out-of-%d:7002", i), fmt.Sprintf("out-of-%d:7003", i)}
	})
	for i, m := range ms {
		if got := strings.Join(m.Sinks(), ","); got != "out-of-0:7002,out-of-0:7003" {
			t.Errorf("member %d connects its sinks to %s, want the initializer's", i, got)
		}
	}
}

func TestMember_FormsRoutesAndShutsDown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ms, gs := startCluster(t, ctx, 3, nil)
	for _, m := range ms {
		// The initializer first, then the workers in the order of
		// their names.
		ws := m.Workers()
		rest := append([]string(nil), ws[1:]...)
		if ws[0] != "initializer" || strings.Join(rest, ",") != "worker1,worker2" {
			t.Fatalf("workers %v", ws)
		}
		if strings.Join(ws, ",") != strings.Join(ms[0].Workers(), ",") {
			t.Fatalf("worker %v and the initializer %v disagree on the order", ws, ms[0].Workers())
		}
		if err := m.LinksUp(ctx); err != nil {
			t.Fatal(err)
		}
	}
	startAll(t, ctx, ms)
	// 100 batches from the initializer to worker2, in order.
	for i := 0; i < 100; i++ {
		if err := ms[0].Route(ctx, work.Envelopes{Dest: ms[0].Dest("worker2"), Count: 1, Data: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "100 batches at worker2", func() bool { return gs[2].count() == 100 })
	gs[2].mu.Lock()
	for i, d := range gs[2].byIn[1] {
		if d != fmt.Sprint(i) {
			t.Fatalf("batch %d is %q", i, d)
		}
	}
	gs[2].mu.Unlock()
	if err := ms[0].Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Its links as boundary-count-status reports them: one per peer,
	// up, the 100 batches to worker2 all acknowledged.
	links := ms[0].Links()
	sent := map[string]uint64{}
	for _, l := range links {
		if !l.Up || l.Pending != 0 {
			t.Errorf("link %+v: want up with nothing unacknowledged", l)
		}
		sent[l.Peer] = l.Sent
	}
	if len(links) != 2 || sent["worker2"] != 100 || sent["worker1"] != 0 {
		t.Errorf("links %+v, want worker1 (0 sent) and worker2 (100 sent)", links)
	}
	// A worker asks for the shutdown: the initializer drains (nothing
	// is in flight: all 100 batches were acknowledged) and every member
	// stops.
	if err := ms[1].RequestStop("test"); err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		waitFor(t, fmt.Sprintf("member %d to stop", i), m.stopping)
	}
}

func TestMember_RefusesAMismatchedWorker(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	init := New(Config{Initializer: true, WorkerCount: 2, Control: "127.0.0.1:0", Data: "127.0.0.1:0", Hello: hello()})
	if err := init.Listen(); err != nil {
		t.Fatal(err)
	}
	go init.Start(ctx)
	for _, c := range []struct {
		h    Hello
		want string
	}{
		{Hello{App: "other", Digest: "d1", PyMajor: 3}, `application "other"`},
		{Hello{App: "app", Digest: "d2", PyMajor: 3}, "module digest"},
		{Hello{App: "app", Digest: "d1", PyMajor: 2}, "Python 2"},
		{Hello{App: "app", Digest: "d1", PyMajor: 3, Resilient: true}, "which has --run-with-resilience, this worker runs without it"},
	} {
		w := New(Config{Name: "w", Control: init.ctlL.Addr().String(), MyControl: "127.0.0.1:0", Data: "127.0.0.1:0", Hello: c.h, JoinTimeout: 5 * time.Second})
		if err := w.Listen(); err != nil {
			t.Fatal(err)
		}
		err := w.Start(ctx)
		w.Close()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("joining with %+v: %v, want %q", c.h, err, c.want)
		}
	}
	// The same application with another number of sinks (other
	// options): another pipeline. (The initializer here has none.)
	w := New(Config{Name: "w", Control: init.ctlL.Addr().String(), MyControl: "127.0.0.1:0", Data: "127.0.0.1:0", Hello: hello(),
		JoinTimeout: 5 * time.Second, Sinks: []string{"a:1"}})
	if err := w.Listen(); err != nil {
		t.Fatal(err)
	}
	err := w.Start(ctx)
	w.Close()
	if want := `worker "w" runs an application with 1 sink(s), the initializer's has 0`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("joining with another number of sinks: %v, want %q", err, want)
	}
}

func TestMember_WorkerGivesUpOnAnAbsentInitializer(t *testing.T) {
	w := New(Config{Name: "w", Control: "127.0.0.1:1", MyControl: "127.0.0.1:0", Data: "127.0.0.1:0", Hello: hello(), JoinTimeout: 300 * time.Millisecond})
	if err := w.Listen(); err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	err := w.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "cannot reach the initializer's control channel at 127.0.0.1:1") {
		t.Fatalf("err = %v", err)
	}
}

// A stop asked while batches are on the links waits for them: when the
// initializer says "stop now", every batch sent has arrived.
func TestMember_StopIsDrained(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var atStop sync.Map
	var gsRef []*got
	ms, gs := startCluster(t, ctx, 3, func(i int, c *Config) {
		c.OnStop = func(string) {
			atStop.Store(i, gsRef[i].count())
		}
	})
	gsRef = gs
	for _, m := range ms {
		if err := m.LinksUp(ctx); err != nil {
			t.Fatal(err)
		}
		m.Ready()
	}
	for _, m := range ms {
		m.WaitStarted(ctx)
	}
	for i := 0; i < 300; i++ {
		to := "worker1"
		if i%2 == 1 {
			to = "worker2"
		}
		if err := ms[0].Route(ctx, work.Envelopes{Dest: ms[0].Dest(to), Count: 1, Data: make([]byte, 4096)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ms[2].RequestStop("test"); err != nil {
		t.Fatal(err)
	}
	for i := range ms {
		// OnStop has run (it records the count), not just begun.
		waitFor(t, fmt.Sprintf("member %d to stop", i), func() bool { _, ok := atStop.Load(i); return ok })
	}
	for i, want := range []int{0, 150, 150} {
		n, _ := atStop.Load(i)
		if n != want {
			t.Errorf("member %d had %v batches when told to stop, want %d", i, n, want)
		}
	}
}

// Every member reports its utilisation to its peers; a dealer moves its
// spread shares toward the less busy worker.
func TestMember_LoadReportsMoveSpreadShares(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	var mu sync.Mutex
	var last map[string]float64
	startCluster(t, ctx, 2, func(i int, c *Config) {
		if i == 0 {
			c.BusyNanos = func() int64 { return int64(time.Since(start)) } // always busy
			c.OnSpread = func(s map[string]float64) { mu.Lock(); last = s; mu.Unlock() }
		} else {
			c.BusyNanos = func() int64 { return 0 } // always idle
		}
	})
	waitFor(t, "the idle worker to get most of the spread work", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return last != nil && last["worker1"] > 0.75 && last["initializer"] < 0.25
	})
}

func TestMember_HeldRescalesAreRefusedWithTheReason(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ms, _ := startCluster(t, ctx, 3, nil)
	startAll(t, ctx, ms)
	ms[0].HoldRescales("a rollback is under way")
	reply := ms[0].startShrink(ctx, ShrinkRequest{From: "test", Leaving: []string{"worker2"}})
	if reply != "Cannot shrink now: a rollback is under way; ask again when it is done" {
		t.Fatalf("shrink while held: %q", reply)
	}
	ms[0].rs.mu.Lock()
	busy := ms[0].rs.busy
	ms[0].rs.mu.Unlock()
	if busy {
		t.Fatal("a refused shrink left the initializer busy")
	}
}

func TestMember_PeerBackMakesLinksRedialAtOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	redialled := map[string]int{} // by worker: its links' reconnects to worker2
	ms, _ := startCluster(t, ctx, 3, func(i int, c *Config) {
		name := c.Name
		c.OnLinkUp = func(peer string, reconnect bool, _ int) {
			if peer == "worker2" && reconnect {
				mu.Lock()
				redialled[name]++
				mu.Unlock()
			}
		}
	})
	if o := ms[1].linkTo("worker2"); o == nil {
		t.Fatal("worker1 has no link to worker2")
	}
	if err := ms[1].LinksUp(ctx); err != nil {
		t.Fatal(err)
	}
	// The initializer tells the others that worker2 is back (as when it
	// rejoins after a restart): worker1's link to it drops the connection
	// it had (to worker2's earlier run, which may never have said it
	// ended) and dials at once.
	ms[0].broadcastExcept("worker2", KindPeerBack, PeerBack{Worker: "worker2"}.Encode())
	waitFor(t, "worker1's link to worker2 to dial again", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return redialled["worker1"] >= 1
	})
	mu.Lock()
	if redialled["worker2"] != 0 {
		t.Fatal("worker2 was told about itself")
	}
	mu.Unlock()

	// Back at another data listener (started afresh on other ports):
	// worker1's link dials it there, and the topology it would hand on
	// names it.
	moved, dialled := dialledOnce(t)
	ms[0].broadcastExcept("worker2", KindPeerBack, PeerBack{Worker: "worker2", Data: moved}.Encode())
	select {
	case <-dialled:
	case <-time.After(30 * time.Second):
		t.Fatal("worker1's link did not dial worker2's new data listener")
	}
	ms[1].mu.Lock()
	topo := ms[1].topologyLocked()
	ms[1].mu.Unlock()
	got := ""
	if i := slices.Index(topo.Workers, "worker2"); i >= 0 {
		got = topo.Data[i]
	}
	if got != moved {
		t.Errorf("worker1's topology has worker2's data listener at %s, want %s", got, moved)
	}

	// A PeerBack missed (worker1's control link was down) is made up
	// for by the topology the initializer sends when it rejoins.
	again, dialledAgain := dialledOnce(t)
	ms[0].mu.Lock()
	topo = ms[0].topologyLocked()
	c := ms[0].ctl["worker1"]
	ms[0].mu.Unlock()
	topo.Data[slices.Index(topo.Workers, "worker2")] = again
	if err := c.send(KindTopology, topo.Encode()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-dialledAgain:
	case <-time.After(30 * time.Second):
		t.Fatal("worker1's link did not dial the data listener a later topology names")
	}
}

// dialledOnce listens on a loopback port until the test ends; the
// channel closes when something dials it.
func dialledOnce(t *testing.T) (string, <-chan struct{}) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	dialled := make(chan struct{})
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Close()
			close(dialled)
		}
	}()
	return l.Addr().String(), dialled
}

// A worker of the formed cluster that comes back afresh (no recovery
// files: its Hello says no restart) is asked about (FreshRejoin) and
// refused with the reason given; without the hook it is let in.
func TestMember_FreshRejoinAskedAndRefused(t *testing.T) {
	for _, c := range []struct {
		refuse, grown bool
	}{{true, false}, {false, false}, {true, true}} {
		refuse, grown := c.refuse, c.grown
		t.Run(fmt.Sprintf("refuse=%v,grown=%v", refuse, grown), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var asked []string
			var amu sync.Mutex
			ms, _ := startCluster(t, ctx, 2, func(i int, c *Config) {
				if i == 0 && refuse {
					c.FreshRejoin = func(w string, restarted bool) string {
						amu.Lock()
						asked = append(asked, w)
						amu.Unlock()
						return "no thanks"
					}
				}
			})
			// worker1's process dies: its control link closes.
			ms[0].mu.Lock()
			link := ms[0].ctl["worker1"]
			ms[0].mu.Unlock()
			link.conn.Close()
			waitFor(t, "the initializer to drop worker1's link", func() bool {
				ms[0].mu.Lock()
				defer ms[0].mu.Unlock()
				return ms[0].ctl["worker1"] == nil
			})
			ms[1].Close()
			wc := Config{Name: "worker1", Control: ms[0].ctlL.Addr().String(), MyControl: "127.0.0.1:0", Data: "127.0.0.1:0",
				Hello: hello(), JoinTimeout: 5 * time.Second, Deliver: (&got{byIn: map[int][]string{}}).deliver}
			if grown {
				// As a worker that came in by a grow, restarted from
				// files that hold no checkpoint: its command line still
				// has --join and a worker count.
				wc.Joining, wc.NoCheckpoints = 1, true
			}
			w := New(wc)
			if err := w.Listen(); err != nil {
				t.Fatal(err)
			}
			if grown {
				w.restarted, w.cfg.Hello.Restart = true, true
			}
			defer w.Close()
			err := w.Start(ctx)
			if grown {
				// Not asked: see the comment where FreshRejoin is called.
				if err != nil {
					t.Fatalf("a worker that came in by a grow, restarted: %v", err)
				}
				amu.Lock()
				defer amu.Unlock()
				if len(asked) != 0 {
					t.Errorf("FreshRejoin asked about %v for a worker that came in by a grow", asked)
				}
				return
			}
			if !refuse {
				if err != nil {
					t.Fatalf("a fresh rejoin without the hook: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "no thanks") {
				t.Fatalf("a fresh rejoin: %v, want the hook's reason", err)
			}
			amu.Lock()
			defer amu.Unlock()
			if len(asked) != 1 || asked[0] != "worker1" {
				t.Errorf("FreshRejoin asked about %v, want [worker1]", asked)
			}
		})
	}
}

func TestHostFrom(t *testing.T) {
	remote := func(s string) net.Addr {
		a, err := net.ResolveTCPAddr("tcp", s)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	for _, c := range []struct{ addr, remote, want string }{
		{"0.0.0.0:7001", "10.0.0.2:40000", "10.0.0.2:7001"},
		{"[::]:7001", "10.0.0.2:40000", "10.0.0.2:7001"},
		{":7001", "10.0.0.2:40000", "10.0.0.2:7001"},
		{"127.0.0.1:7001", "10.0.0.2:40000", "127.0.0.1:7001"}, // bound to loopback: only there
		{"127.0.0.1:7001", "127.0.0.1:40000", "127.0.0.1:7001"},
		{"10.0.0.9:7001", "10.0.0.2:40000", "10.0.0.9:7001"}, // an address of its own choosing
		{"worker1.example:7001", "10.0.0.2:40000", "worker1.example:7001"},
		{"not an address", "10.0.0.2:40000", "not an address"},
	} {
		if got := hostFrom(c.addr, remote(c.remote)); got != c.want {
			t.Errorf("hostFrom(%q, %s) = %q, want %q", c.addr, c.remote, got, c.want)
		}
	}
}

// A stopping initializer waits for the workers it told to stop to close
// their control links (its exit would reset connections with a stop
// frame not yet delivered), and gives up after its limit naming those
// still there.
func TestMember_AwaitWorkersGone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ms, _ := startCluster(t, ctx, 3, nil)
	startAll(t, ctx, ms)
	if left := ms[0].AwaitWorkersGone(ctx, time.Hour); left != nil {
		t.Fatalf("before the workers were told to stop: %v, want nothing (and at once)", left)
	}
	ms[0].stopHere("test") // as StopAll does, without telling them
	if left := ms[0].AwaitWorkersGone(ctx, 50*time.Millisecond); !slices.Equal(left, []string{"worker1", "worker2"}) {
		t.Fatalf("with both workers connected: %v, want both named", left)
	}
	// Both stop (they do not dial the initializer again) and close
	// their control links, as their processes do when they exit.
	for _, w := range ms[1:] {
		w.stopHere("test")
		w.mu.Lock()
		c := w.toInit
		w.mu.Unlock()
		c.conn.Close()
	}
	if left := ms[0].AwaitWorkersGone(ctx, 30*time.Second); len(left) > 0 {
		t.Fatalf("workers gone: %v still connected", left)
	}
}

// A worker dials an initializer whose --data binds every interface at
// the host it reached the initializer's control channel at.
func TestMember_ReachesAWildcardInitializerAtItsControlHost(t *testing.T) {
	w := New(Config{Name: "worker1"})
	w.initCtl = "10.0.0.1:6000"
	for _, c := range []struct{ data, want string }{
		{"[::]:6001", "10.0.0.1:6001"},
		{"0.0.0.0:6001", "10.0.0.1:6001"},
		{":6001", "10.0.0.1:6001"},
		{"10.0.0.7:6001", "10.0.0.7:6001"},
		{"127.0.0.1:6001", "127.0.0.1:6001"},
	} {
		got := w.reachableLocked(Topology{Workers: []string{InitializerName, "worker1", "worker2"}, Data: []string{c.data, "[::]:1", "10.0.0.3:2"}})
		if !slices.Equal(got, []string{c.want, "[::]:1", "10.0.0.3:2"}) {
			t.Errorf("initializer at %s: dialled %v, want %s (and the others as given)", c.data, got, c.want)
		}
	}
}

// A worker without a secret or TLS whose initializer closes or resets the
// first exchange is told the initializer may require them; an error of
// another kind, or a worker that runs protected, gets no such hint.
func TestMember_UnprotectedHint(t *testing.T) {
	plain := New(Config{Name: "worker1", Hello: hello()})
	for _, err := range []error{syscall.ECONNRESET, syscall.EPIPE, io.EOF, io.ErrUnexpectedEOF,
		fmt.Errorf("write: %w", syscall.ECONNRESET)} {
		if got := plain.unprotectedHint(err); !strings.Contains(got, "cluster secret or TLS that this worker lacks") {
			t.Errorf("%v: hint %q", err, got)
		}
	}
	if got := plain.unprotectedHint(errors.New("no route to host")); got != "" {
		t.Errorf("another error: hint %q", got)
	}
	guarded := New(Config{Name: "worker1", Hello: hello(), Guard: linkauth.New(linkauth.Config{Secret: []byte("a secret of sixteen bytes or more")})})
	if got := guarded.unprotectedHint(io.EOF); got != "" {
		t.Errorf("a protected worker: hint %q", got)
	}
}

// A peer that says nothing before the first exchange's deadline (a
// protected worker waiting for a challenge) gets a hint on an
// unprotected worker only, and only for that silence.
func TestSilentPeerHint(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	a.SetReadDeadline(time.Now().Add(time.Millisecond))
	_, err := bufio.NewReader(a).ReadByte()
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v", err)
	}
	err = fmt.Errorf("waiting for the peer's hello: %w", err)
	if got := silentPeerHint(false, err); !strings.Contains(got, "cluster secret that this worker lacks") {
		t.Errorf("unprotected, silent peer: hint %q", got)
	}
	if got := silentPeerHint(true, err); got != "" {
		t.Errorf("protected: hint %q", got)
	}
	if got := silentPeerHint(false, io.EOF); got != "" {
		t.Errorf("a closed link: hint %q", got)
	}
}

// A worker that has left (a shrink) goes on beating until it stops: its
// heartbeats are not taken up again, so it is never reported silent.
func TestMember_AWorkerThatLeftIsNotTrackedByItsHeartbeats(t *testing.T) {
	m := New(Config{Name: "initializer", Initializer: true, Hello: hello()})
	m.workers = []string{"initializer", "worker1"}
	m.heard("worker1", 0)
	m.heard("worker2", 0) // left
	m.mu.Lock()
	for _, h := range m.health {
		h.last = time.Now().Add(-time.Hour) // both silent since
	}
	m.mu.Unlock()
	if got := m.Unresponsive(); len(got) != 1 || !strings.HasPrefix(got[0], "worker1: no heartbeat") {
		t.Errorf("unresponsive: %v, want worker1 only", got)
	}
}
