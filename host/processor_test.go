package host

import (
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/wallaroo-go/machida/bridge"
	"github.com/wallaroo-go/machida/engine/routing"
	"github.com/wallaroo-go/machida/engine/source"
	"github.com/wallaroo-go/machida/engine/topology"
	"github.com/wallaroo-go/machida/engine/work"
)

var testInterp *bridge.Interp

func TestMain(m *testing.M) {
	dir, err := extractAPI()
	if err != nil {
		panic(err)
	}
	in, err := bridge.Start(bridge.Config{Path: []string{dir}})
	if err != nil {
		panic(err)
	}
	testInterp = in
	os.Exit(m.Run())
}

const countApp = `
import wallaroo

@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode(bs):
    if bs == b"skip":
        return None
    return bs.decode("utf-8")

@wallaroo.computation_multi(name="split")
def split(s):
    return [w for w in s.split(" ")] + [None]

@wallaroo.key_extractor
def first_letter(w):
    return w[0]

class Total(object):
    def __init__(self):
        self.n = 0

@wallaroo.state_computation(name="count", state=Total)
def count(w, total):
    total.n += 1
    if w == "boom":
        raise KeyError(w)
    return "%s:%d" % (w, total.n)

@wallaroo.encoder
def encode(s):
    return (s + "\n").encode("utf-8")

@wallaroo.encoder
def encode_upper(s):
    return s.upper() + "|"

def app():
    p = wallaroo.source("Words", wallaroo.TCPSourceConfig("127.0.0.1", "0", decode))
    p = p.to(split).key_by(first_letter).to(count)
    p = p.to_sinks([wallaroo.TCPSinkConfig("127.0.0.1", "1", encode),
                    wallaroo.TCPSinkConfig("127.0.0.1", "2", encode_upper)])
    return wallaroo.build_application("Counts", p)
`

func batchOf(msgs ...string) source.Batch {
	b := source.Batch{}
	for _, m := range msgs {
		b.Buf = append(b.Buf, m...)
		b.Ends = append(b.Ends, int32(len(b.Buf)))
	}
	return b
}

func items(bs ...source.Batch) []work.Item {
	var its []work.Item
	for _, b := range bs {
		its = append(its, work.BatchItem(0, b))
	}
	return its
}

// countModule is countApp imported (owned; only touched inside Do).
var countModule bridge.Object

