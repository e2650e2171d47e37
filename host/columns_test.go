package host

import (
	"testing"

	"github.com/wallaroo-go/machida/bridge"
)

// columnsCheck compares the bridge's C text column codec with the
// reference in wallaroo._columns: the same bytes for what both pack, each
// reads what the other makes (UTF-8 included, which only the C packer
// makes), the C packer refuses what is not a list of exact native
// strings, and both refuse damaged columns with a ValueError. It raises
// AssertionError naming the first difference.
const columnsCheck = `
import sys
from wallaroo import _columns

PY2 = sys.version_info[0] == 2

class Sub(str):
    pass

def check(cpack, cunpack):
    cases = [[], [""], ["a", "", "bc"], ["word"] * 300, ["x" * 200, "y" * 20000]]
    if PY2:
        cases.append(["caf\xc3\xa9", "\xff\x00"])
        others = [[u"a"], [bytearray(b"a")]]
    else:
        cases.append([u"caf\xe9", u"\u65e5\u672c", u"\U0001F600"])
        others = [[b"a"], [u"\ud800"]]
    for vs in cases:
        c = cpack(vs)
        assert type(c) is bytes, (vs[:3], c)
        for unpack in (cunpack, _columns.unpack_text):
            got = unpack(c)
            assert got == vs and all(type(v) is str for v in got), (vs[:3], got[:3])
        ref = _columns.pack_text(vs)
        if ref is not None:
            assert ref == c, (vs[:3], ref[:20], c[:20])
    # Over 4 MiB packed: left to pickle (which writes a repeated string once).
    others.append(["x" * 100000] * 64)
    for other in others + [("a",), ["a", None], ["a", 1], [Sub("a")], "ab", None]:
        assert cpack(other) is None, other
    bad = [b"", b"\x80", b"\x02\x01", b"\x02\x01\x81", b"\xff\xff\xff\xff\xff\x01",
           b"\x01\x80\x80\x80\x80\x10", b"\x02\xff\xff\xff\xff\x0f\x01" + b"a" * 8,
           b"\x05a", b"\x01\x02a", b"\x01\x01ab", b"\xff\xff\xff\x0f" + b"a" * 8]
    if not PY2:
        bad += [b"\x01\x01\xff", b"\x01\x02\xc3\x28"]
    for data in bad:
        for unpack in (cunpack, _columns.unpack_text):
            try:
                unpack(data)
            except ValueError as e:
                assert "text column is corrupt" in str(e), (data, e)
            else:
                raise AssertionError("%r read %r" % (unpack, data))
    try:
        cunpack([1])
    except TypeError:
        pass
    else:
        raise AssertionError("unpack_text took a list")

def agree(cpack, cunpack, data):
    """The C unpacker and the reference read data alike: the same native
    strings, or a ValueError from both; what C reads packs back the same."""
    try:
        c, cerr = cunpack(data), None
    except ValueError as e:
        c, cerr = None, e
    try:
        r, rerr = _columns.unpack_text(data), None
    except ValueError as e:
        r, rerr = None, e
    if (cerr is None) != (rerr is None):
        raise AssertionError("C: %s; reference: %s; on %r" % (cerr or c, rerr or r, data))
    if cerr is None:
        assert c == r and all(type(s) is str for s in c), (c, r)
        p = cpack(c)
        assert p is None or cunpack(p) == c, (c, p)
`

func TestTextColumns_CCodecMatchesTheReference(t *testing.T) {
	err := testInterp.Do(func(py *bridge.Py) error {
		mod, err := py.Exec("columns_check", columnsCheck)
		if err != nil {
			return err
		}
		defer py.DecRef(mod)
		pack, unpack, err := py.TextColumnCodec()
		if err != nil {
			return err
		}
		defer py.DecRef(pack)
		defer py.DecRef(unpack)
		return py.CallMethodDiscard(mod, "check", pack, unpack)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// FuzzTextColumns feeds the C unpacker what a damaged or hostile peer
// could send in a column: it never crashes, and it reads exactly what the
// reference in wallaroo._columns reads (the same strings, or a
// ValueError from both).
func FuzzTextColumns(f *testing.F) {
	for _, seed := range [][]byte{{0}, {1, 0}, {2, 1, 2, 'a', 'b', 'c'}, {1, 3, 0xe6, 0x97, 0xa5},
		{0x80}, {1, 0xff, 0xff, 0xff, 0xff, 0x0f}, {2, 0x81, 0x01, 0, 'x'}, {1, 2, 0xc3, 0x28}} {
		f.Add(seed)
	}
	var mod, pack, unpack bridge.Object // made once per fuzzing process, never freed
	f.Fuzz(func(t *testing.T, data []byte) {
		err := testInterp.Do(func(py *bridge.Py) error {
			if mod.IsZero() {
				m, err := py.Exec("columns_check", columnsCheck)
				if err != nil {
					return err
				}
				p, u, err := py.TextColumnCodec()
				if err != nil {
					return err
				}
				mod, pack, unpack = m, p, u
			}
			b := py.Bytes(data)
			defer py.DecRef(b)
			return py.CallMethodDiscard(mod, "agree", pack, unpack, b)
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

const clockCheck = `
import time

def check(clock):
    a = clock()
    t = time.time()
    while time.time() - t < 0.002:
        pass
    b = clock()
    assert isinstance(a, (int, type(2 ** 64))), type(a)
    assert 1000000 <= b - a < 10 ** 10, (a, b)
    assert len(set(clock() % 256 for _ in range(200))) > 1, "not nanoseconds"
`

// The stage-timing clock the host installs in wallaroo._runner counts
// integer nanoseconds, forwards (also on Python 2, whose time.time()
// the runner would otherwise use: about 256 ns at today's epoch).
func TestMonotonicClock_CountsNanoseconds(t *testing.T) {
	err := testInterp.Do(func(py *bridge.Py) error {
		mod, err := py.Exec("clock_check", clockCheck)
		if err != nil {
			return err
		}
		defer py.DecRef(mod)
		clock, err := py.MonotonicClock()
		if err != nil {
			return err
		}
		defer py.DecRef(clock)
		return py.CallMethodDiscard(mod, "check", clock)
	})
	if err != nil {
		t.Fatal(err)
	}
}
