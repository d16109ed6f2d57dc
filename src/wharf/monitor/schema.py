"""A model's columns: its inputs and its outputs, each with a protocol datatype and the name it is shown by.

The first payload of a model (a logged exchange or an upload) sets its columns; every later one must fit them:
1. by name, in any order: the names the payloads use, or the names they were renamed to (`POST /info/names`);
2. else by position, when the payload is positional (a single tensor, whose column names only number positions)
   and has as many columns;
3. else it is refused, naming the columns missing and unexpected.
A model whose first payload had no outputs (an upload of inputs alone) takes its outputs from the next one that has.

Datatypes widen rather than refuse: numbers of two kinds are read back as the wider (integers as int64, any float
as float64); text where numbers were (or the reverse) is refused. Rows are stored as float64 and text whatever the
datatype, so widening changes only how they are read back.

Cost per payload: a tuple comparison of names and one of datatypes (other orders and widenings are worked out once
and remembered).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from wharf.errors import InvalidInput
from wharf.monitor.payloads import TEXT, Table

_INTEGERS = frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32"})
_REMEMBERED = 64  # orders and widenings remembered per side: payload shapes are few


def read_dtype(datatype: str) -> np.dtype:
    """The dtype a column of `datatype` is read back as."""
    if datatype == TEXT:
        return np.dtype(object)
    if datatype == "BOOL":
        return np.dtype(np.bool_)
    return np.dtype(np.int64) if datatype in _INTEGERS else np.dtype(np.float64)


def _wider(known: str, seen: str, column: str) -> str:
    if known == seen:
        return known
    if TEXT in (known, seen):
        raise InvalidInput(f"column '{column}' holds {known} values; a payload sent {seen}")
    if known in _INTEGERS and seen in _INTEGERS:
        return "INT64"
    if {known, seen} <= _INTEGERS | {"BOOL"}:
        return "INT64"
    return "FP64"


@dataclass(frozen=True, slots=True)
class Side:
    """The inputs or the outputs of a model: `names` as payloads name them, `shown` as renamed."""

    kind: str  # "input" or "output"
    names: tuple[str, ...]
    datatypes: tuple[str, ...]
    shown: tuple[str, ...]
    texts: tuple[bool, ...] = field(init=False, compare=False)  # which columns hold text
    _orders: dict[tuple[str, ...], tuple[int, ...] | None] = field(default_factory=dict, compare=False, repr=False)
    _widened: dict[tuple[str, ...], Side] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "texts", tuple(datatype == TEXT for datatype in self.datatypes))

    @classmethod
    def of(cls, table: Table, kind: str) -> Side:
        return cls(kind, table.names, table.datatypes, table.names)

    @property
    def renames(self) -> dict[str, str]:
        """Original name -> shown name, of the renamed columns."""
        return {name: shown for name, shown in zip(self.names, self.shown, strict=True) if name != shown}

    def fit(self, table: Table, model: str) -> tuple[Side, tuple[Any, ...]]:
        """`table`'s columns in this side's order, and this side (widened where `table` holds wider numbers)."""
        if table.names in self._orders:
            order = self._orders[table.names]
        else:
            order = self._order(table, model)
            if len(self._orders) < _REMEMBERED:
                self._orders[table.names] = order
        if order is None:
            columns, datatypes = table.columns, table.datatypes
        else:
            columns = tuple(table.columns[i] for i in order)
            datatypes = tuple(table.datatypes[i] for i in order)
        if datatypes == self.datatypes:
            return self, columns
        side = self._widened.get(datatypes)
        if side is None:
            wider = tuple(_wider(a, b, c) for a, b, c in zip(self.datatypes, datatypes, self.shown, strict=True))
            side = self if wider == self.datatypes else replace(self, datatypes=wider, _orders={}, _widened={})
            if len(self._widened) < _REMEMBERED:
                self._widened[datatypes] = side
        return side, columns

    def _order(self, table: Table, model: str) -> tuple[int, ...] | None:
        """Where each of this side's columns is in `table` (None: in the same places)."""
        if table.names in (self.names, self.shown):
            return None
        for names in (self.names, self.shown):
            if set(table.names) == set(names):
                index = {name: i for i, name in enumerate(table.names)}
                return tuple(index[name] for name in names)
        if table.positional and len(table.names) == len(self.names):
            return None
        missing = [name for name in self.shown if name not in table.names and self._original(name) not in table.names]
        known = set(self.names) | set(self.shown)
        unexpected = [name for name in table.names if name not in known]
        raise InvalidInput(
            f"model '{model}' has the {self.kind}s {list(self.shown)}; the payload's {self.kind}s "
            f"{list(table.names)} do not fit them (missing: {missing}, unexpected: {unexpected})"
        )

    def _original(self, shown: str) -> str:
        return self.names[self.shown.index(shown)]

    def renamed(self, mapping: Mapping[str, str]) -> Side:
        """This side with `mapping` (original name -> new name) as its names; names it leaves out are shown as they
        are. Unknown names are refused."""
        unknown = [name for name in mapping if name not in self.names]
        if unknown:
            raise InvalidInput(f"{self.kind}Mapping names unknown {self.kind}s {unknown}; they are {list(self.names)}")
        bad = [name for name in mapping.values() if not isinstance(name, str) or not name]
        if bad:
            raise InvalidInput(f"{self.kind}Mapping: every new name must be a non-empty string, got {bad}")
        return replace(self, shown=tuple(mapping.get(name, name) for name in self.names), _orders={}, _widened={})

    def as_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "datatypes": list(self.datatypes), "shown": list(self.shown)}

    @classmethod
    def from_dict(cls, kind: str, doc: Mapping[str, Any]) -> Side:
        return cls(kind, tuple(doc["names"]), tuple(doc["datatypes"]), tuple(doc["shown"]))


