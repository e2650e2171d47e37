"""Multi pipeline (two sources merged), written to the Wallaroo 0.6 Python
API.

Two TCP sources, each with its own stateless step: deposits (the first --in
address) and withdrawals (the second). Both carry lines "<account>
<amount>" with a positive whole amount. "parse deposit" makes an Entry
that adds the amount, "parse withdrawal" one that subtracts it. The two
pipelines are merged and routed by account (key_by) to a Balance state per
account; "update balance" applies the entry and emits the account's new
balance and how many entries it has seen, written as a line
"<account> => <balance> after entry <n>" to the TCP sink.

On one worker, entries of one account from one source keep their order.
On a cluster the parse steps, the first stateless steps after the sources,
are dealt over every worker (as Wallaroo 0.6 dealt them), so entries of one
account that arrive close together may reach its state in another order.
How deposits and withdrawals interleave depends on timing too, but the line
with an account's last entry count always shows its final balance.
"""

import wallaroo


def application_setup(args):
    deposits_addr, withdrawals_addr = wallaroo.tcp_parse_input_addrs(args)[:2]
    out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]

    deposits = (wallaroo.source(
        "Deposits",
        wallaroo.TCPSourceConfig(deposits_addr[0], deposits_addr[1],
                                 decode_line))
        .to(parse_deposit))
    withdrawals = (wallaroo.source(
        "Withdrawals",
        wallaroo.TCPSourceConfig(withdrawals_addr[0], withdrawals_addr[1],
                                 decode_line))
        .to(parse_withdrawal))
    pipeline = (deposits
                .merge(withdrawals)
                .key_by(extract_account)
                .to(update_balance)
                .to_sink(wallaroo.TCPSinkConfig(out_host, out_port,
                                                encode_balance)))
    return wallaroo.build_application("Deposits and Withdrawals", pipeline)


class Entry(object):
    def __init__(self, account, amount):
        self.account = account
        self.amount = amount


class Balance(object):
    """The balance of one account (one instance per account)."""

    def __init__(self):
        self.balance = 0
        self.entries = 0


class BalanceReport(object):
    def __init__(self, account, balance, entries):
        self.account = account
        self.balance = balance
        self.entries = entries


def parse_entry(line, sign):
    account, amount = line.split()
    return Entry(account, sign * int(amount))


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode_line(bs):
    return bs.decode("utf-8")


@wallaroo.computation(name="parse deposit")
def parse_deposit(line):
    return parse_entry(line, 1)


@wallaroo.computation(name="parse withdrawal")
def parse_withdrawal(line):
    return parse_entry(line, -1)


@wallaroo.key_extractor
def extract_account(entry):
    return entry.account


@wallaroo.state_computation(name="update balance", state=Balance)
def update_balance(entry, balance):
    balance.balance += entry.amount
    balance.entries += 1
    return BalanceReport(entry.account, balance.balance, balance.entries)


@wallaroo.encoder
def encode_balance(report):
    return ("%s => %d after entry %d\n"
            % (report.account, report.balance, report.entries)).encode("utf-8")
