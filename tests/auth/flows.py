"""Drive a sans-IO flow in a unit test the way the broker does: send each request it yields, hand it the answer."""

from __future__ import annotations

import typing
from collections.abc import Callable, Generator

import httpx

T = typing.TypeVar("T")
Handler = Callable[[httpx.Request], httpx.Response]


def drive(flow: Generator[httpx.Request, httpx.Response, T], handler: Handler) -> T:
    """What ``flow`` returns once every request it yields has had ``handler``'s answer (over a MockTransport)."""
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        request = next(flow)
        while True:
            try:
                request = flow.send(client.send(request))
            except StopIteration as done:
                return typing.cast(T, done.value)
