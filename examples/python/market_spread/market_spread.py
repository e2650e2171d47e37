"""Market spread, written to the Wallaroo 0.6 Python API.

Two TCP sources: orders (the first --in address) and market data, the best
bid and offer of a symbol (NBBO, the second --in address). Both are merged
and routed by symbol (key_by) to a SymbolData state per symbol. A market
data message updates the symbol's last bid and offer and decides whether
orders on the symbol must be rejected: when the spread is 0.05 or more, or
5% or more of the mid price (or the mid price is not positive). An order on a symbol whose orders are rejected
produces an OrderResult, written as a framed binary record to the TCP sink;
other orders and all market data produce nothing.

Order payload (53 bytes, big-endian): fix type u8 = 1, side u8, account
u32, order id 6 bytes, symbol 4 bytes, quantity f64, price f64, transact
time 21 bytes.
Market data payload (42 bytes, big-endian): fix type u8 = 2, symbol 4
bytes, transact time 21 bytes, bid f64, offer f64.
Output record: u32 length 55, then side u8, account u32, order id 6 bytes,
symbol 4 bytes, quantity, price, bid, offer (f64 each) and a u64 timestamp
(hundredths of a millisecond since the epoch, when the order was checked).
"""

import struct
import time

import wallaroo

ORDER_FIX_TYPE = 1
MARKET_DATA_FIX_TYPE = 2


def application_setup(args):
    input_addrs = wallaroo.tcp_parse_input_addrs(args)
    order_host, order_port = input_addrs[0]
    nbbo_host, nbbo_port = input_addrs[1]
    out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]

    orders = wallaroo.source(
        "Orders",
        wallaroo.TCPSourceConfig(order_host, order_port, decode_order))
    market_data = wallaroo.source(
        "Market Data",
        wallaroo.TCPSourceConfig(nbbo_host, nbbo_port, decode_market_data))
    pipeline = (orders
                .merge(market_data)
                .key_by(extract_symbol)
                .to(check_market_data)
                .to_sink(wallaroo.TCPSinkConfig(out_host, out_port,
                                                encode_order_result)))
    return wallaroo.build_application("Market Spread", pipeline)


class MarketSpreadError(Exception):
    pass


class Order(object):
    def __init__(self, side, account, order_id, symbol, qty, price,
                 transact_time):
        self.side = side
        self.account = account
        self.order_id = order_id
        self.symbol = symbol
        self.qty = qty
        self.price = price
        self.transact_time = transact_time


class MarketDataMessage(object):
    def __init__(self, symbol, transact_time, bid, offer):
        self.symbol = symbol
        self.transact_time = transact_time
        self.bid = bid
        self.offer = offer
        self.spread = offer - bid
        self.mid = (bid + offer) / 2.0


class OrderResult(object):
    def __init__(self, order, bid, offer, timestamp):
        self.order = order
        self.bid = bid
        self.offer = offer
        self.timestamp = timestamp


class SymbolData(object):
    """What is known about one symbol (one instance per symbol)."""

    def __init__(self):
        self.last_bid = 0.0
        self.last_offer = 0.0
        self.should_reject_trades = True


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode_order(bs):
    (fix_type, side, account, order_id, symbol, qty, price,
     transact_time) = struct.unpack(">BBI6s4sdd21s", bs)
    if fix_type != ORDER_FIX_TYPE:
        raise MarketSpreadError("an order has fix type %d, not %d"
                                % (fix_type, ORDER_FIX_TYPE))
    return Order(side, account, order_id, symbol, qty, price, transact_time)


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode_market_data(bs):
    fix_type, symbol, transact_time, bid, offer = struct.unpack(">B4s21sdd",
                                                                bs)
    if fix_type != MARKET_DATA_FIX_TYPE:
        raise MarketSpreadError("a market data message has fix type %d, "
                                "not %d" % (fix_type, MARKET_DATA_FIX_TYPE))
    return MarketDataMessage(symbol, transact_time, bid, offer)


@wallaroo.key_extractor
def extract_symbol(message):
    return message.symbol


@wallaroo.state_computation(name="Check Market Data", state=SymbolData)
def check_market_data(message, symbol_data):
    if isinstance(message, MarketDataMessage):
        symbol_data.last_bid = message.bid
        symbol_data.last_offer = message.offer
        symbol_data.should_reject_trades = (
            message.spread >= 0.05 or message.mid <= 0 or
            message.spread / message.mid >= 0.05)
        return None
    if symbol_data.should_reject_trades:
        return OrderResult(message, symbol_data.last_bid,
                           symbol_data.last_offer,
                           int(time.time() * 100000))
    return None


@wallaroo.encoder
def encode_order_result(result):
    order = result.order
    return struct.pack(">IBI6s4sddddQ", 55, order.side, order.account,
                       order.order_id, order.symbol, order.qty, order.price,
                       result.bid, result.offer, result.timestamp)
