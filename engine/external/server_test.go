package external

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wallaroo-go/machida/internal/extframe"
	"github.com/wallaroo-go/machida/internal/linkauth"
)

// fakeStatus is an in-memory Status. Fields are set before the server
// starts; calls are recorded under mu.
type fakeStatus struct {
	initialized bool
	workers     []string
	processing  bool
	worker      string
	state       map[string][]string
	stateless   map[string][]string
	sources     []string
	entities    map[string][]string
	entitiesErr error
	eligible    []string
	shrinkReply string
	canRotate   bool

	shutdowns chan string // every Shutdown reason

	mu      sync.Mutex
	shrinks []string // "names=[..] count=n" per Shrink call
	rotated []string
}

func newFakeStatus() *fakeStatus {
	return &fakeStatus{
		initialized: true,
		workers:     []string{"initializer", "w1"},
		processing:  true,
		worker:      "w1",
		state:       map[string][]string{"111": {"1", "2"}, "222": {}},
		stateless:   map[string][]string{"333": {"3"}},
		sources:     []string{"s1", "s2"},
		entities:    map[string][]string{"111": {"a", "b"}, "222": nil},
		eligible:    []string{"w1", "w2"},
		shrinkReply: "Shrinking by 1 workers!",
		canRotate:   true,
		shutdowns:   make(chan string, 10),
	}
}

func (f *fakeStatus) Initialized() bool                   { return f.initialized }
func (f *fakeStatus) Cluster() ([]string, bool)           { return f.workers, f.processing }
func (f *fakeStatus) Worker() string                      { return f.worker }
func (f *fakeStatus) StateSteps() map[string][]string     { return f.state }
func (f *fakeStatus) StatelessSteps() map[string][]string { return f.stateless }
func (f *fakeStatus) SourceIDs() []string                 { return f.sources }
func (f *fakeStatus) StateEntities() (map[string][]string, error) {
	return f.entities, f.entitiesErr
}
func (f *fakeStatus) Shutdown(reason string) { f.shutdowns <- reason }
func (f *fakeStatus) Boundaries() string     { return "2 data links: w1 up; w2 down" }
func (f *fakeStatus) ShrinkQuery() []string  { return f.eligible }
func (f *fakeStatus) Shrink(names []string, count int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.shrinks = append(f.shrinks, fmt.Sprintf("names=%q count=%d", names, count))
	return f.shrinkReply
}
func (f *fakeStatus) RotateLog(worker string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rotated = append(f.rotated, worker)
	if !f.canRotate {
		return errors.New("this worker runs without --log-rotation")
	}
	return nil
}

func (f *fakeStatus) calls() (shrinks, rotated []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.shrinks...), append([]string(nil), f.rotated...)
}

// syncLog is a log destination safe for concurrent use.
type syncLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// startServer serves st on a free loopback port until the test ends, then
// checks that Serve returned nil.
func startServer(t *testing.T, st Status) (addr string, logs *syncLog) {
	t.Helper()
	logs = &syncLog{}
	s := NewServer(Config{Addr: "127.0.0.1:0"}, st, log.New(logs, "", 0))
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s.Addr().String(), logs
}

// dial connects to addr; every read and write must finish within 10 s.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

func send(t *testing.T, c net.Conn, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

func recv(t *testing.T, c net.Conn) extframe.Frame {
	t.Helper()
	f, err := extframe.Read(c, extframe.MaxRequestLen)
	if err != nil {
		t.Fatalf("read reply: %v", err)
	}
	return f
}

// ask sends one request and returns the reply.
func ask(t *testing.T, c net.Conn, id extframe.MsgID, payload string) extframe.Frame {
	t.Helper()
	send(t, c, extframe.Append(nil, id, []byte(payload)))
	return recv(t, c)
}

// expectClosed checks that the server closes c without sending anything.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	b, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("connection not closed: %v", err)
	}
	if len(b) > 0 {
		t.Fatalf("got % x before close, want nothing", b)
	}
}

