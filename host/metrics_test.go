package host

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wallaroo-go/machida/engine/metrics"
	"github.com/wallaroo-go/machida/engine/work"
)

// While a consumer is live the processor records exact ingestion and
// completion counts, and sampled stage timings under the computations'
// names; with none, it records nothing.
func TestProcessor_RecordsMetricsOnlyWhileConsumed(t *testing.T) {
	p, _ := newCountProcessor(t)
	reg := metrics.NewRegistry("w1")
	p.UseMetrics(reg)

	o := work.NewOutput(2)
	require.NoError(t, p.Process(items(batchOf("apple avocado")), o))
	assert.Empty(t, reg.Totals(), "nobody consumes: nothing recorded")

	release := reg.Acquire()
	defer release()
	// 40 calls of 32 frames: one frame of each call (a run of at most
	// 256) is timed.
	var lines []string
	for i := 0; i < 16; i++ {
		lines = append(lines, "apple banana", "skip")
	}
	for call := 0; call < 40; call++ {
		b := batchOf(lines...)
		b.Ingest = time.Now().Add(-time.Millisecond).UnixNano()
		o = work.NewOutput(2)
		require.NoError(t, p.Process(items(b), o))
	}
	tot := reg.Totals()
	ing := tot[metrics.Key{Category: metrics.PipelineIngestion, Name: "Words source", Pipeline: "Words"}]
	assert.Equal(t, uint64(1280), ing.Count, "every frame is ingested, skipped ones too")
	// Completed (spec 5.3: a sink write or filtered): two words per kept
	// line reach the sinks, and the skipped frames and the None after
	// each split are filtered out.
	s2e := tot[metrics.Key{Category: metrics.StartToEnd, Name: "Words", Pipeline: "Words"}]
	assert.Equal(t, uint64(1280+640+640), s2e.Count)
	assert.GreaterOrEqual(t, s2e.Min, uint64(time.Millisecond), "start-to-end counts from the ingest time")
	node := tot[metrics.Key{Category: metrics.NodeIngressEgress, Name: "w1", Pipeline: "Words"}]
	assert.Equal(t, uint64(1280+640+640), node.Count)
	// One frame of each call is timed, and each of its timings counts
	// as many times as its run had frames (here the whole call, 32 <
	// 256): exactly 1280 decodes; a
	// split for each timed frame that was kept (half of them, at
	// random: none in all 40 calls has odds of 2^-40).
	dec := tot[metrics.Key{Category: metrics.Computation, Name: metrics.DecodeName, Pipeline: "Words", ID: 1}]
	assert.Equal(t, uint64(1280), dec.Count)
	assert.Less(t, dec.Min, uint64(time.Second))
	split := tot[metrics.Key{Category: metrics.Computation, Name: "split", Pipeline: "Words", ID: 2}]
	assert.NotZero(t, split.Count)
	assert.LessOrEqual(t, split.Count, uint64(1280))
	assert.Equal(t, uint64(0), split.Count%32)
	count := tot[metrics.Key{Category: metrics.Computation, Name: "count", Pipeline: "Words", ID: 4}]
	assert.Equal(t, 2*split.Count, count.Count, "two words a kept line")
	for k := range tot {
		assert.NotEqual(t, "first_letter", k.Name, "key extractors are not computations")
	}

	// Off again: the runner stops timing.
	release()
	before := reg.Totals()
	require.NoError(t, p.Process(items(batchOf("apple")), work.NewOutput(2)))
	assert.Equal(t, before, reg.Totals())
}
