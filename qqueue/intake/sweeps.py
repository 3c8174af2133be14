"""Parameter values and observables of a PUB, read and checked the way Qiskit's primitives read them. Pure.

Parameter values are an array whose last axis follows the circuit's parameters (sorted by name, as
`QuantumCircuit.parameters` orders them), or an object of parameter name -> array; the leading axes are the sweep's
shape. Observables are Pauli-string objects, bare Pauli strings, or nested lists of them, broadcast against the
sweep as Qiskit's `EstimatorPub` does. Everything here is bounded before it allocates: nesting depth, element
count and term count are checked on the JSON as sent, so a hostile array costs its size and no more.

Where a PUB is split over several tasks (`split`), each part carries contiguous elements of the PUB's broadcast
shape, flattened row-major, so the parts concatenate back into the PUB's arrays in order.
"""

from __future__ import annotations

import math
import re
from typing import Any

import msgspec
import numpy as np

from qqueue.errors import IntakeError

#: Deepest nesting of an array as sent (a sweep's axes plus the parameter axis).
MAX_DEPTH = 16
_PAULI = re.compile(r"[IXYZ]+")


class SweepLimits(msgspec.Struct, kw_only=True, frozen=True):
    """What one PUB may ask for."""

    #: Parameter sets of one PUB (for estimate: elements of its broadcast shape).
    max_sets: int = 100_000
    #: Numbers in the parameter-value array (sets x parameters).
    max_values: int = 1_000_000
    #: Pauli terms over every observable of one PUB.
    max_terms: int = 100_000


class Sweep(msgspec.Struct, kw_only=True, frozen=True):
    """A PUB's inputs as the worker receives them: `values` has shape (*sweep, parameters), `observables` (for
    estimate) an array of term objects, `shape` the PUB's broadcast shape."""

    parameters: list[str]
    values: Any
    shape: list[int]
    observables: Any = None


def sets(shape: list[int]) -> int:
    """Elements of an array of `shape` (1 for a scalar)."""
    return math.prod(shape)


def _count(raw: Any, depth: int, what: str) -> int:
    """Leaves of a nested list, refusing what is too deep before anything else is built."""
    if depth > MAX_DEPTH:
        raise IntakeError(f"{what} is nested more than {MAX_DEPTH} levels deep", code="invalid_parameters")
    if isinstance(raw, list):
        return sum(_count(item, depth + 1, what) for item in raw) if raw else 0
    return 1


def _array(raw: Any, what: str, limit: int) -> np.ndarray:
    leaves = _count(raw, 0, what)
    if leaves > limit:
        raise IntakeError(f"{what} holds {leaves} numbers; the limit is {limit}", code="too_many_parameter_sets",
                          details={"numbers": leaves, "limit": limit})
    if _has_bad_leaf(raw):
        raise IntakeError(f"{what} must hold numbers only (no strings, booleans, objects or nulls)",
                          code="invalid_parameters")
    try:
        array = np.asarray(raw, dtype=float)
    except OverflowError:
        raise IntakeError(f"{what} holds a number too large for a double", code="invalid_parameters") from None
    except (ValueError, TypeError):
        raise IntakeError(f"{what} is not a rectangular array: every list at the same depth must have the same "
                          "length", code="invalid_parameters") from None
    if not np.all(np.isfinite(array)):
        raise IntakeError(f"{what} holds a value that is not a finite number (NaN or infinity)",
                          code="invalid_parameters")
    return array


def _has_bad_leaf(raw: Any) -> bool:
    if isinstance(raw, list):
        return any(_has_bad_leaf(item) for item in raw)
    return isinstance(raw, bool) or not isinstance(raw, (int, float))


def read_values(raw: Any, parameters: list[str], limits: SweepLimits) -> np.ndarray:
    """The parameter sets as an array of shape (*sweep, len(parameters)); raises `IntakeError` naming what is
    missing, extra, misshapen or not a number."""
    count = len(parameters)
    if raw is None or (isinstance(raw, (list, dict)) and not raw and not count):
        if count:
            raise IntakeError(f"the circuit has {count} parameters ({_names(parameters)}) and no parameter_values "
                              "bind them", code="unbound_parameters", details={"parameters": parameters})
        return np.zeros((0,))
    if isinstance(raw, dict):
        return _from_mapping(raw, parameters, limits)
    array = _array(raw, "parameter_values", limits.max_values)
    if array.ndim == 0:
        array = array.reshape(1)
    if not count:
        if array.size:
            raise IntakeError("parameter_values were given, but the circuit has no parameters",
                              code="extra_parameters")
        _check_sets(array.shape[:-1], limits)
        return np.zeros(array.shape[:-1] + (0,))
    if array.shape[-1] != count:
        raise IntakeError(f"the last axis of parameter_values has {array.shape[-1]} values, but the circuit has "
                          f"{count} parameters ({_names(parameters)}), in that order", code="parameter_count",
                          details={"parameters": parameters, "given": array.shape[-1]})
    _check_sets(array.shape[:-1], limits)
    return array


