"""Decode ahead: the DiT's next call runs while the block before it decodes.

On the CPU a plain world thread alternates the DiT call with the autoencoder's decode of that block, so the
model's core idles while it decodes. Here the calls run one after another on a DiT thread and each block decodes
on a decoder thread, both on the model's torch thread count, so a block comes out every DiT call. A call reads
the newest action and prompt when it starts (the caller's `call`), so the player steers it as in the plain world;
the DiT runs at most one block ahead of the frames the caller has taken.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Generic, TypeVar

Emitted = TypeVar("Emitted")
Decoded = TypeVar("Decoded")
IN_FLIGHT = 2          # blocks started and not yet taken: the one decoding (or ready) and the one the DiT runs


class DecodeAhead(Generic[Emitted, Decoded]):
    """Keeps IN_FLIGHT blocks in flight: `call()` makes a block (the DiT thread), `decode(block)` turns it into
    what `take` returns (the decoder thread). `stop` waits for them and drops them (before the stream restarts);
    errors in either thread are raised by `take`."""

    def __init__(self, call: Callable[[], Emitted], decode: Callable[[Emitted], Decoded]):
        self._call, self._decode = call, decode
        self._dit = ThreadPoolExecutor(1, thread_name_prefix="dit")
        self._decoder = ThreadPoolExecutor(1, thread_name_prefix="decode")
        self._blocks: deque[Future] = deque()

    def take(self) -> Decoded:
        """The oldest block, decoded (waits for it); the DiT is already making the next one."""
        self._fill()
        block = self._blocks.popleft().result()
        self._fill()
        return block

    def stop(self) -> None:
        """Let the blocks in flight finish (they hold the sampler) and drop them."""
        while self._blocks:
            self._blocks.popleft().exception()

    def close(self) -> None:
        self.stop()
        self._dit.shutdown()
        self._decoder.shutdown()

    @property
    def in_flight(self) -> int:
        return len(self._blocks)

    def _fill(self) -> None:
        while len(self._blocks) < IN_FLIGHT:
            made = self._dit.submit(self._call)
            self._blocks.append(self._decoder.submit(lambda made=made: self._decode(made.result())))
