import argparse

import wallaroo


def application_setup(args):
    parser = argparse.ArgumentParser(prog="setup_argparse")
    parser.add_argument("--required-thing", required=True)
    parser.parse_known_args(args[1:])
    raise AssertionError("not reached")