def _from_mapping(raw: dict[str, Any], parameters: list[str], limits: SweepLimits) -> np.ndarray:
    missing = [p for p in parameters if p not in raw]
    extra = [k for k in raw if k not in parameters]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"no value for {_names(missing)}")
        if extra:
            parts.append(f"the circuit has no parameter {_names(extra)}")
        raise IntakeError(f"parameter_values do not match the circuit's parameters ({_names(parameters) or 'none'}): "
                          f"{'; '.join(parts)}", code="unbound_parameters" if missing else "extra_parameters",
                          details={"parameters": parameters, "missing": missing, "extra": extra})
    columns = [_array(raw[name], f"parameter_values[{name!r}]", limits.max_values) for name in parameters]
    try:
        shape = np.broadcast_shapes(*(c.shape for c in columns))
    except ValueError:
        shapes = ", ".join(f"{name}: {list(c.shape)}" for name, c in zip(parameters, columns, strict=True))
        raise IntakeError(f"the arrays of parameter_values cannot be broadcast together ({shapes})",
                          code="parameter_shape") from None
    _check_sets(shape, limits)
    if math.prod(shape) * len(parameters) > limits.max_values:
        raise IntakeError(f"parameter_values broadcast to {math.prod(shape)} sets of {len(parameters)}; the limit "
                          f"is {limits.max_values} numbers", code="too_many_parameter_sets")
    return np.stack([np.broadcast_to(c, shape) for c in columns], axis=-1)


def _check_sets(shape: tuple[int, ...], limits: SweepLimits) -> None:
    n = math.prod(shape)
    if n > limits.max_sets:
        raise IntakeError(f"{n} parameter sets in one PUB; the limit is {limits.max_sets}",
                          code="too_many_parameter_sets", details={"sets": n, "limit": limits.max_sets})


def read_observables(raw: Any, num_qubits: int, limits: SweepLimits) -> np.ndarray:
    """An object array of {pauli: coefficient} dicts, one per observable; Pauli strings are in Qiskit's order
    (the rightmost letter acts on qubit 0) and as wide as the circuit."""
    if raw is None:
        raise IntakeError("estimate needs observables: e.g. {\"ZZ\": 1.0} or a list of such objects",
                          code="invalid_observables")
    terms = [0]
    tree = _read_tree(raw, num_qubits, limits, terms, 0)
    flat = _flatten(tree)
    array = np.empty(len(flat), dtype=object)
    array[:] = flat
    shape = _tree_shape(tree)
    return array.reshape(shape)


