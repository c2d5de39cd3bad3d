from jobrunner.queue import ReliableQueue


async def test_enqueue_reserve_ack_round_trip(queue: ReliableQueue) -> None:
    job_id = await queue.enqueue("noop", {"x": 1})
    [r] = await queue.reserve("default", 10, lease=5)
    assert (r.id, r.attempts) == (job_id, 1)
    assert await queue.ack("default", [(r.id, r.token)]) == []
    record = await queue.get_job(job_id)
    assert record is not None
    assert record.state == "done"
