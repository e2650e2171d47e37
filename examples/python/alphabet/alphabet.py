"""Alphabet popularity contest, written to the Wallaroo 0.6 Python API.

Every message is a vote: one letter and a number of votes for it. Votes are
routed by letter (key_by) to a running total kept per letter (AllVotes), and
every update leaves as a line "letter => running total" on a TCP sink.

Input frame: a 4-byte big-endian length (always 5), then the payload: the
letter as one byte and the vote count as a big-endian unsigned 32-bit int.
"""

import struct

import wallaroo


def application_setup(args):
    in_host, in_port = wallaroo.tcp_parse_input_addrs(args)[0]
    out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]

    votes = wallaroo.source(
        "alphabet",
        wallaroo.TCPSourceConfig(in_host, in_port, decode_votes))
    pipeline = (votes
                .key_by(extract_letter)
                .to(add_votes)
                .to_sink(wallaroo.TCPSinkConfig(out_host, out_port,
                                                encode_total)))
    return wallaroo.build_application("Alphabet Popularity Contest", pipeline)


class Votes(object):
    """Some votes for one letter (a message)."""

    def __init__(self, letter, count):
        self.letter = letter
        self.count = count


class AllVotes(object):
    """The running total of one letter (one instance per letter)."""

    def __init__(self):
        self.total = 0


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode_votes(bs):
    letter, count = struct.unpack(">1sI", bs)
    return Votes(letter.decode("ascii"), count)


@wallaroo.key_extractor
def extract_letter(votes):
    return votes.letter


@wallaroo.state_computation(name="add votes", state=AllVotes)
def add_votes(votes, all_votes):
    all_votes.total += votes.count
    return Votes(votes.letter, all_votes.total)


@wallaroo.encoder
def encode_total(votes):
    return ("%s => %d\n" % (votes.letter, votes.count)).encode("utf-8")
