"""How one endpoint definition of `qqueue.client._endpoints` becomes a method of both clients: `Endpoint` (the
answer on `Client`, a coroutine of it on `AsyncClient`) and `Pages` (an iterator, or an async iterator), each with
the endpoint's name, parameters, type hints and docstring, as if written out on the class."""

from __future__ import annotations

import builtins
import inspect
import re
import typing
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from qqueue.client._protocol import Exchange, Operations, Paging

if TYPE_CHECKING:
    from qqueue.client.client import AsyncClient, Client

P = ParamSpec("P")
T = TypeVar("T")
#: What a method returns on `Client` and on `AsyncClient`.
Blocking = TypeVar("Blocking")
Awaited = TypeVar("Awaited")


class _Method(Generic[P, Blocking, Awaited]):
    """What `Endpoint` and `Pages` share: the method an endpoint is on each client class, made once per class,
    typed by what it returns on each."""

    #: The public return annotation of an endpoint annotated "Exchange[X]" or "Paging[X]", blocking and awaited.
    returns: tuple[str, str]
    #: The docstring of an awaited method: it refers to the blocking one's.
    async_doc = "See `Client.{}`."

    def __init__(self, spec: Callable[..., Any]) -> None:
        self.spec = spec
        self._methods: dict[type, Callable[..., Any]] = {}

    def method(self, owner: type) -> Callable[..., Any]:
        """The method on class `owner`: awaited when `owner._awaited` is true, else blocking."""
        made = self._methods.get(owner)
        if made is None:
            awaited = bool(getattr(owner, "_awaited", False))
            made = self._methods[owner] = self._described(self.make(awaited), owner, awaited)
        return made

    def make(self, awaited: bool) -> Callable[..., Any]:
        """The method's body: it runs the endpoint on the client's `_ops` with the client's driver."""
        raise NotImplementedError

    @overload
    def __get__(self, obj: None, owner: type) -> Callable[..., Any]: ...
    @overload
    def __get__(self, obj: Client, owner: type) -> Callable[P, Blocking]: ...
    @overload
    def __get__(self, obj: AsyncClient, owner: type) -> Callable[P, Awaited]: ...
    def __get__(self, obj: Any, owner: type) -> Any:
        method = self.method(owner)
        return method if obj is None else method.__get__(obj, owner)

    def _described(self, method: Callable[..., Any], owner: type, awaited: bool) -> Callable[..., Any]:
        """`method` with the endpoint's name, parameters (`self` in place of the operations), type hints and
        docstring, as if written out on `owner`."""
        spec = self.spec
        written = re.fullmatch(r"(?:Exchange|Paging)\[(.*)\]", spec.__annotations__["return"])
        assert written is not None, f"{spec.__name__} must be annotated Exchange[...] or Paging[...]"
        returns = self.returns[awaited].format(written[1])
        # Resolved where the endpoint is written: its module names every wire type its hints use.
        hints = {**typing.get_type_hints(spec), "return": _resolved(returns, spec)}
        signature = inspect.signature(spec)
        parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
                      *builtins.list(signature.parameters.values())[1:]]
        vars(method)["__signature__"] = signature.replace(parameters=parameters, return_annotation=returns)
        method.__annotations__ = {k: v for k, v in hints.items() if k != "ops"}
        method.__name__ = spec.__name__
        method.__qualname__ = f"{owner.__qualname__}.{spec.__name__}"
        method.__module__ = owner.__module__
        method.__doc__ = self.async_doc.format(spec.__name__) if awaited else spec.__doc__
        return method


class Endpoint(_Method[P, T, Coroutine[Any, Any, T]]):
    """An endpoint as a method: it returns the answer on `Client`, and is a coroutine of it on `AsyncClient`."""

    returns = ("{}", "{}")

    def __init__(self, spec: Callable[Concatenate[Operations, P], Exchange[T]]) -> None:
        super().__init__(spec)

    def make(self, awaited: bool) -> Callable[..., Any]:
        spec = self.spec
        if awaited:
            async def call_async(self: Any, *args: Any, **kwargs: Any) -> Any:
                return await self._run(spec(self._ops, *args, **kwargs))
            return call_async

        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            return self._run(spec(self._ops, *args, **kwargs))
        return call


class Pages(_Method[P, Iterator[T], AsyncIterator[T]]):
    """A paging endpoint as a method: an iterator of its items on `Client`, an async iterator on `AsyncClient`."""

    returns = ("Iterator[{}]", "AsyncIterator[{}]")
    async_doc = "See `Client.{}`; use with `async for`."

    def __init__(self, spec: Callable[Concatenate[Operations, P], Paging[T]]) -> None:
        super().__init__(spec)

    def make(self, awaited: bool) -> Callable[..., Any]:
        spec = self.spec

        def iterate(self: Any, *args: Any, **kwargs: Any) -> Any:
            return self._iterate(spec(self._ops, *args, **kwargs))
        return iterate


def _resolved(annotation: str, where: Callable[..., Any]) -> Any:
    """The type an annotation names in `where`'s module (and the iterators a method may return)."""
    def holder() -> None: ...
    holder.__annotations__ = {"return": annotation}
    return typing.get_type_hints(holder, globalns=where.__globals__,
                                 localns={"Iterator": Iterator, "AsyncIterator": AsyncIterator})["return"]
