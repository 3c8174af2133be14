"""The blocking and the async client offer the same methods, with the same parameters: one is the other awaited."""

from __future__ import annotations

import inspect
import typing

import pytest

from qqueue.client import AsyncClient, Client

#: What only the async client has: its `aclose`, spelt as httpx spells it, beside `close`.
ASYNC_ONLY = {"aclose"}
#: Methods that hand out items rather than answers: plain functions returning an (async) iterator on both.
ITERATORS = {"iter_tasks", "iter_jobs"}


def public_methods(cls: type) -> dict[str, typing.Any]:
    return {name: getattr(cls, name) for name in dir(cls)
            if not name.startswith("_") and callable(getattr(cls, name))}


def test_the_clients_have_the_same_public_methods():
    assert set(public_methods(AsyncClient)) - ASYNC_ONLY == set(public_methods(Client))
    assert {"submit", "get", "wait", "list", "iter_tasks", "cancel", "health"} <= set(public_methods(Client))


@pytest.mark.parametrize("name", sorted(public_methods(Client)))
def test_each_method_takes_the_same_parameters(name):
    blocking = inspect.signature(getattr(Client, name))
    awaited = inspect.signature(getattr(AsyncClient, name))
    assert list(awaited.parameters.values()) == list(blocking.parameters.values())
    if name in ITERATORS:
        assert awaited.return_annotation == "Async" + blocking.return_annotation
    else:
        assert awaited.return_annotation == blocking.return_annotation


@pytest.mark.parametrize("name", sorted(public_methods(Client)))
def test_async_methods_are_awaited_and_the_type_hints_resolve(name):
    method = getattr(AsyncClient, name)
    assert inspect.iscoroutinefunction(method) == (name not in ITERATORS)
    assert not inspect.iscoroutinefunction(getattr(Client, name))
    blocking, awaited = typing.get_type_hints(getattr(Client, name)), typing.get_type_hints(method)
    assert blocking.keys() == awaited.keys()
    assert method.__doc__ and getattr(Client, name).__doc__


def test_the_constructors_match_but_for_the_transport():
    blocking = dict(inspect.signature(Client).parameters)
    awaited = dict(inspect.signature(AsyncClient).parameters)
    assert blocking.pop("transport").annotation == "httpx.BaseTransport | None"
    assert awaited.pop("transport").annotation == "httpx.AsyncBaseTransport | None"
    assert blocking == awaited
