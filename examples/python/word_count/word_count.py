"""Word count, written to the Wallaroo 0.6 Python API.

Lines arrive framed on a TCP source, are split into words, every word is
routed by itself (key_by) to a running total kept per word, and each update
leaves as a line "word => count" on a TCP sink.
"""

import wallaroo

PUNCTUATION = " !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"


def application_setup(args):
    in_host, in_port = wallaroo.tcp_parse_input_addrs(args)[0]
    out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]

    lines = wallaroo.source(
        "Split and Count",
        wallaroo.TCPSourceConfig(in_host, in_port, decode_line))
    pipeline = (lines
                .to(split)
                .key_by(extract_word)
                .to(count_word)
                .to_sink(wallaroo.TCPSinkConfig(out_host, out_port,
                                                encode_word_count)))
    return wallaroo.build_application("Word Count Application", pipeline)


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode_line(bs):
    return bs.decode("utf-8")


@wallaroo.computation_multi(name="split into words")
def split(text):
    words = []
    for line in text.split("\n"):
        for word in line.lower().strip(PUNCTUATION).split(" "):
            word = word.strip(PUNCTUATION)
            if word:
                words.append(word)
    return words


@wallaroo.key_extractor
def extract_word(word):
    return word


class WordTotal(object):
    """The running total of one word (one instance per word)."""

    def __init__(self):
        self.count = 0


@wallaroo.state_computation(name="count word", state=WordTotal)
def count_word(word, total):
    total.count += 1
    return (word, total.count)


@wallaroo.encoder
def encode_word_count(word_and_count):
    return ("%s => %d\n" % word_and_count).encode("utf-8")
