package worker

import (
	"bufio"
	"context"
	"net"
	"testing"
	"time"

	"github.com/wallaroo-go/machida/engine/external"
	"github.com/wallaroo-go/machida/engine/topology"
	"github.com/wallaroo-go/machida/internal/extframe"
)

// askStatus serves st on the external channel and returns the reply
// payload to a request with an empty payload.
func askStatus(t *testing.T, st *status, req, want extframe.MsgID) string {
	t.Helper()
	srv := external.NewServer(external.Config{Addr: "127.0.0.1:0"}, st, nil)
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(extframe.Append(nil, req, nil)); err != nil {
		t.Fatal(err)
	}
	f, err := extframe.Read(bufio.NewReader(c), extframe.MaxReplyLen)
	if err != nil {
		t.Fatalf("%s: %v", req, err)
	}
	if f.ID != want {
		t.Fatalf("%s: reply id %s, want %s", req, f.ID, want)
	}
	return string(f.Payload)
}

// Each state and stateless stage reports 10 steps on this worker, as a
// 0.6 worker with the default parallelism does (spec 2.3, 3.7), whatever
// the number of partitions it owns; the step ids are the stage id and a
// digit.
func TestStatus_PartitionQueriesReportTenStepsPerStage(t *testing.T) {
	state := []topology.StepID{{Node: 0, Index: 2}, {Node: 3, Index: 0}} // 65539 and 262145
	stateless := []topology.StepID{{Node: 1, Index: 0}}                  // 131073
	cfg := &Config{Name: "initializer", Stages: Stages{State: state, Stateless: stateless}}
	st := &status{cfg: cfg}
	for _, tc := range []struct {
		req, reply extframe.MsgID
		want       string
	}{
		{extframe.MsgPartitionQuery, extframe.MsgPartitionQueryResponse,
			`{"state_partitions":{"262145":{"initializer":["2621450","2621451","2621452","2621453","2621454","2621455","2621456","2621457","2621458","2621459"]},"65539":{"initializer":["655390","655391","655392","655393","655394","655395","655396","655397","655398","655399"]}},` +
				`"stateless_partitions":{"131073":{"initializer":["1310730","1310731","1310732","1310733","1310734","1310735","1310736","1310737","1310738","1310739"]}}}`},
		{extframe.MsgPartitionCountQuery, extframe.MsgPartitionCountQueryResponse,
			`{"state_partitions":{"262145":{"initializer":10},"65539":{"initializer":10}},"stateless_partitions":{"131073":{"initializer":10}}}`},
		{extframe.MsgStatelessPartitionQuery, extframe.MsgStatelessPartitionQueryResponse,
			`{"131073":{"initializer":["1310730","1310731","1310732","1310733","1310734","1310735","1310736","1310737","1310738","1310739"]}}`},
		{extframe.MsgStatelessPartitionCountQuery, extframe.MsgStatelessPartitionCountQueryResponse,
			`{"131073":{"initializer":10}}`},
	} {
		if got := askStatus(t, st, tc.req, tc.reply); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.req, got, tc.want)
		}
	}
	// Stable: the same ids on every call.
	if a, b := st.StateSteps(), st.StateSteps(); a["65539"][9] != b["65539"][9] || a["65539"][9] != "655399" {
		t.Errorf("step ids not stable: %v then %v", a, b)
	}
}
