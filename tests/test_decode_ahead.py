"""DecodeAhead: the DiT's next call overlaps the decode of the block before it; order, restart and errors hold."""
import threading

import pytest

from matrix_sim.stream.decode_ahead import IN_FLIGHT, DecodeAhead

WAIT_S = 5.0


def test_the_next_call_runs_while_the_last_block_decodes():
    """Block 0's decode waits until call 1 has started: without the overlap this would time out."""
    call_started = [threading.Event() for _ in range(8)]
    calls = iter(range(8))
    threads = set()

    def call():
        n = next(calls)
        threads.add(("call", threading.current_thread().name))
        call_started[n].set()
        return n

    def decode(n):
        threads.add(("decode", threading.current_thread().name))
        assert call_started[n + 1].wait(WAIT_S), f"call {n + 1} did not start while block {n} decoded"
        return f"frames of {n}"

    ahead = DecodeAhead(call, decode)
    try:
        assert [ahead.take() for _ in range(4)] == [f"frames of {n}" for n in range(4)]
        assert ahead.in_flight == IN_FLIGHT              # one more decoding, the next one in the DiT
    finally:
        ahead.close()
    names = {kind: name for kind, name in threads}
    assert names["call"] != names["decode"] and threading.current_thread().name not in names.values()


def test_stop_waits_for_the_blocks_in_flight_and_drops_them():
    made = []
    release = threading.Event()

    def call():
        release.wait(WAIT_S)
        made.append(len(made))
        return made[-1]

    ahead = DecodeAhead(call, lambda n: n)
    try:
        threading.Timer(0.05, release.set).start()
        assert ahead.take() == 0
        ahead.stop()                                     # returns only once the calls holding the sampler ended
        assert ahead.in_flight == 0 and made == list(range(1 + IN_FLIGHT))
        assert ahead.take() == 1 + IN_FLIGHT             # a restart goes on from the next call
    finally:
        ahead.close()


def test_an_error_in_either_thread_reaches_take():
    def failing_call():
        raise RuntimeError("the DiT failed")

    ahead = DecodeAhead(failing_call, lambda n: n)
    with pytest.raises(RuntimeError, match="the DiT failed"):
        ahead.take()
    ahead.close()
    ahead = DecodeAhead(lambda: 1, lambda n: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        ahead.take()
    ahead.close()
