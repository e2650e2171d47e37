package host

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"unicode/utf8"

	"github.com/wallaroo-go/machida/bridge"
	"github.com/wallaroo-go/machida/engine/routing"
)

// agreementKeys returns the keys both sides must place alike: fixed edge
// cases, then random ASCII, random UTF-8 text (BMP and astral), random
// bytes (mostly not UTF-8), and text with one stray byte in it.
func agreementKeys(rng *rand.Rand, n int) [][]byte {
	keys := [][]byte{
		nil, []byte("a"), []byte("single-partition-key"), []byte("\x00"),
		[]byte("é"), []byte("日本語"), []byte("\U0001F600"), []byte("\U0010FFFF"),
		{0xff}, {0x80}, {0xc0, 0x80}, // lone continuation byte, overlong NUL
		{0xed, 0xa0, 0x80}, {0xed, 0xb2, 0x80}, // UTF-8 of surrogates
		{0xf4, 0x90, 0x80, 0x80}, // beyond U+10FFFF
	}
	randomRune := func() rune {
		switch rng.IntN(4) {
		case 0:
			return rune(0x20 + rng.IntN(0x5f))
		case 1:
			return rune(0x80 + rng.IntN(0x780)) // two bytes
		case 2:
			return rune(0x800 + rng.IntN(0xd000-0x800)) // three bytes, below the surrogates
		default:
			return rune(0x10000 + rng.IntN(0x100000)) // four bytes
		}
	}
	for len(keys) < n {
		size := rng.IntN(24)
		var k []byte
		switch rng.IntN(4) {
		case 0:
			for range size {
				k = append(k, byte(0x20+rng.IntN(0x5f)))
			}
		case 1:
			for range size {
				k = utf8.AppendRune(k, randomRune())
			}
		case 2:
			k = make([]byte, size)
			for i := range k {
				k[i] = byte(rng.IntN(256))
			}
		case 3:
			for range size {
				k = utf8.AppendRune(k, randomRune())
			}
			i := rng.IntN(len(k) + 1)
			k = append(k[:i], append([]byte{byte(0x80 + rng.IntN(0x80))}, k[i:]...)...)
		}
		keys = append(keys, k)
	}
	return keys
}

// The runner places keys into partitions inside the interpreter
// (_runner._as_key, _key_bytes, Runner.partition_of) and the engine routes
// by routing.PartitionOf; a key that the two placed differently would
// reach a worker that does not hold its state. Each key is handed to
// Python as bytes, as the native str the bridge makes (on Python 3 the
// undecodable bytes kept by surrogateescape), and, where it is UTF-8, as
// text decoded in Python (unicode on Python 2).
func TestPartitionAgreement_PythonAndGoPlaceKeysAlike(t *testing.T) {
	keys := agreementKeys(rand.New(rand.NewPCG(6, 2018)), 4000)
	counts := []int{routing.DefaultPartitions, 7, 1}
	failures := 0
	err := testInterp.Do(func(py *bridge.Py) error {
		var refs []bridge.Object // released when the test is done
		defer func() {
			for i := len(refs) - 1; i >= 0; i-- {
				py.DecRef(refs[i])
			}
		}()
		keep := func(o bridge.Object, err error) (bridge.Object, error) {
			if err == nil {
				refs = append(refs, o)
			}
			return o, err
		}
		runnerMod, err := keep(py.Import("wallaroo._runner"))
		if err != nil {
			return err
		}
		asKey, err := keep(py.GetAttr(runnerMod, "_as_key"))
		if err != nil {
			return err
		}
		keyBytes, err := keep(py.GetAttr(runnerMod, "_key_bytes"))
		if err != nil {
			return err
		}
		sys, err := keep(py.Import("sys"))
		if err != nil {
			return err
		}
		version, err := keep(py.GetAttr(sys, "version"))
		if err != nil {
			return err
		}
		pyVersion, _ := py.GoString(version)
		t.Logf("Python %s", pyVersion)
		pickle, err := keep(py.Import("pickle"))
		if err != nil {
			return err
		}
		dumps, err := keep(py.GetAttr(pickle, "dumps"))
		if err != nil {
			return err
		}
		loads, err := keep(py.GetAttr(pickle, "loads"))
		if err != nil {
			return err
		}
		hooks, err := keep(py.NewTuple([]bridge.Object{dumps, loads}))
		if err != nil {
			return err
		}
		stage := py.Str("agreement")
		refs = append(refs, stage)
		utf8Codec := py.Str("utf-8")
		refs = append(refs, utf8Codec)
		cls, err := keep(py.GetAttr(runnerMod, "Runner"))
		if err != nil {
			return err
		}
		runners := make([]bridge.Object, len(counts))
		for i, n := range counts {
			count := py.Int(int64(n))
			refs = append(refs, count)
			if runners[i], err = keep(py.Call(cls, count, hooks)); err != nil {
				return fmt.Errorf("Runner(%d, hooks): %w", n, err)
			}
		}

		// check places one Python form of key through the runner's path.
		check := func(key []byte, form string, obj bridge.Object) error {
			norm, err := py.Call(asKey, obj, stage)
			if err != nil {
				return fmt.Errorf("_as_key(%s %q): %w", form, key, err)
			}
			defer py.DecRef(norm)
			kb, err := py.Call(keyBytes, norm)
			if err != nil {
				return fmt.Errorf("_key_bytes(%s %q): %w", form, key, err)
			}
			defer py.DecRef(kb)
			got, err := py.BytesView(kb)
			if err != nil {
				return fmt.Errorf("_key_bytes(%s %q): %w", form, key, err)
			}
			if !bytes.Equal(got, key) {
				failures++
				t.Errorf("%s %q: _key_bytes gives %q", form, key, got)
			}
			for i, n := range counts {
				po, err := py.CallMethod(runners[i], "partition_of", norm)
				if err != nil {
					return fmt.Errorf("partition_of(%s %q) over %d: %w", form, key, n, err)
				}
				p, err := py.GoInt(po)
				py.DecRef(po)
				if err != nil {
					return err
				}
				if want := routing.PartitionOf(key, n); p != int64(want) {
					failures++
					t.Errorf("%s %q over %d partitions: Python %d, Go %d", form, key, n, p, want)
				}
			}
			return nil
		}

		texts := 0
		for _, key := range keys {
			if failures > 20 {
				return fmt.Errorf("too many disagreements; stopped")
			}
			b := py.Bytes(key)
			err := check(key, "bytes", b)
			if err == nil {
				s := py.Str(string(key))
				err = check(key, "native str", s)
				py.DecRef(s)
			}
			if err == nil && utf8.Valid(key) {
				texts++
				var text bridge.Object
				if text, err = py.CallMethod(b, "decode", utf8Codec); err == nil {
					err = check(key, "text", text)
					py.DecRef(text)
				}
			}
			py.DecRef(b)
			if err != nil {
				return err
			}
		}
		if texts < len(keys)/3 || texts > len(keys)*9/10 {
			t.Errorf("%d of %d keys are UTF-8: the generator no longer mixes text and bytes", texts, len(keys))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