@dataclass(frozen=True, slots=True)
class ModelSchema:
    """A model's columns; `key` numbers the model in the store."""

    key: int
    name: str
    inputs: Side
    outputs: Side | None  # None until a payload with outputs came

    @classmethod
    def first(cls, key: int, name: str, inputs: Table, outputs: Table | None) -> ModelSchema:
        """The columns a model's first payload sets."""
        schema = cls(key, name, Side.of(inputs, "input"), Side.of(outputs, "output") if outputs else None)
        schema.check_names()
        return schema

    def fit(self, inputs: Table, outputs: Table | None) -> tuple[ModelSchema, tuple[Any, ...], tuple[Any, ...] | None]:
        """The payload's input and output columns in this model's order, and the model's columns after it (widened,
        or with the outputs it brought first)."""
        input_side, input_columns = self.inputs.fit(inputs, self.name)
        output_side, output_columns = self.outputs, None
        if outputs is not None:
            if output_side is None:
                output_side, output_columns = Side.of(outputs, "output"), outputs.columns
            else:
                output_side, output_columns = output_side.fit(outputs, self.name)
        schema = self
        if input_side is not self.inputs or output_side is not self.outputs:
            schema = replace(self, inputs=input_side, outputs=output_side)
            if output_side is not self.outputs and self.outputs is None:
                schema.check_names()
        return schema, input_columns, output_columns

    def renamed(self, inputs: Mapping[str, str], outputs: Mapping[str, str]) -> ModelSchema:
        """The model with its columns renamed (`POST /info/names`): each mapping, original name -> new name,
        replaces the one before."""
        if outputs and self.outputs is None:
            raise InvalidInput(f"model '{self.name}' has no outputs yet; outputMapping cannot name any")
        schema = replace(
            self,
            inputs=self.inputs.renamed(inputs),
            outputs=self.outputs.renamed(outputs) if self.outputs is not None else None,
        )
        schema.check_names()
        return schema

    def check_names(self) -> None:
        """Refuse column names shown twice (an input and an output, or two renamed alike)."""
        names = self.columns
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise InvalidInput(f"model '{self.name}': column names must be unique, {twice} would name two columns")

    @property
    def columns(self) -> list[str]:
        """Every column's shown name: the inputs, then the outputs."""
        return [*self.inputs.shown, *(self.outputs.shown if self.outputs else ())]

    def as_dict(self) -> dict[str, Any]:
        return {"inputs": self.inputs.as_dict(), "outputs": self.outputs.as_dict() if self.outputs else None}

    @classmethod
    def from_dict(cls, key: int, name: str, doc: Mapping[str, Any]) -> ModelSchema:
        outputs = doc.get("outputs")
        return cls(
            key, name, Side.from_dict("input", doc["inputs"]), Side.from_dict("output", outputs) if outputs else None
        )
