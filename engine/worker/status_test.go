package worker

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/wallaroo-go/machida/engine/external"
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
	partitions := make([]string, 256)
	for i := range partitions {
		partitions[i] = strconv.Itoa(i)
	}
	cfg := &Config{Name: "initializer", Stages: Stages{State: []string{"41", "7"}, Stateless: []string{"123"}}, Partitions: partitions}
	st := &status{cfg: cfg}
	for _, tc := range []struct {
		req, reply extframe.MsgID
		want       string
	}{
		{extframe.MsgPartitionQuery, extframe.MsgPartitionQueryResponse,
			`{"state_partitions":{"41":{"initializer":["410","411","412","413","414","415","416","417","418","419"]},"7":{"initializer":["70","71","72","73","74","75","76","77","78","79"]}},` +
				`"stateless_partitions":{"123":{"initializer":["1230","1231","1232","1233","1234","1235","1236","1237","1238","1239"]}}}`},
		{extframe.MsgPartitionCountQuery, extframe.MsgPartitionCountQueryResponse,
			`{"state_partitions":{"41":{"initializer":10},"7":{"initializer":10}},"stateless_partitions":{"123":{"initializer":10}}}`},
		{extframe.MsgStatelessPartitionQuery, extframe.MsgStatelessPartitionQueryResponse,
			`{"123":{"initializer":["1230","1231","1232","1233","1234","1235","1236","1237","1238","1239"]}}`},
		{extframe.MsgStatelessPartitionCountQuery, extframe.MsgStatelessPartitionCountQueryResponse,
			`{"123":{"initializer":10}}`},
	} {
		if got := askStatus(t, st, tc.req, tc.reply); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.req, got, tc.want)
		}
	}
	// Stable: the same ids on every call.
	if a, b := st.StateSteps(), st.StateSteps(); a["41"][9] != b["41"][9] || a["41"][9] != "419" {
		t.Errorf("step ids not stable: %v then %v", a, b)
	}
}
