import wallaroo


@wallaroo.computation(name="two arguments")
def two_arguments(data, extra):
    return data


def application_setup(args):
    raise AssertionError("not reached: the import fails")
