"""Alerts (stateful), written to the Wallaroo 0.6 Python API.

A generator source (GenSourceConfig) invents an endless stream of bank
transactions for five users, who take turns: Fido, Rex, Dr. Whiskers,
Feathers, Mountaineer, Fido, ... The first transaction (Fido's) moves 1;
every next one moves ((previous amount * 2305843009213693951 + 7) % 2500)
- 1250, except that a user whose total, as the generator counts it, is
above 5000 withdraws 6000 and one below -5000 deposits 6000 instead.

The transactions are routed by user (key_by) to a TransactionTotal state
per user; the state computation "check transaction total" adds the amount
to the user's total and emits "Deposit Alert for <user>: <total>" when the
total is above 2000, "Withdrawal Alert for <user>: <total>" when it is below
-2000, and nothing otherwise. The alerts leave as lines on a TCP sink.

There is no input: the application needs only --out.
"""

import wallaroo

USERS = ["Fido", "Rex", "Dr. Whiskers", "Feathers", "Mountaineer"]


def application_setup(args):
    out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]

    transactions = wallaroo.source(
        "Alerts (stateful)",
        wallaroo.GenSourceConfig(TransactionsGenerator()))
    pipeline = (transactions
                .key_by(extract_user)
                .to(check_transaction_total)
                .to_sink(wallaroo.TCPSinkConfig(out_host, out_port,
                                                encode_alert)))
    return wallaroo.build_application("Alerts (stateful)", pipeline)


class Transaction(object):
    def __init__(self, user, amount):
        self.user = user
        self.amount = amount


class DepositAlert(object):
    def __init__(self, user, total):
        self.user = user
        self.total = total

    def __str__(self):
        return "Deposit Alert for %s: %d" % (self.user, self.total)


class WithdrawalAlert(object):
    def __init__(self, user, total):
        self.user = user
        self.total = total

    def __str__(self):
        return "Withdrawal Alert for %s: %d" % (self.user, self.total)


class TransactionsGenerator(object):
    """The generator of a GenSourceConfig. It keeps its own total per user
    to keep the users' balances from drifting too far."""

    def __init__(self):
        self.turn = 0
        self.totals = dict((user, 0) for user in USERS)

    def initial_value(self):
        return self._record(Transaction(USERS[0], 1))

    def apply(self, transaction):
        self.turn = (self.turn + 1) % len(USERS)
        user = USERS[self.turn]
        if self.totals[user] > 5000:
            amount = -6000
        elif self.totals[user] < -5000:
            amount = 6000
        else:
            amount = ((transaction.amount * 2305843009213693951 + 7)
                      % 2500) - 1250
        return self._record(Transaction(user, amount))

    def _record(self, transaction):
        self.totals[transaction.user] += transaction.amount
        return transaction


class TransactionTotal(object):
    """The balance of one user (one instance per user)."""

    def __init__(self):
        self.total = 0


@wallaroo.key_extractor
def extract_user(transaction):
    return transaction.user


@wallaroo.state_computation(name="check transaction total",
                            state=TransactionTotal)
def check_transaction_total(transaction, transaction_total):
    transaction_total.total += transaction.amount
    if transaction_total.total > 2000:
        return DepositAlert(transaction.user, transaction_total.total)
    if transaction_total.total < -2000:
        return WithdrawalAlert(transaction.user, transaction_total.total)
    return None


@wallaroo.encoder
def encode_alert(alert):
    return (str(alert) + "\n").encode("utf-8")
