"""Token buckets: the pure step, the in-process limiter and the shared Redis one."""

import asyncio

import pytest

from collector.ratelimit import Charge, LocalLimiter, RateLimits, RedisLimiter, charges, settle


def test_charges_cover_the_project_and_each_user():
    todo = charges("p", RateLimits(10, 20, 1, 5), {"u1": 2, "u2": 1})
    assert [(c.key, c.cost) for c in todo] == [("{p}:p", 3), ("{p}:u:u1", 2), ("{p}:u:u2", 1)]
    assert charges("p", RateLimits(0, 0, 0, 0), {"u1": 2}) == []  # rate 0: off


def test_settle_takes_from_every_bucket_or_none():
    a, b = Charge("a", 1.0, 5, 3), Charge("b", 2.0, 2, 3)
    wait, new = settle({}, [a, b], now=100.0)
    assert wait == 0 and new == {"a": (2.0, 100.0), "b": (-1.0, 100.0)}  # b goes into debt
    wait, none = settle(new, [a, b], now=100.0)
    assert none == {} and wait == pytest.approx(1.5)  # b needs 2 tokens at 2/s from -1
    wait, again = settle(new, [a, b], now=101.5)
    assert wait == 0 and again["a"][0] == pytest.approx(0.5)


def test_a_full_bucket_lets_a_batch_larger_than_its_burst_through():
    big = Charge("u", 1.0, 2, 10)
    assert settle({}, [big], now=0.0)[0] == 0


def test_local_limiter_refuses_then_recovers():
    async def go():
        lim = LocalLimiter()
        todo = [Charge("k", 1000.0, 10, 10)]
        assert await lim.take(todo) == 0
        wait = await lim.take(todo)
        assert 0 < wait <= 0.01
        await asyncio.sleep(wait + 0.005)
        assert await lim.take(todo) == 0
    asyncio.run(go())


@pytest.mark.integration
def test_redis_limiter_shares_buckets_between_limiters(redis_url):
    async def go():
        one, two = RedisLimiter(redis_url), RedisLimiter(redis_url)
        todo = [Charge("shared-test", 0.5, 4, 3)]
        assert await one.take(todo) == 0
        wait = await two.take(todo)  # the other replica sees the same bucket
        assert 0 < wait <= 6
        assert one.errors == two.errors == 0
        await one.close()
        await two.close()
    asyncio.run(go())


@pytest.mark.integration
def test_redis_limiter_falls_back_to_local_buckets_when_redis_is_down():
    from radixinsight.procs import free_port

    async def go():
        lim = RedisLimiter(f"redis://127.0.0.1:{free_port()}/0")
        todo = [Charge("k", 1.0, 2, 2)]
        assert await lim.take(todo) == 0
        assert await lim.take(todo) > 0  # still limited, in process
        assert lim.errors == 2
        await lim.close()
    asyncio.run(go())
