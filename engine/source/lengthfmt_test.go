package source

import (
	"errors"
	"strings"
	"testing"
)

func TestParseLengthFormat(t *testing.T) {
	// Expected values were checked against CPython 3 on linux/amd64 with
	// struct.calcsize(format) and struct.unpack(format, header)[0].
	tests := []struct {
		format  string
		header  []byte
		wantLen int
		want    int
		wantErr string // substring of the LengthFunc error
	}{
		{format: ">I", header: []byte{0, 0, 1, 2}, wantLen: 4, want: 258},
		{format: "!I", header: []byte{0, 0, 1, 2}, wantLen: 4, want: 258},
		{format: "<I", header: []byte{2, 1, 0, 0}, wantLen: 4, want: 258},
		{format: "=I", header: []byte{2, 1, 0, 0}, wantLen: 4, want: 258},
		{format: "I", header: []byte{2, 1, 0, 0}, wantLen: 4, want: 258},
		{format: "@I", header: []byte{2, 1, 0, 0}, wantLen: 4, want: 258},
		{format: ">I", header: []byte{0xff, 0xff, 0xff, 0xff}, wantLen: 4, want: 1<<32 - 1},
		{format: ">i", header: []byte{0x7f, 0xff, 0xff, 0xff}, wantLen: 4, want: 1<<31 - 1},
		{format: ">i", header: []byte{0xff, 0xff, 0xff, 0xff}, wantLen: 4, wantErr: "negative payload length -1"},
		{format: "B", header: []byte{200}, wantLen: 1, want: 200},
		{format: "b", header: []byte{100}, wantLen: 1, want: 100},
		{format: "b", header: []byte{200}, wantLen: 1, wantErr: "negative payload length -56"},
		{format: ">H", header: []byte{1, 0}, wantLen: 2, want: 256},
		{format: "<H", header: []byte{1, 0}, wantLen: 2, want: 1},
		{format: ">h", header: []byte{0x80, 0}, wantLen: 2, wantErr: "negative payload length -32768"},
		{format: ">Q", header: []byte{0, 0, 0, 0, 0, 0, 1, 0}, wantLen: 8, want: 256},
		{format: "<q", header: []byte{0, 1, 0, 0, 0, 0, 0, 0}, wantLen: 8, want: 256},
		{format: ">Q", header: []byte{0x80, 0, 0, 0, 0, 0, 0, 0}, wantLen: 8, wantErr: "payload length 9223372036854775808 is too large"},
		{format: ">q", header: []byte{0x80, 0, 0, 0, 0, 0, 0, 0}, wantLen: 8, wantErr: "negative payload length"},
		// C long: native is 8 bytes on linux/amd64, standard is 4.
		{format: "L", header: []byte{5, 0, 0, 0, 0, 0, 0, 0}, wantLen: 8, want: 5},
		{format: "@l", header: []byte{5, 0, 0, 0, 0, 0, 0, 0}, wantLen: 8, want: 5},
		{format: "=L", header: []byte{5, 0, 0, 0}, wantLen: 4, want: 5},
		{format: ">l", header: []byte{0, 0, 0, 5}, wantLen: 4, want: 5},
		// Whitespace Python ignores.
		{format: "> I", header: []byte{0, 0, 0, 7}, wantLen: 4, want: 7},
		{format: ">I\n", header: []byte{0, 0, 0, 7}, wantLen: 4, want: 7},
		{format: " B", header: []byte{7}, wantLen: 1, want: 7},
		// A header of the wrong length is refused, as struct.unpack does.
		{format: ">I", header: []byte{0, 0, 7}, wantLen: 4, wantErr: "needs a 4-byte header, got 3 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			n, fn, err := ParseLengthFormat(tt.format)
			if err != nil {
				t.Fatalf("ParseLengthFormat(%q): %v", tt.format, err)
			}
			if n != tt.wantLen {
				t.Errorf("header length = %d, want %d", n, tt.wantLen)
			}
			got, err := fn(tt.header)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("length(%x) = %d, %v; want error containing %q", tt.header, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("length(%x) = %d, %v; want %d", tt.header, got, err, tt.want)
			}
		})
	}
}

func TestParseLengthFormat_NotSingleInteger(t *testing.T) {
	for _, format := range []string{
		"", ">", "4s", ">II", "f", ">d", "?", "x", ">xI", "2I", "1I", "n", "P", "e",
		" >I", // CPython reads the order only from the first character
		">>I", "<\u00a0I", "II",
	} {
		t.Run(format, func(t *testing.T) {
			_, fn, err := ParseLengthFormat(format)
			if !errors.Is(err, ErrNotSingleInteger) {
				t.Fatalf("ParseLengthFormat(%q) error = %v, want ErrNotSingleInteger", format, err)
			}
			if fn != nil {
				t.Fatalf("ParseLengthFormat(%q) returned a function with an error", format)
			}
			want := `length format "` // message names the format
			if !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "is not a single integer") {
				t.Fatalf("error %q does not name the format", err)
			}
		})
	}
}
