package metrics

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wallaroo-go/machida/internal/hubproto"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestHistogramBinsAndExtremes(t *testing.T) {
	h := NewHistogram()
	assert.Equal(t, uint64(math.MaxUint64), h.Min, "empty: min starts at 2^64-1")
	assert.Equal(t, uint64(0), h.Max)
	h.Add(0, 1)
	h.Add(1, 2)
	h.Add(3, 1)
	h.Add(4, 1)
	h.Add(1<<63, 1)
	h.Add(7, 0) // no samples: nothing changes
	assert.Equal(t, uint64(1), h.Bins[0])
	assert.Equal(t, uint64(2), h.Bins[1])
	assert.Equal(t, uint64(1), h.Bins[2]) // 2-3
	assert.Equal(t, uint64(1), h.Bins[3]) // 4-7
	assert.Equal(t, uint64(1), h.Bins[64])
	assert.Equal(t, uint64(6), h.Count)
	assert.Equal(t, uint64(0), h.Min)
	assert.Equal(t, uint64(1<<63), h.Max)
	assert.Equal(t, uint64(1<<63+9), h.Sum)
	h.Add(1<<63, 1)
	assert.Equal(t, uint64(math.MaxUint64), h.Sum, "the sum saturates")

	o := NewHistogram()
	o.Add(100, 3)
	m := NewHistogram()
	m.Merge(o)
	m.Merge(NewHistogram())
	assert.Equal(t, uint64(3), m.Count)
	assert.Equal(t, uint64(100), m.Min)
	assert.Equal(t, uint64(300), m.Sum)
}

func TestRegistryPeriodsAndTotals(t *testing.T) {
	r := NewRegistry("w1")
	assert.False(t, r.On())
	release := r.Acquire()
	assert.True(t, r.On())
	k := Key{Category: StartToEnd, Name: "p", Pipeline: "p"}
	r.Add(k, 1000, 5)
	r.Update(func(rc Recorder) {
		rc.Add(k, 10, 1)
		rc.Add(Key{Category: PipelineIngestion, Name: "p source", Pipeline: "p"}, 0, 7)
	})
	p := r.TakePeriod()
	require.Len(t, p, 2)
	assert.Equal(t, uint64(6), p[k].Count)
	assert.Empty(t, r.TakePeriod(), "a period without samples has no histograms")
	r.Add(k, 1, 1)
	tot := r.Totals()
	assert.Equal(t, uint64(7), tot[k].Count, "totals keep counting across periods")
	release()
	release() // twice is once
	assert.False(t, r.On())
	var nilReg *Registry
	assert.False(t, nilReg.On())
	nilReg.Counter("x").Inc() // a nil registry counts nothing, without failing
}

func TestCountersAndGauges(t *testing.T) {
	r := NewRegistry("w")
	c := r.Counter(SinkBytes, "sink", "out")
	c.Add(10)
	r.Counter(SinkBytes, "sink", "out").Add(5)
	r.Gauge(QueueDepth, func() float64 { return 3 }, "lane", "sources")
	cs := r.Counters()
	require.Len(t, cs, 1)
	assert.Equal(t, uint64(15), cs[0].Value)
	gs := r.Gauges()
	require.Len(t, gs, 1)
	assert.Equal(t, 3.0, gs[0].Value)
}

// hubListener accepts one connection and decodes what arrives.
func hubListener(t *testing.T) (addr string, msgs <-chan hubproto.Message) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	ch := make(chan hubproto.Message, 100)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			m, err := hubproto.ReadMessage(br, 1<<20)
			if err != nil {
				close(ch)
				return
			}
			ch <- m
		}
	}()
	return ln.Addr().String(), ch
}

func next(t *testing.T, ch <-chan hubproto.Message) hubproto.Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		require.True(t, ok, "the hub connection ended")
		return m
	case <-time.After(30 * time.Second):
		t.Fatal("no hub message within 30 s")
	}
	return hubproto.Message{}
}

// runHub runs a reporter of r for app to a hub listener of the test
// with period; cancel stops it, done is closed once it has returned.
func runHub(t *testing.T, r *Registry, app string, period time.Duration) (msgs <-chan hubproto.Message, cancel func(), done chan struct{}) {
	addr, msgs := hubListener(t)
	ctx, cancel := context.WithCancel(context.Background())
	done = make(chan struct{})
	go func() {
		RunHub(ctx, HubConfig{Addr: addr, App: app, Registry: r, Log: quiet(), Period: period})
		close(done)
	}()
	return msgs, cancel, done
}

