package source

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
)

// ErrNotSingleInteger is wrapped by ParseLengthFormat when a format is not
// one integer code. It is not a user error: the caller falls back to
// calling the decoder's payload_length in Python, which handles any format.
var ErrNotSingleInteger = errors.New("not a single integer")

// structSpace is what C isspace() accepts in the "C" locale; Python's
// struct module skips these between codes.
const structSpace = " \t\n\v\f\r"

// ParseLengthFormat compiles a Python struct format that unpacks to exactly
// one integer (a decoder's length_fmt) into a Go LengthFunc, so that frame
// headers are decoded without calling Python. It returns the header length
// (struct.calcsize of the format) and the function.
//
// Accepted: an optional byte-order character ('@', '=', '<', '>', '!')
// followed by one of b B h H i I l L q Q, with the whitespace Python
// ignores after the byte-order character. '@' or no prefix means native
// byte order, size and alignment: l and L are then 8 bytes (4 with any
// other prefix), as CPython on 64-bit Linux. A single code at offset 0 has
// no alignment padding.
//
// Any other format returns an error wrapping ErrNotSingleInteger. The
// returned LengthFunc fails on a header of the wrong length, a negative
// value, or a value that does not fit in an int.
func ParseLengthFormat(format string) (headerLen int, fn LengthFunc, err error) {
	notInt := fmt.Errorf("length format %q is %w", format, ErrNotSingleInteger)

	native := true
	var order binary.ByteOrder = binary.NativeEndian
	rest := format
	if rest != "" {
		// As in CPython, only the first character can select the order;
		// anything else there (including a space) leaves native mode.
		switch rest[0] {
		case '@':
			rest = rest[1:]
		case '=':
			native, rest = false, rest[1:]
		case '<':
			native, order, rest = false, binary.LittleEndian, rest[1:]
		case '>', '!':
			native, order, rest = false, binary.BigEndian, rest[1:]
		}
	}
	rest = strings.Trim(rest, structSpace)
	if len(rest) != 1 {
		return 0, nil, notInt
	}

	var size int
	signed := false
	switch rest[0] {
	case 'b':
		size, signed = 1, true
	case 'B':
		size = 1
	case 'h':
		size, signed = 2, true
	case 'H':
		size = 2
	case 'i':
		size, signed = 4, true
	case 'I':
		size = 4
	case 'l':
		size, signed = longSize(native), true
	case 'L':
		size = longSize(native)
	case 'q':
		size, signed = 8, true
	case 'Q':
		size = 8
	default:
		return 0, nil, notInt
	}

	fn = func(header []byte) (int, error) {
		if len(header) != size {
			return 0, fmt.Errorf("length format %q needs a %d-byte header, got %d bytes",
				format, size, len(header))
		}
		var u uint64
		switch size {
		case 1:
			u = uint64(header[0])
		case 2:
			u = uint64(order.Uint16(header))
		case 4:
			u = uint64(order.Uint32(header))
		default:
			u = order.Uint64(header)
		}
		if signed {
			// Sign-extend from size bytes.
			shift := uint(64 - 8*size)
			v := int64(u<<shift) >> shift
			if v < 0 {
				return 0, fmt.Errorf("negative payload length %d", v)
			}
		}
		if u > math.MaxInt {
			return 0, fmt.Errorf("payload length %d is too large", u)
		}
		return int(u), nil
	}
	return size, fn, nil
}

// longSize is the size of a C long: 8 bytes in native mode on LP64
// platforms (64-bit Unix, where it matches Go's int), 4 bytes on Windows
// and 32-bit platforms, and always 4 in standard mode.
func longSize(native bool) int {
	if !native || runtime.GOOS == "windows" {
		return 4
	}
	return strconv.IntSize / 8
}
