"""Alerts (stateless), written to the Wallaroo 0.6 Python API.

A generator source (GenSourceConfig) invents an endless stream of bank
transactions: transaction 0 moves 1, and every next transaction moves
((previous amount * 2305843009213693951 + 7) % 2500) - 1250, an amount
between -1250 and 1249. A stateless computation, "check transaction",
turns a deposit above 1000 into "Deposit Alert for <id>: <amount>" and a
withdrawal below -1000 into "Withdrawal Alert for <id>: <amount>", and
drops every other transaction. The alerts leave as lines on a TCP sink.

There is no input: the application needs only --out.
"""

import wallaroo


def application_setup(args):
    out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]

    transactions = wallaroo.source(
        "Alerts (stateless)",
        wallaroo.GenSourceConfig(TransactionsGenerator()))
    pipeline = (transactions
                .to(check_transaction)
                .to_sink(wallaroo.TCPSinkConfig(out_host, out_port,
                                                encode_alert)))
    return wallaroo.build_application("Alerts (stateless)", pipeline)


class Transaction(object):
    def __init__(self, tx_id, amount):
        self.id = tx_id
        self.amount = amount


class DepositAlert(object):
    def __init__(self, tx_id, amount):
        self.id = tx_id
        self.amount = amount

    def __str__(self):
        return "Deposit Alert for %d: %d" % (self.id, self.amount)


class WithdrawalAlert(object):
    def __init__(self, tx_id, amount):
        self.id = tx_id
        self.amount = amount

    def __str__(self):
        return "Withdrawal Alert for %d: %d" % (self.id, self.amount)


class TransactionsGenerator(object):
    """The generator of a GenSourceConfig: a first value, then the value
    after any value."""

    def initial_value(self):
        return Transaction(0, 1)

    def apply(self, transaction):
        amount = ((transaction.amount * 2305843009213693951 + 7)
                  % 2500) - 1250
        return Transaction(transaction.id + 1, amount)


@wallaroo.computation(name="check transaction")
def check_transaction(transaction):
    if transaction.amount > 1000:
        return DepositAlert(transaction.id, transaction.amount)
    if transaction.amount < -1000:
        return WithdrawalAlert(transaction.id, transaction.amount)
    return None


@wallaroo.encoder
def encode_alert(alert):
    return (str(alert) + "\n").encode("utf-8")