// newCountProcessor builds the processor for countApp.
func newCountProcessor(t *testing.T) (*processor, []int) {
	t.Helper()
	var p *processor
	var headers []int
	err := testInterp.Do(func(py *bridge.Py) error {
		// One module for every processor of the test binary, as a worker
		// imports its module once (pickle finds classes by module name).
		if countModule.IsZero() {
			mod, err := py.Exec("count_app", countApp)
			if err != nil {
				return err
			}
			countModule = mod
		}
		app, err := py.CallMethod(countModule, "app")
		if err != nil {
			return err
		}
		defer py.DecRef(app)
		tr := &translator{py: py}
		spec, err := tr.spec(app)
		if err != nil {
			return err
		}
		paths, err := spec.Compile()
		if err != nil {
			return err
		}
		for _, path := range paths {
			fr, err := framingOf(py, path.Source.Decoder.(bridge.Object), path.Source.Name)
			if err != nil {
				return err
			}
			hdr := make([]byte, 4)
			binary.BigEndian.PutUint32(hdr, 77)
			if fr.Raw || fr.Length == nil {
				t.Errorf("stock framing read as raw: %+v", fr)
			} else if got, err := fr.Length(hdr); err != nil || got != 77 {
				t.Errorf("length func = %d, %v", got, err)
			}
			headers = append(headers, fr.HeaderLen)
		}
		table, err := routing.NewTable(routing.DefaultPartitions, []routing.WorkerName{"w"})
		if err != nil {
			return err
		}
		p, err = newProcessor(testInterp, py, paths, table.Partitions(), bridge.Object{}, nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return p, headers
}

func TestProcessor_RunsTheWholePathPerBatch(t *testing.T) {
	p, headers := newCountProcessor(t)
	if len(headers) != 1 || headers[0] != 4 {
		t.Fatalf("header lengths = %v", headers)
	}
	o := work.NewOutput(2)
	err := p.Process(items(batchOf("apple avocado", "skip", "banana"), batchOf("apricot")), o)
	out := o.Sinks
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out[0]), "apple:1\navocado:2\nbanana:1\napricot:3\n"; got != want {
		t.Errorf("sink 0 = %q, want %q", got, want)
	}
	if got, want := string(out[1]), "APPLE:1|AVOCADO:2|BANANA:1|APRICOT:3|"; got != want {
		t.Errorf("sink 1 = %q, want %q", got, want)
	}
}

func TestProcessor_ErrorNamesStageAndKeepsEarlierOutput(t *testing.T) {
	p, _ := newCountProcessor(t)
	o := work.NewOutput(2)
	err := p.Process(items(batchOf("cat", "dog boom", "ant")), o)
	out := o.Sinks
	var ue *UserCodeError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v, want *UserCodeError", err)
	}
	if ue.Stage != "state 'count'" || ue.Source != "Words" || strings.TrimPrefix(ue.Input, "u") != "'boom'" {
		t.Errorf("UserCodeError = %+v", ue)
	}
	var pe *bridge.PyError
	if !errors.As(err, &pe) || pe.Type != "KeyError" || !strings.Contains(pe.Traceback, "in count") {
		t.Errorf("PyError = %v", err)
	}
	// The messages before the failing one at that stage still come out.
	if got := string(out[0]); got != "cat:1\ndog:1\n" {
		t.Errorf("salvaged sink 0 = %q", got)
	}
}

func TestProcessor_NoReferenceLeaks(t *testing.T) {
	p, _ := newCountProcessor(t)
	run := func(n int) {
		for i := 0; i < n; i++ {
			if err := p.Process(items(batchOf("alpha beta", "gamma delta epsilon")), work.NewOutput(2)); err != nil {
				t.Fatal(err)
			}
		}
	}
	objects := func() (total int, procRefs int) {
		testInterp.Do(func(py *bridge.Py) error {
			gc, _ := py.Import("gc")
			defer py.DecRef(gc)
			py.CallMethodDiscard(gc, "collect")
			sys, _ := py.Import("sys")
			defer py.DecRef(sys)
			if blocks, err := py.CallMethod(sys, "getallocatedblocks"); err == nil {
				n, _ := py.GoInt(blocks)
				total = int(n)
				py.DecRef(blocks)
			} else if objs, err := py.CallMethod(gc, "get_objects"); err == nil {
				total, _ = py.Len(objs) // Python 2 has no getallocatedblocks
				py.DecRef(objs)
			}
			procRefs = py.RefCount(p.process[0])
			return nil
		})
		return
	}
	run(50) // warm up: state objects for every key exist now
	before, refsBefore := objects()
	run(2000)
	after, refsAfter := objects()
	if after-before > 200 {
		t.Errorf("allocated Python memory blocks grew from %d to %d over 2000 batches", before, after)
	}
	if refsAfter != refsBefore {
		t.Errorf("reference count of the runner's process method %d -> %d", refsBefore, refsAfter)
	}
}

// DropPartitions forgets the state of the partitions named (what an
// undone rescale had brought), and of no other.
func TestProcessor_DropPartitionsForgetsTheirStateOnly(t *testing.T) {
	p, _ := newCountProcessor(t)
	if err := p.Process(items(batchOf("apple banana cherry")), work.NewOutput(2)); err != nil {
		t.Fatal(err)
	}
	ents, err := p.StateEntities()
	if err != nil {
		t.Fatal(err)
	}
	var step topology.StepID
	var keys []string
	for s, ks := range ents {
		if len(ks) > 0 {
			step, keys = s, ks
		}
	}
	if len(keys) < 2 {
		t.Fatalf("state entities: %v", ents)
	}
	gone := routing.PartitionID(routing.PartitionOf([]byte(keys[0]), routing.DefaultPartitions))
	if err := p.DropPartitions(step, []routing.PartitionID{gone}); err != nil {
		t.Fatal(err)
	}
	ents, err = p.StateEntities()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, k := range keys {
		if routing.PartitionID(routing.PartitionOf([]byte(k), routing.DefaultPartitions)) != gone {
			want = append(want, k)
		}
	}
	if got := ents[step]; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("after dropping partition %d: %v, want %v", gone, got, want)
	}
}