def _read_tree(raw: Any, width: int, limits: SweepLimits, terms: list[int], depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise IntakeError(f"observables are nested more than {MAX_DEPTH} levels deep", code="invalid_observables")
    if isinstance(raw, list):
        if not raw:
            raise IntakeError("observables holds an empty list", code="invalid_observables")
        return [_read_tree(item, width, limits, terms, depth + 1) for item in raw]
    if isinstance(raw, str):
        raw = {raw: 1.0}
    if not isinstance(raw, dict) or not raw:
        raise IntakeError("each observable is a Pauli string or an object of Pauli strings to real coefficients, "
                          'e.g. {"ZZ": 1.0, "XI": -0.5}', code="invalid_observables")
    terms[0] += len(raw)
    if terms[0] > limits.max_terms:
        raise IntakeError(f"the observables hold more than {limits.max_terms} Pauli terms",
                          code="too_many_observables", details={"limit": limits.max_terms})
    out: dict[str, float] = {}
    for pauli, coeff in raw.items():
        if not _PAULI.fullmatch(pauli):
            bad = sorted(set(pauli) - set("IXYZ"))[:5]
            raise IntakeError(f"observable term {pauli[:40]!r} is not a Pauli string: it may hold only I, X, Y and Z"
                              + (f" (found {', '.join(map(repr, bad))})" if bad else ""),
                              code="invalid_observables", details={"term": pauli[:100]})
        if len(pauli) != width:
            raise IntakeError(f"observable term {pauli[:40]!r} acts on {len(pauli)} qubits, but the circuit has "
                              f"{width}", code="observable_width",
                              details={"term_qubits": len(pauli), "circuit_qubits": width})
        if isinstance(coeff, bool) or not isinstance(coeff, (int, float)) or not _finite(coeff):
            raise IntakeError(f"the coefficient of {pauli[:40]!r} must be a finite real number",
                              code="invalid_observables")
        out[pauli] = out.get(pauli, 0.0) + float(coeff)
    return out


def _finite(number: int | float) -> bool:
    try:
        return math.isfinite(float(number))
    except OverflowError:  # an integer past the largest double
        return False


def _tree_shape(tree: Any) -> tuple[int, ...]:
    if not isinstance(tree, list):
        return ()
    shapes = {_tree_shape(item) for item in tree}
    if len(shapes) != 1:
        raise IntakeError("observables is not a rectangular array: every list at the same depth must have the "
                          "same length", code="invalid_observables")
    return (len(tree), *shapes.pop())


def _flatten(tree: Any) -> list[dict[str, float]]:
    if isinstance(tree, list):
        return [leaf for item in tree for leaf in _flatten(item)]
    return [tree]


def distinct_terms(observables: Any) -> int:
    """Distinct Pauli strings over (nested lists of) term objects."""
    seen: set[str] = set()
    stack = [observables]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            seen.update(item)
    return len(seen)


def broadcast(values: np.ndarray, observables: np.ndarray | None, limits: SweepLimits) -> tuple[int, ...]:
    """The PUB's shape: the sweep's, broadcast against the observables' for estimate."""
    sweep = values.shape[:-1] if values.ndim else ()
    if observables is None:
        return tuple(sweep)
    try:
        shape = np.broadcast_shapes(sweep, observables.shape)
    except ValueError:
        raise IntakeError(f"observables of shape {list(observables.shape)} cannot be broadcast against parameter "
                          f"values of shape {list(sweep)}", code="parameter_shape",
                          details={"observables_shape": list(observables.shape),
                                   "parameter_values_shape": list(sweep)}) from None
    _check_sets(shape, limits)
    return tuple(shape)


def whole(parameters: list[str], values: np.ndarray, observables: np.ndarray | None,
          shape: tuple[int, ...]) -> Sweep:
    """The PUB as one task: its arrays as given (Aer broadcasts them itself)."""
    return Sweep(parameters=parameters, values=values.tolist(), shape=list(shape),
                 observables=observables.tolist() if observables is not None else None)


def split(parameters: list[str], values: np.ndarray, observables: np.ndarray | None, shape: tuple[int, ...],
          chunk: int, limits: SweepLimits) -> list[tuple[int, int, Sweep]]:
    """The PUB as parts of at most `chunk` elements each: (start, stop, sweep) over its flattened broadcast
    shape, in order. Each element of a part carries its own parameter set, so the values are broadcast to the
    PUB's shape first: that many numbers must be within the limit."""
    total = math.prod(shape)
    width = len(parameters)
    if total * width > limits.max_values:
        raise IntakeError(f"split into parts, this PUB's parameter values broadcast to {total} sets of {width}, "
                          f"{total * width} numbers; the limit is {limits.max_values}: send fewer observables or "
                          "parameter sets, or a chunk_size as large as the PUB", code="too_many_parameter_sets",
                          details={"numbers": total * width, "limit": limits.max_values})
    flat_values = np.broadcast_to(values, (*shape, width)).reshape(total, width) if width else None
    flat_obs = np.broadcast_to(observables, shape).reshape(total) if observables is not None else None
    parts = []
    for start in range(0, total, chunk):
        stop = min(total, start + chunk)
        part_values = (flat_values[start:stop] if flat_values is not None else np.zeros((stop - start, 0))).tolist()
        part_obs = flat_obs[start:stop].tolist() if flat_obs is not None else None
        parts.append((start, stop, Sweep(parameters=parameters, values=part_values, shape=[stop - start],
                                         observables=part_obs)))
    return parts


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:10])
    return shown + (f" and {len(names) - 10} more" if len(names) > 10 else "")
