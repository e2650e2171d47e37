package worker

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
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
	// The stage id, the CRC-32 of "initializer" in ten digits, a digit.
	steps := func(stage string) string {
		var ids []string
		for i := 0; i < 10; i++ {
			ids = append(ids, fmt.Sprintf("%q", stage+"1869025407"+strconv.Itoa(i)))
		}
		return strings.Join(ids, ",")
	}
	for _, tc := range []struct {
		req, reply extframe.MsgID
		want       string
	}{
		{extframe.MsgPartitionQuery, extframe.MsgPartitionQueryResponse,
			`{"state_partitions":{"262145":{"initializer":[` + steps("262145") + `]},"65539":{"initializer":[` + steps("65539") + `]}},` +
				`"stateless_partitions":{"131073":{"initializer":[` + steps("131073") + `]}}}`},
		{extframe.MsgPartitionCountQuery, extframe.MsgPartitionCountQueryResponse,
			`{"state_partitions":{"262145":{"initializer":10},"65539":{"initializer":10}},"stateless_partitions":{"131073":{"initializer":10}}}`},
		{extframe.MsgStatelessPartitionQuery, extframe.MsgStatelessPartitionQueryResponse,
			`{"131073":{"initializer":[` + steps("131073") + `]}}`},
		{extframe.MsgStatelessPartitionCountQuery, extframe.MsgStatelessPartitionCountQueryResponse,
			`{"131073":{"initializer":10}}`},
	} {
		if got := askStatus(t, st, tc.req, tc.reply); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.req, got, tc.want)
		}
	}
	// Stable: the same ids on every call.
	if a, b := st.StateSteps(), st.StateSteps(); a["65539"][9] != b["65539"][9] || a["65539"][9] != "6553918690254079" {
		t.Errorf("step ids not stable: %v then %v", a, b)
	}
	// Another worker's steps of the same stage are others.
	other := &status{cfg: &Config{Name: "worker1", Stages: cfg.Stages}}
	mine := map[string]bool{}
	for _, id := range st.StateSteps()["65539"] {
		mine[id] = true
	}
	for _, id := range other.StateSteps()["65539"] {
		if mine[id] {
			t.Errorf("step id %s on both initializer and worker1", id)
		}
	}
}
