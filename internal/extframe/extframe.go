// Package extframe is the external channel's frame format and message ids
// (runtime spec 3.7), shared by the worker's server (engine/external) and
// the operator tools (cmd/external_sender, cmd/cluster_shutdown,
// cmd/cluster_shrinker): a big-endian uint32 length (2 + payload length),
// a big-endian uint16 message id, then the payload. Pure functions, safe
// for concurrent use.
package extframe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// MsgID is the message id carried by every external channel frame.
type MsgID uint16

// Message ids of spec 3.7. "→" messages are requests to the worker, the
// others are its replies.
const (
	MsgPrint                                    MsgID = 1  // → text to log
	MsgRotateLog                                MsgID = 2  // → worker name
	MsgCleanShutdown                            MsgID = 3  // → optional text
	MsgShrinkRequest                            MsgID = 4  // → JSON ShrinkRequest
	MsgShrinkQueryResponse                      MsgID = 5  // JSON eligible workers
	MsgShrinkErrorResponse                      MsgID = 6  // status text, also on success
	MsgPartitionQuery                           MsgID = 7  // →
	MsgPartitionQueryResponse                   MsgID = 8  // JSON
	MsgClusterStatusQuery                       MsgID = 9  // →
	MsgClusterStatusQueryResponse               MsgID = 10 // JSON
	MsgClusterStatusQueryResponseNotInitialized MsgID = 11 // empty
	MsgPartitionCountQuery                      MsgID = 12 // →
	MsgPartitionCountQueryResponse              MsgID = 13 // JSON
	MsgSourceIDsQuery                           MsgID = 14 // →
	MsgSourceIDsQueryResponse                   MsgID = 15 // JSON
	MsgReportStatus                             MsgID = 16 // → status code, no reply
	MsgStateEntityQuery                         MsgID = 17 // →
	MsgStateEntityQueryResponse                 MsgID = 18 // JSON
	MsgStatelessPartitionQuery                  MsgID = 19 // →
	MsgStatelessPartitionQueryResponse          MsgID = 20 // JSON
	MsgStateEntityCountQuery                    MsgID = 21 // →
	MsgStateEntityCountQueryResponse            MsgID = 22 // JSON
	MsgStatelessPartitionCountQuery             MsgID = 23 // →
	MsgStatelessPartitionCountQueryResponse     MsgID = 24 // JSON
)

var msgNames = [...]string{
	MsgPrint:                                    "Print",
	MsgRotateLog:                                "RotateLog",
	MsgCleanShutdown:                            "CleanShutdown",
	MsgShrinkRequest:                            "ShrinkRequest",
	MsgShrinkQueryResponse:                      "ShrinkQueryResponse",
	MsgShrinkErrorResponse:                      "ShrinkErrorResponse",
	MsgPartitionQuery:                           "PartitionQuery",
	MsgPartitionQueryResponse:                   "PartitionQueryResponse",
	MsgClusterStatusQuery:                       "ClusterStatusQuery",
	MsgClusterStatusQueryResponse:               "ClusterStatusQueryResponse",
	MsgClusterStatusQueryResponseNotInitialized: "ClusterStatusQueryResponseNotInitialized",
	MsgPartitionCountQuery:                      "PartitionCountQuery",
	MsgPartitionCountQueryResponse:              "PartitionCountQueryResponse",
	MsgSourceIDsQuery:                           "SourceIdsQuery",
	MsgSourceIDsQueryResponse:                   "SourceIdsQueryResponse",
	MsgReportStatus:                             "ReportStatus",
	MsgStateEntityQuery:                         "StateEntityQuery",
	MsgStateEntityQueryResponse:                 "StateEntityQueryResponse",
	MsgStatelessPartitionQuery:                  "StatelessPartitionQuery",
	MsgStatelessPartitionQueryResponse:          "StatelessPartitionQueryResponse",
	MsgStateEntityCountQuery:                    "StateEntityCountQuery",
	MsgStateEntityCountQueryResponse:            "StateEntityCountQueryResponse",
	MsgStatelessPartitionCountQuery:             "StatelessPartitionCountQuery",
	MsgStatelessPartitionCountQueryResponse:     "StatelessPartitionCountQueryResponse",
}

// String returns the 0.6 name of the message ("PartitionQuery"), or
// "MsgID(<n>)" for an unknown id.
func (m MsgID) String() string {
	if int(m) < len(msgNames) && msgNames[m] != "" {
		return msgNames[m]
	}
	return "MsgID(" + strconv.Itoa(int(m)) + ")"
}

// Limits for Read's maxLen (the length field, id included). Requests are
// small, so a server takes anything above MaxRequestLen as garbage;
// replies can list every key a worker holds, so a client allows far more,
// only to guard against garbage.
const (
	MaxRequestLen = 1 << 20
	MaxReplyLen   = 256 << 20
)

// ErrMalformed is wrapped by the errors Read returns for a
// length field that can't be a frame.
var ErrMalformed = errors.New("malformed frame")

// Frame is one decoded frame.
type Frame struct {
	ID      MsgID
	Payload []byte
}

// Read reads the next frame from r, skipping frames of length 0. It
// returns io.EOF if r ends before a frame starts, an error wrapping
// io.ErrUnexpectedEOF (saying where) if it ends inside one, and an
// error wrapping ErrMalformed for a length of 1 or above maxLen (r is
// then positioned after the length field). The payload is freshly
// allocated and owned by the caller.
func Read(r io.Reader, maxLen uint32) (Frame, error) {
	var hdr [4]byte
	for {
		if got, err := io.ReadFull(r, hdr[:]); err != nil {
			if got > 0 {
				return Frame{}, fmt.Errorf("a frame header cut short after %d of its 4 bytes: %w", got, err)
			}
			return Frame{}, err
		}
		n := binary.BigEndian.Uint32(hdr[:])
		switch {
		case n == 0:
			continue
		case n == 1:
			return Frame{}, fmt.Errorf("%w: length 1 leaves no room for the 2-byte message id", ErrMalformed)
		case n > maxLen:
			return Frame{}, fmt.Errorf("%w: length %d exceeds the limit of %d", ErrMalformed, n, maxLen)
		}
		body := make([]byte, n)
		if got, err := io.ReadFull(r, body); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return Frame{}, fmt.Errorf("a %d-byte message cut short after %d bytes: %w", n, got, err)
		}
		return Frame{ID: MsgID(binary.BigEndian.Uint16(body)), Payload: body[2:]}, nil
	}
}

// Append appends the frame for id and payload to b and returns the
// extended slice. It enforces no limit: that is the reader's business.
func Append(b []byte, id MsgID, payload []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(2+len(payload)))
	b = binary.BigEndian.AppendUint16(b, uint16(id))
	return append(b, payload...)
}

// KeepStatePayload is the payload of a CleanShutdown that asks the
// cluster to keep its checkpoint files (cluster_shutdown --keep-state;
// 0.6's tool sent none, and a 0.6 worker ignores it).
const KeepStatePayload = "keep-state"