func TestServer_Queries(t *testing.T) {
	addr, _ := startServer(t, newFakeStatus())
	cases := []struct {
		name    string
		req     extframe.MsgID
		payload string
		id      extframe.MsgID
		want    string
	}{
		{"partition-query", extframe.MsgPartitionQuery, "", extframe.MsgPartitionQueryResponse,
			`{"state_partitions":{"111":{"w1":["1","2"]},"222":{"w1":[]}},"stateless_partitions":{"333":{"w1":["3"]}}}`},
		{"partition-count-query", extframe.MsgPartitionCountQuery, "", extframe.MsgPartitionCountQueryResponse,
			`{"state_partitions":{"111":{"w1":2},"222":{"w1":0}},"stateless_partitions":{"333":{"w1":1}}}`},
		{"cluster-status-query", extframe.MsgClusterStatusQuery, "", extframe.MsgClusterStatusQueryResponse,
			`{"worker_count":2,"worker_names":["initializer","w1"],"processing_messages":true}`},
		{"source-ids-query", extframe.MsgSourceIDsQuery, "", extframe.MsgSourceIDsQueryResponse,
			`{"source_ids":["s1","s2"]}`},
		{"state-entity-query", extframe.MsgStateEntityQuery, "", extframe.MsgStateEntityQueryResponse,
			`{"111":["a","b"],"222":[]}`},
		{"state-entity-count-query", extframe.MsgStateEntityCountQuery, "", extframe.MsgStateEntityCountQueryResponse,
			`{"111":2,"222":0}`},
		{"stateless-partition-query", extframe.MsgStatelessPartitionQuery, "", extframe.MsgStatelessPartitionQueryResponse,
			`{"333":{"w1":["3"]}}`},
		{"stateless-partition-count-query", extframe.MsgStatelessPartitionCountQuery, "", extframe.MsgStatelessPartitionCountQueryResponse,
			`{"333":{"w1":1}}`},
		{"shrink query", extframe.MsgShrinkRequest, `{"query": true, "node_names": [], "node_count": 0}`, extframe.MsgShrinkQueryResponse,
			`{"node_names":["w1","w2"],"node_count":2}`},
		{"shrink by count", extframe.MsgShrinkRequest, `{"query": false, "node_names": [], "node_count": 1}`, extframe.MsgShrinkErrorResponse,
			`Shrinking by 1 workers!`},
		{"query payload ignored", extframe.MsgSourceIDsQuery, "junk", extframe.MsgSourceIDsQueryResponse,
			`{"source_ids":["s1","s2"]}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, addr)
			got := ask(t, c, tc.req, tc.payload)
			if got.ID != tc.id || string(got.Payload) != tc.want {
				t.Fatalf("reply %s %s\nwant  %s %s", got.ID, got.Payload, tc.id, tc.want)
			}
		})
	}
}

func TestServer_EmptyStatusGivesEmptyCollections(t *testing.T) {
	addr, _ := startServer(t, &fakeStatus{initialized: true, worker: "initializer"})
	c := dial(t, addr)
	for _, tc := range []struct {
		req  extframe.MsgID
		want string
	}{
		{extframe.MsgPartitionQuery, `{"state_partitions":{},"stateless_partitions":{}}`},
		{extframe.MsgPartitionCountQuery, `{"state_partitions":{},"stateless_partitions":{}}`},
		{extframe.MsgClusterStatusQuery, `{"worker_count":0,"worker_names":[],"processing_messages":false}`},
		{extframe.MsgSourceIDsQuery, `{"source_ids":[]}`},
		{extframe.MsgStateEntityQuery, `{}`},
		{extframe.MsgStateEntityCountQuery, `{}`},
		{extframe.MsgStatelessPartitionQuery, `{}`},
		{extframe.MsgStatelessPartitionCountQuery, `{}`},
		{extframe.MsgShrinkRequest, `{"node_names":[],"node_count":0}`},
	} {
		payload := ""
		if tc.req == extframe.MsgShrinkRequest {
			payload = `{"query":true}`
		}
		if got := ask(t, c, tc.req, payload); string(got.Payload) != tc.want {
			t.Errorf("%s: reply %s, want %s", tc.req, got.Payload, tc.want)
		}
	}
}

func TestServer_ClusterStatusBeforeInitialized(t *testing.T) {
	st := newFakeStatus()
	st.initialized = false
	addr, _ := startServer(t, st)
	got := ask(t, dial(t, addr), extframe.MsgClusterStatusQuery, "")
	if got.ID != extframe.MsgClusterStatusQueryResponseNotInitialized || len(got.Payload) != 0 {
		t.Fatalf("reply %s %q, want %s with no payload", got.ID, got.Payload, extframe.MsgClusterStatusQueryResponseNotInitialized)
	}
}

func TestServer_StateEntitiesErrorRepliesEmptyObject(t *testing.T) {
	st := newFakeStatus()
	st.entitiesErr = errors.New("steps did not answer")
	addr, logs := startServer(t, st)
	c := dial(t, addr)
	for req, id := range map[extframe.MsgID]extframe.MsgID{
		extframe.MsgStateEntityQuery:      extframe.MsgStateEntityQueryResponse,
		extframe.MsgStateEntityCountQuery: extframe.MsgStateEntityCountQueryResponse,
	} {
		if got := ask(t, c, req, ""); got.ID != id || string(got.Payload) != "{}" {
			t.Errorf("%s: reply %s %s, want %s {}", req, got.ID, got.Payload, id)
		}
	}
	if !strings.Contains(logs.String(), "state entity query: steps did not answer") {
		t.Errorf("log lacks the error:\n%s", logs)
	}
}

func TestServer_ShrinkRequests(t *testing.T) {
	st := newFakeStatus()
	st.shrinkReply = "Invalid shrink targets!"
	addr, logs := startServer(t, st)
	c := dial(t, addr)

	got := ask(t, c, extframe.MsgShrinkRequest, `{"query":false,"node_names":["initializer"],"node_count":0}`)
	if got.ID != extframe.MsgShrinkErrorResponse || string(got.Payload) != "Invalid shrink targets!" {
		t.Fatalf("reply %s %q", got.ID, got.Payload)
	}
	got = ask(t, c, extframe.MsgShrinkRequest, `{"node_count":3}`)
	if got.ID != extframe.MsgShrinkErrorResponse {
		t.Fatalf("reply %s %q", got.ID, got.Payload)
	}
	shrinks, _ := st.calls()
	want := []string{`names=["initializer"] count=0`, `names=[] count=3`}
	if fmt.Sprint(shrinks) != fmt.Sprint(want) {
		t.Fatalf("Shrink calls %q, want %q", shrinks, want)
	}

	got = ask(t, c, extframe.MsgShrinkRequest, `{"query":`)
	if got.ID != extframe.MsgShrinkErrorResponse || !strings.HasPrefix(string(got.Payload), "Invalid shrink request: ") {
		t.Fatalf("reply to bad JSON %s %q", got.ID, got.Payload)
	}
	if shrinks, _ := st.calls(); len(shrinks) != 2 {
		t.Fatalf("bad JSON reached Shrink: %q", shrinks)
	}
	if !strings.Contains(logs.String(), "invalid ShrinkRequest") {
		t.Errorf("log lacks the bad request:\n%s", logs)
	}
}

func TestServer_SeveralRequestsOnOneConnection(t *testing.T) {
	addr, _ := startServer(t, newFakeStatus())
	c := dial(t, addr)
	var b []byte
	b = extframe.Append(b, extframe.MsgSourceIDsQuery, nil)
	b = extframe.Append(b, extframe.MsgPrint, []byte("no reply"))
	b = extframe.Append(b, extframe.MsgClusterStatusQuery, nil)
	b = extframe.Append(b, extframe.MsgReportStatus, []byte("boundary-count-status"))
	b = extframe.Append(b, extframe.MsgStatelessPartitionCountQuery, nil)
	send(t, c, b) // one write
	for _, want := range []extframe.MsgID{extframe.MsgSourceIDsQueryResponse, extframe.MsgClusterStatusQueryResponse, extframe.MsgStatelessPartitionCountQueryResponse} {
		if got := recv(t, c); got.ID != want {
			t.Fatalf("reply %s, want %s", got.ID, want)
		}
	}
}

func TestServer_ZeroLengthFramesIgnored(t *testing.T) {
	addr, _ := startServer(t, newFakeStatus())
	c := dial(t, addr)
	send(t, c, []byte{0, 0, 0, 0, 0, 0, 0, 0})
	if got := ask(t, c, extframe.MsgSourceIDsQuery, ""); got.ID != extframe.MsgSourceIDsQueryResponse {
		t.Fatalf("reply %s", got.ID)
	}
}

func TestServer_PrintReportStatusAndRotateLogAreLogged(t *testing.T) {
	st := newFakeStatus()
	addr, logs := startServer(t, st)
	c := dial(t, addr)
	var b []byte
	b = extframe.Append(b, extframe.MsgPrint, []byte("hello there"))
	b = extframe.Append(b, extframe.MsgReportStatus, []byte("boundary-count-status"))
	b = extframe.Append(b, extframe.MsgRotateLog, []byte("w1"))
	send(t, c, b)
	// Requests on a connection are handled in order: once this reply is
	// here, the ones before it are done.
	ask(t, c, extframe.MsgSourceIDsQuery, "")
	for _, want := range []string{"$$$ ExternalPrint: hello there $$$\n", `ReportStatus "boundary-count-status"`,
		"boundary count: 2 data links: w1 up; w2 down", `RotateLog for worker "w1"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs.String(), "not done") {
		t.Errorf("rotation reported unsupported:\n%s", logs)
	}
	if _, rotated := st.calls(); fmt.Sprint(rotated) != "[w1]" {
		t.Errorf("RotateLog calls %q, want [w1]", rotated)
	}
}

func TestServer_RotateLogUnsupportedIsLogged(t *testing.T) {
	st := newFakeStatus()
	st.canRotate = false
	addr, logs := startServer(t, st)
	c := dial(t, addr)
	send(t, c, extframe.Append(nil, extframe.MsgRotateLog, []byte("initializer")))
	ask(t, c, extframe.MsgSourceIDsQuery, "")
	if !strings.Contains(logs.String(), `RotateLog for worker "initializer" not done: this worker runs without --log-rotation`) {
		t.Errorf("log lacks the refusal:\n%s", logs)
	}
}

func TestServer_CleanShutdownCallsStatus(t *testing.T) {
	for _, tc := range []struct{ payload, suffix string }{
		{"", ""},
		{"operator says so", ": operator says so"},
	} {
		st := newFakeStatus()
		addr, _ := startServer(t, st)
		c := dial(t, addr)
		send(t, c, extframe.Append(nil, extframe.MsgCleanShutdown, []byte(tc.payload)))
		select {
		case reason := <-st.shutdowns:
			if !strings.HasPrefix(reason, "CleanShutdown from external channel client 127.0.0.1:") || !strings.HasSuffix(reason, tc.suffix) {
				t.Errorf("Shutdown reason %q", reason)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Shutdown not called within 10s")
		}
		// The connection stays usable (the worker ends it by shutting down).
		ask(t, c, extframe.MsgSourceIDsQuery, "")
	}
}

func TestServer_UnknownIDIgnored(t *testing.T) {
	addr, logs := startServer(t, newFakeStatus())
	c := dial(t, addr)
	send(t, c, extframe.Append(nil, 99, []byte("??")))
	send(t, c, extframe.Append(nil, extframe.MsgSourceIDsQueryResponse, []byte("{}"))) // a reply id sent to the worker
	if got := ask(t, c, extframe.MsgSourceIDsQuery, ""); got.ID != extframe.MsgSourceIDsQueryResponse {
		t.Fatalf("reply %s", got.ID)
	}
	for _, want := range []string{"ignoring message MsgID(99) (2 payload bytes)", "ignoring message SourceIdsQueryResponse"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

func TestServer_MalformedFrameClosesOnlyThatConnection(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		log  string
	}{
		{"length 1", rawFrame(1, 0), "length 1 leaves no room"},
		{"length above 1 MiB", rawFrame(extframe.MaxRequestLen + 1), fmt.Sprintf("length %d exceeds", extframe.MaxRequestLen+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, logs := startServer(t, newFakeStatus())
			good := dial(t, addr)
			ask(t, good, extframe.MsgSourceIDsQuery, "")
			bad := dial(t, addr)
			send(t, bad, tc.in)
			expectClosed(t, bad)
			if !strings.Contains(logs.String(), "closing connection from 127.0.0.1:") || !strings.Contains(logs.String(), tc.log) {
				t.Errorf("log lacks the reason %q:\n%s", tc.log, logs)
			}
			if got := ask(t, good, extframe.MsgClusterStatusQuery, ""); got.ID != extframe.MsgClusterStatusQueryResponse {
				t.Fatalf("other connection: reply %s", got.ID)
			}
			if got := ask(t, dial(t, addr), extframe.MsgClusterStatusQuery, ""); got.ID != extframe.MsgClusterStatusQueryResponse {
				t.Fatalf("new connection: reply %s", got.ID)
			}
		})
	}
}

// A flood of malformed connections from one host is logged within the
// bounds of linkauth.RefusalLog; the channel goes on answering.
func TestServer_MalformedConnectionsAreLoggedInBursts(t *testing.T) {
	addr, logs := startServer(t, newFakeStatus())
	for i := 0; i < linkauth.RefusalBurst+4; i++ {
		bad := dial(t, addr)
		send(t, bad, rawFrame(1, 0))
		expectClosed(t, bad)
	}
	if n := strings.Count(logs.String(), "closing connection from 127.0.0.1:"); n != linkauth.RefusalBurst {
		t.Errorf("%d lines for %d malformed connections, want %d:\n%s", n, linkauth.RefusalBurst+4, linkauth.RefusalBurst, logs)
	}
	if got := ask(t, dial(t, addr), extframe.MsgClusterStatusQuery, ""); got.ID != extframe.MsgClusterStatusQueryResponse {
		t.Fatalf("after the flood: reply %s", got.ID)
	}
}

func TestServer_TruncatedFrameIsLogged(t *testing.T) {
	addr, logs := startServer(t, newFakeStatus())
	c := dial(t, addr)
	send(t, c, rawFrame(10, 0, 1))
	c.(*net.TCPConn).CloseWrite()
	expectClosed(t, c)
	if !strings.Contains(logs.String(), "unexpected EOF") {
		t.Errorf("log lacks the truncation:\n%s", logs)
	}
}

func TestServer_ConcurrentConnections(t *testing.T) {
	addr, _ := startServer(t, newFakeStatus())
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		c := dial(t, addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if _, err := c.Write(extframe.Append(nil, extframe.MsgPartitionQuery, nil)); err != nil {
					errs <- err
					return
				}
				f, err := extframe.Read(c, extframe.MaxRequestLen)
				if err != nil || f.ID != extframe.MsgPartitionQueryResponse {
					errs <- fmt.Errorf("reply %v, %v", f.ID, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestServer_ServeEndsWithContext(t *testing.T) {
	s := NewServer(Config{Addr: "127.0.0.1:0"}, newFakeStatus(), nil)
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	c := dial(t, s.Addr().String())
	ask(t, c, extframe.MsgSourceIDsQuery, "")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return within 10s")
	}
	expectClosed(t, c)
	if _, err := net.Dial("tcp", s.Addr().String()); err == nil {
		t.Fatal("listener still open")
	}
}

func TestServer_ListenErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	s := NewServer(Config{Addr: addr}, newFakeStatus(), nil)
	if s.Addr() != nil {
		t.Error("Addr before Listen is not nil")
	}
	err = s.Listen()
	if want := "external channel: unable to listen on " + addr + ": "; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Listen on a used port: %v, want prefix %q", err, want)
	}
	if err := s.Serve(context.Background()); err == nil || !strings.Contains(err.Error(), "before Listen") {
		t.Fatalf("Serve before Listen: %v", err)
	}
}

// rawFrame returns a frame with an explicit length field.
func rawFrame(length uint32, body ...byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, length), body...)
}

// The shape 0.6 tools see from one worker: every stage lists its worker
// with 10 step ids (partition queries) or the count 10.
func TestServer_PartitionQueriesTenStepsPerStage(t *testing.T) {
	st := newFakeStatus()
	st.worker = "initializer"
	st.state = map[string][]string{
		"111": {"1110", "1111", "1112", "1113", "1114", "1115", "1116", "1117", "1118", "1119"},
		"222": {"2220", "2221", "2222", "2223", "2224", "2225", "2226", "2227", "2228", "2229"},
	}
	st.stateless = map[string][]string{"333": {"3330", "3331", "3332", "3333", "3334", "3335", "3336", "3337", "3338", "3339"}}
	addr, _ := startServer(t, st)
	c := dial(t, addr)
	for _, tc := range []struct {
		req, id extframe.MsgID
		want    string
	}{
		{extframe.MsgPartitionQuery, extframe.MsgPartitionQueryResponse,
			`{"state_partitions":{"111":{"initializer":["1110","1111","1112","1113","1114","1115","1116","1117","1118","1119"]},"222":{"initializer":["2220","2221","2222","2223","2224","2225","2226","2227","2228","2229"]}},` +
				`"stateless_partitions":{"333":{"initializer":["3330","3331","3332","3333","3334","3335","3336","3337","3338","3339"]}}}`},
		{extframe.MsgPartitionCountQuery, extframe.MsgPartitionCountQueryResponse,
			`{"state_partitions":{"111":{"initializer":10},"222":{"initializer":10}},"stateless_partitions":{"333":{"initializer":10}}}`},
		{extframe.MsgStatelessPartitionQuery, extframe.MsgStatelessPartitionQueryResponse,
			`{"333":{"initializer":["3330","3331","3332","3333","3334","3335","3336","3337","3338","3339"]}}`},
		{extframe.MsgStatelessPartitionCountQuery, extframe.MsgStatelessPartitionCountQueryResponse,
			`{"333":{"initializer":10}}`},
	} {
		if got := ask(t, c, tc.req, ""); got.ID != tc.id || string(got.Payload) != tc.want {
			t.Errorf("%s: reply %s %s\nwant     %s %s", tc.req, got.ID, got.Payload, tc.id, tc.want)
		}
	}
}
