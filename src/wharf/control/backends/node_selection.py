"""Which nodes a replica may run on, from a component's Kubernetes `nodeSelector` and `tolerations`: plain data that
the Ray backend turns into Ray node labels. (The local backend has one node, this machine, and ignores it; the apply
says so in its warnings.)

A Ray node's labels (`ray start --labels`, `Cluster.add_node(labels=...)`) play both Kubernetes roles:
- a `nodeSelector` entry is a label the node must carry with that value (Ray's `label_selector`);
- a label under `TAINT_PREFIX` (`taint.wharf.io/dedicated=gpu`) is a taint: a replica goes to such a node only if
  one of its tolerations tolerates it: `operator: Exists` with the taint's key (or with no key: every taint), or
  `Equal` (the default) with its key and value. Effects are not told apart: every taint keeps replicas off
  (NoSchedule). A Ray label's name cannot hold a `/`, so a toleration's key is compared by its name after the last
  `/` (`nvidia.com/gpu` tolerates `taint.wharf.io/gpu`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: The label prefix that makes a Ray node's label a taint.
TAINT_PREFIX = "taint.wharf.io/"
_OPERATORS = ("Equal", "Exists")


@dataclass(frozen=True)
class Toleration:
    """A Kubernetes toleration: `key` "" with Exists tolerates every taint."""

    key: str = ""
    operator: str = "Equal"
    value: str = ""

    def tolerates(self, taint: str, value: str) -> bool:
        """Whether it tolerates the taint `taint` (its name, less the prefix) of `value`."""
        if not self.key:
            return self.operator == "Exists"
        if self.key.rsplit("/", 1)[-1] != taint:
            return False
        return self.operator == "Exists" or self.value == value


@dataclass(frozen=True)
class NodeSelection:
    """The labels a replica's node must carry (`node_selector`, sorted pairs) and the taints it tolerates."""

    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[Toleration, ...] = ()

    @classmethod
    def from_kubernetes(
        cls, node_selector: Mapping[str, str] | None, tolerations: Sequence[Mapping[str, Any]] | None
    ) -> NodeSelection:
        """From a component's `nodeSelector` and `tolerations`; a ValueError names the toleration field that is
        wrong."""
        made = []
        for i, toleration in enumerate(tolerations or ()):
            operator = toleration.get("operator") or "Equal"
            if operator not in _OPERATORS:
                raise ValueError(f"tolerations[{i}].operator: must be Equal or Exists, not {operator!r}")
            key, value = str(toleration.get("key") or ""), str(toleration.get("value") or "")
            if operator == "Exists" and value:
                raise ValueError(f"tolerations[{i}].value: must be empty when the operator is Exists")
            if operator == "Equal" and not key:
                raise ValueError(f"tolerations[{i}].key: may be empty only when the operator is Exists")
            made.append(Toleration(key, operator, value))
        selector = tuple(sorted((str(k), str(v)) for k, v in (node_selector or {}).items()))
        return cls(selector, tuple(made))

    def __bool__(self) -> bool:
        return bool(self.node_selector or self.tolerations)

    def admits(self, labels: Mapping[str, str]) -> bool:
        """Whether a node with `labels` may run the replica: it carries every selected label, and each of its
        taints is tolerated."""
        if any(labels.get(key) != value for key, value in self.node_selector):
            return False
        return all(self._tolerated(label, value) for label, value in labels.items() if label.startswith(TAINT_PREFIX))

    def label_selector(self, nodes: Iterable[Mapping[str, str]]) -> dict[str, str]:
        """Ray's `label_selector` for the replica, given the labels of the cluster's `nodes`: the selected labels,
        and for each taint on those nodes that it does not tolerate, that the label has none of those values."""
        refused: dict[str, set[str]] = {}
        for labels in nodes:
            for label, value in labels.items():
                if label.startswith(TAINT_PREFIX) and not self._tolerated(label, value):
                    refused.setdefault(label, set()).add(value)
        selector = dict(self.node_selector)
        for label, values in refused.items():
            selector[label] = f"!{values.pop()}" if len(values) == 1 else f"!in({','.join(sorted(values))})"
        return selector

    def describe(self) -> str:
        """What it asks of a node, for a Pending message: `labels disk=ssd` (empty when it asks nothing)."""
        if not self.node_selector:
            return ""
        return "labels " + ",".join(f"{key}={value}" for key, value in self.node_selector)

    def _tolerated(self, label: str, value: str) -> bool:
        taint = label.removeprefix(TAINT_PREFIX)
        return any(toleration.tolerates(taint, value) for toleration in self.tolerations)
