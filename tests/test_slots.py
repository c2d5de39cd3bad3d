"""The worker's counting semaphore: free slots at no cost, FIFO hand-over, no leak on cancel."""

from __future__ import annotations

import asyncio

from jobrunner.worker.slots import Slots


async def test_free_slots_are_taken_without_waiting_and_the_rest_wait_in_order() -> None:
    slots = Slots(2)
    await slots.acquire()
    await slots.acquire()
    assert slots.free == 0
    order: list[int] = []

    async def take(i: int) -> None:
        await slots.acquire()
        order.append(i)

    waiters = [asyncio.create_task(take(i)) for i in range(3)]
    await asyncio.sleep(0)  # let them queue up
    assert order == []
    for expected in ([0], [0, 1], [0, 1, 2]):
        slots.release()
        await asyncio.sleep(0)
        assert order == expected
    await asyncio.gather(*waiters)
    assert slots.free == 0


async def test_a_cancelled_waiter_neither_keeps_nor_loses_a_slot() -> None:
    slots = Slots(1)
    await slots.acquire()
    waiter = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    slots.release()
    assert slots.free == 1
    await slots.acquire()
    assert slots.free == 0


async def test_a_slot_handed_to_a_waiter_cancelled_at_that_moment_is_passed_on() -> None:
    slots = Slots(1)
    await slots.acquire()
    first = asyncio.create_task(slots.acquire())
    second = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    slots.release()  # hands the slot to `first`...
    first.cancel()  # ...which is cancelled before it runs again
    await asyncio.gather(first, return_exceptions=True)
    await asyncio.wait_for(second, 1)  # the slot went on to `second`
    assert slots.free == 0
