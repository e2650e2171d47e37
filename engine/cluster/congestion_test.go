package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wallaroo-go/machida/engine/work"
)

func TestCongestion_ReportsHoldAndLapse(t *testing.T) {
	c := newCongestion()
	assert.Nil(t, c.held())
	t0 := time.Unix(1000, 0)
	c.set("worker1", true, t0)
	h := c.held()
	require.NotNil(t, h)
	c.set("worker2", true, t0)
	c.set("worker1", false, t0)
	select {
	case <-h:
	default:
		t.Fatal("a change did not close the channel held")
	}
	require.NotNil(t, c.held(), "worker2 is still congested")
	c.set("worker2", true, t0.Add(congestionStale/2)) // repeated: lives on
	assert.Empty(t, c.expire(t0.Add(congestionStale+time.Millisecond)))
	assert.Equal(t, []string{"worker2"}, c.expire(t0.Add(congestionStale*2)))
	assert.Nil(t, c.held())

	on, err := DecodeCongestion(Congestion(true))
	require.NoError(t, err)
	assert.True(t, on)
	_, err = DecodeCongestion(Seq(2))
	assert.ErrorIs(t, err, ErrMalformed)
}

// A worker without sources that passes work on to a stuck peer makes the
// initializer hold its sources (the only way into the cluster) once its
// link's replay queue is full, and release them once the peer takes
// again: backpressure past the first hop.
func TestMember_CongestionPastTheFirstHopHoldsTheSources(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stuck := make(chan struct{})
	var ms []*Member
	ms, _ = startCluster(t, ctx, 3, func(i int, c *Config) {
		switch i {
		case 1: // passes each batch on to worker2
			c.Deliver = func(ctx context.Context, in int, e work.Envelopes) error {
				return ms[1].Route(ctx, work.Envelopes{Dest: ms[1].Dest("worker2"), Count: e.Count, Data: append([]byte(nil), e.Data...)})
			}
		case 2: // stuck until told
			c.Deliver = func(ctx context.Context, in int, e work.Envelopes) error {
				select {
				case <-stuck:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
	})
	startAll(t, ctx, ms)
	payload := make([]byte, 64)
	deadline := time.Now().Add(60 * time.Second)
	sent := 0
	for ms[0].cong.held() == nil { // until worker1 has said it is congested
		require.True(t, time.Now().Before(deadline), "worker1 never reported its congestion (sent %d batches)", sent)
		if ms[0].Congested() != nil { // held as a source would be
			time.Sleep(time.Millisecond)
			continue
		}
		require.NoError(t, ms[0].Route(ctx, work.Envelopes{Dest: ms[0].Dest("worker1"), Count: 1, Data: payload}))
		sent++
		if sent%64 == 0 {
			time.Sleep(time.Millisecond) // let the links move
		}
	}
	require.NotNil(t, ms[0].Congested(), "the initializer's sources are held")
	close(stuck)
	for ms[0].Congested() != nil {
		require.True(t, time.Now().Before(deadline), "the sources stay held after the peer took again")
		time.Sleep(5 * time.Millisecond)
	}
}
