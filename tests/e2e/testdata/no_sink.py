import wallaroo


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode(bs):
    return bs


def application_setup(args):
    p = wallaroo.source("Open", wallaroo.TCPSourceConfig("127.0.0.1", "0", decode))
    return wallaroo.build_application("No sink", p)