func TestHubConnectsJoinsAndReportsEachPeriod(t *testing.T) {
	r := NewRegistry("worker7")
	msgs, cancel, done := runHub(t, r, "My App", 100*time.Millisecond)
	defer cancel()
	m := next(t, msgs)
	assert.Equal(t, hubproto.TypeConnect, m.Type)
	m = next(t, msgs)
	assert.Equal(t, hubproto.TypeJoin, m.Type)
	assert.Equal(t, "metrics:My App", m.Topic)
	assert.Equal(t, "worker7", m.Worker)
	// Connected: the registry is consumed.
	require.Eventually(t, r.On, 10*time.Second, time.Millisecond)
	k := Key{Category: Computation, Name: "split", Pipeline: "words", ID: 2}
	r.Add(k, 1500, 4)
	m = next(t, msgs)
	require.Equal(t, hubproto.TypePayload, m.Type)
	require.NotNil(t, m.Record)
	rec := m.Record
	assert.Equal(t, "metrics", m.Event)
	assert.Equal(t, "metrics:My App", m.Topic)
	assert.Equal(t, "split", rec.Name)
	assert.Equal(t, Computation, rec.Category)
	assert.Equal(t, "worker7", rec.Worker)
	assert.Equal(t, "words", rec.Pipeline)
	assert.Equal(t, uint16(2), rec.ID)
	assert.Equal(t, uint64(4), rec.Bins[Bin(1500)])
	assert.Equal(t, uint64(1500), rec.Min)
	assert.Equal(t, uint64(1500), rec.Max)
	assert.Equal(t, uint64(100*time.Millisecond), rec.Period)
	assert.Zero(t, rec.PeriodEnd%uint64(100*time.Millisecond), "periods end on multiples of the period")
	cancel()
	<-done
	assert.False(t, r.On(), "stopped: the hub no longer consumes")
}

// What a worker records in the period under way when it stops (or
// leaves the cluster) is sent before the reporter returns: the hub's
// totals are exact.
func TestHubSendsThePeriodUnderWayWhenItStops(t *testing.T) {
	r := NewRegistry("worker7")
	msgs, cancel, done := runHub(t, r, "a", time.Hour)
	defer cancel()
	next(t, msgs) // connect
	next(t, msgs) // join
	require.Eventually(t, r.On, 10*time.Second, time.Millisecond)
	r.Add(Key{Category: StartToEnd, Name: "p", Pipeline: "p"}, 1500, 7)
	cancel()
	<-done
	m := next(t, msgs)
	require.Equal(t, hubproto.TypePayload, m.Type)
	require.NotNil(t, m.Record)
	var n uint64
	for _, b := range m.Record.Bins {
		n += b
	}
	assert.Equal(t, uint64(7), n)
}

func TestHubRetriesUntilTheListenerAppears(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close() // nobody listens now
	r := NewRegistry("w")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go RunHub(ctx, HubConfig{Addr: addr, App: "a", Registry: r, Log: quiet(), Retry: 50 * time.Millisecond, Period: 50 * time.Millisecond})
	r.Add(Key{Category: StartToEnd, Name: "p", Pipeline: "p"}, 1, 1) // discarded: nobody listens
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	defer ln2.Close()
	c, err := ln2.Accept()
	require.NoError(t, err)
	defer c.Close()
	br := bufio.NewReader(c)
	m, err := hubproto.ReadMessage(br, 1<<20)
	require.NoError(t, err)
	assert.Equal(t, hubproto.TypeConnect, m.Type)
	require.Eventually(t, r.On, 10*time.Second, time.Millisecond)
	// The listener hangs up: the reporter notices and stops consuming.
	c.Close()
	require.Eventually(t, func() bool { return !r.On() }, 10*time.Second, time.Millisecond)
}

func TestPrometheusEndpoint(t *testing.T) {
	r := NewRegistry("w1")
	r.Add(Key{Category: PipelineIngestion, Name: "p source", Pipeline: "p"}, 0, 42)
	r.Add(Key{Category: Computation, Name: "split", Pipeline: "p", ID: 2}, 3000, 16)
	r.Add(Key{Category: StartToEnd, Name: "p", Pipeline: "p"}, 2_000_000, 9)
	r.Counter(SinkBytes, "sink", "out").Add(1234)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := Serve(ctx, addr, r, quiet()); err != nil {
		t.Skipf("port taken meanwhile: %v", err)
	}
	assert.True(t, r.On(), "a served registry is consumed")
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	text := string(body)
	for _, want := range []string{
		`wallaroo_messages_ingested_total{pipeline="p",worker="w1"} 42`,
		`wallaroo_stage_latency_seconds_count{pipeline="p",stage="split",worker="w1"} 16`,
		`wallaroo_stage_latency_seconds_bucket{pipeline="p",stage="split",worker="w1",le="4.096e-06"} 16`,
		`wallaroo_stage_latency_seconds_bucket{pipeline="p",stage="split",worker="w1",le="2.048e-06"} 0`,
		`wallaroo_end_to_end_latency_seconds_count{pipeline="p",worker="w1"} 9`,
		`wallaroo_sink_bytes_total{sink="out",worker="w1"} 1234`,
		`go_goroutines`,
		`process_cpu_seconds_total`,
	} {
		assert.True(t, strings.Contains(text, want), "missing %q in:\n%s", want, text)
	}
	// A second endpoint on the same address is refused at start-up.
	assert.Error(t, Serve(ctx, addr, r, quiet()))
}
