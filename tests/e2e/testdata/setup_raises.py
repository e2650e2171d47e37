import wallaroo


def application_setup(args):
    raise RuntimeError("no configuration for this application")
