"""Manifest text read within limits: nesting, alias expansion, values, documents; and refusals that list at most
twenty problems."""

from __future__ import annotations

import json
import time
import tracemalloc

import pytest

from wharf.control.spec import SpecError, parse_manifests
from wharf.control.spec.common import MAX_REPORTED
from wharf.control.spec.safe_yaml import MAX_DEPTH, MAX_INT_CHARACTERS, MAX_VALUES

SERVICE = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: iris}
spec:
  predictor:
    model: {modelFormat: {name: sklearn}, storageUri: models/iris.joblib}
"""


def refusal(text: str, max_documents: int = 100) -> str:
    with pytest.raises(SpecError) as refused:
        parse_manifests(text, max_documents)
    return refused.value.message


def nested_block(levels: int) -> str:
    return "".join("  " * level + "a:\n" for level in range(levels)) + "  " * levels + "b: 1\n"


def test_yaml_nested_1000_levels_is_refused_naming_the_depth() -> None:
    assert refusal(nested_block(1000)) == f"collections nested more than {MAX_DEPTH} levels deep"


@pytest.mark.parametrize("levels", [100, 1000, 100_000])
def test_json_nested_deep_is_refused(levels: int) -> None:
    document = '{"kind": "InferenceService", "spec": ' + "[" * levels + "]" * levels + "}"
    assert refusal(document) == f"collections nested more than {MAX_DEPTH} levels deep"


def test_nesting_within_the_limit_reads() -> None:
    with pytest.raises(SpecError, match="kind: required"):  # read, then found not to be a manifest
        parse_manifests(nested_block(MAX_DEPTH - 1))


def billion_laughs(levels: int = 9) -> str:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "text",
    [
        billion_laughs(),
        billion_laughs() + SERVICE.replace("metadata: {name: iris}", "metadata: {name: iris, labels: *l8}"),
        billion_laughs() + SERVICE.replace("iris.joblib}", "iris.joblib, args: *l8}"),
        SERVICE.replace("metadata: {name: iris}", "metadata: {name: iris, labels: {a: &s " + "x" * 20_000 + "}}")
        + "  x: ["
        + ", ".join(["*s"] * 4_500)
        + "]\n",
    ],
    ids=["lists", "lists-in-labels", "lists-in-args", "strings"],
)
def test_an_alias_bomb_is_refused_at_once_and_in_little_memory(text: str) -> None:
    tracemalloc.start()
    started = time.process_time()  # CPU time: a loaded machine must not fail it
    try:
        message = refusal(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "aliases expand the text to more than 10 times what is written in it" in message
    assert time.process_time() - started < 1.0
    assert peak < 5 * 2**20


def test_aliases_within_the_factor_read() -> None:
    text = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: reviews}
spec:
  transformer:
    model:
      modelFormat: {name: custom}
      storageUri: reviews:ReviewTransformer
      env: &env [{name: A, value: "1"}, {name: B, value: "2"}]
  predictor:
    model:
      <<: &model {modelFormat: {name: sklearn}, protocolVersion: v2}
      storageUri: models/reviews.joblib
      env: *env
"""
    (service,) = parse_manifests(text)
    assert [v.name for v in service.spec.predictor.model_spec().env] == ["A", "B"]
    assert service.spec.predictor.model_spec().protocol_version == "v2"


def test_an_alias_inside_what_it_names_is_refused() -> None:
    assert refusal("a: &a [1, *a]\n") == "the alias *a names a collection it is inside of"


def test_more_values_than_a_manifest_needs_are_refused() -> None:
    many = SERVICE.replace("storageUri: models/iris.joblib}", f"args: [{', '.join(['1'] * MAX_VALUES)}]}}")
    started = time.process_time()
    assert refusal(many).startswith(f"more than {MAX_VALUES} values")
    assert time.process_time() - started < 2.0


def test_documents_beyond_the_limit_are_refused_naming_the_setting() -> None:
    with pytest.raises(SpecError) as refused:
        parse_manifests("---\n" * 3, max_documents=2, documents_setting="WHARF_POLICY_MAX_DOCUMENTS")
    assert refused.value.message == (
        "more than 2 documents in one text (WHARF_POLICY_MAX_DOCUMENTS); apply them in parts"
    )
    assert parse_manifests(SERVICE + "---\n" + SERVICE.replace("iris", "iris-2"), max_documents=2)


def test_a_refusal_lists_twenty_problems_and_counts_the_rest() -> None:
    many = SERVICE.replace(
        "storageUri: models/iris.joblib}",
        f"storageUri: models/iris.joblib, args: [{', '.join(['[]'] * 40_000)}]}}",
    )
    started = time.process_time()
    with pytest.raises(SpecError) as refused:
        parse_manifests(many)
    assert time.process_time() - started < 3.0
    error = refused.value
    assert len(error.problems) == MAX_REPORTED and error.omitted == 40_000 - MAX_REPORTED
    lines = error.message.splitlines()
    assert lines[0] == "40000 problems:"
    assert lines[1] == "  spec.predictor.model.args[0]: must be a string"
    assert lines[-1] == f"  ... and {40_000 - MAX_REPORTED} more"
    assert len(error.message) < 2_000


def test_problems_of_several_documents_are_counted_together() -> None:
    unknown = ", ".join(f"k{i}: 1" for i in range(15))
    bad = SERVICE.replace("storageUri: models/iris.joblib}", f"storageUri: models/iris.joblib, {unknown}}}")
    with pytest.raises(SpecError) as refused:
        parse_manifests(bad + "---\n" + bad.replace("name: iris", "name: iris-2"))
    error = refused.value
    assert error.message.startswith("30 problems:") and error.omitted == 10
    assert error.problems[0] == ("document 1 (InferenceService iris): spec.predictor.model.k0", "unknown field")
    assert error.problems[-1][0] == "document 2 (InferenceService iris-2): spec.predictor.model.k4"


@pytest.mark.parametrize(
    "value",
    ["9" * 5_000, "0x" + "f" * 5_000, "0b" + "1" * 20_000, "1" + ":59" * 100_000, "-" + "1" * (MAX_INT_CHARACTERS + 1)],
)
def test_an_integer_too_long_is_refused_where_it_is_written(value: str) -> None:
    """Python refuses to read (or show) an integer of more than 4,300 digits, and YAML 1.1's base-60 integers
    (1:59:59) take time quadratic in their length: a long one is refused before it is built."""
    started = time.process_time()
    message = refusal(SERVICE + f"    minReplicas: {value}\n")
    assert time.process_time() - started < 1.0
    assert message.startswith(f"invalid YAML: {value[:40]}... ({len(value)} characters) cannot be read as an integer")
    assert (
        f"(a manifest's integers have at most {MAX_INT_CHARACTERS} characters); quote it if it is a string" in message
    )
    assert "line 7, column 18" in message
    assert parse_manifests(SERVICE + f"    minReplicas: {'0' * (MAX_INT_CHARACTERS - 1)}1\n")[0]


@pytest.mark.parametrize(("value", "reason"), [("2020-13-45", "month must be in 1..12"), ("0000-01-01", "year 0")])
def test_a_date_that_is_no_date_is_refused(value: str, reason: str) -> None:
    message = refusal(SERVICE.replace("{name: iris}", f"{{name: iris, labels: {{made: {value}}}}}"))
    assert message.startswith(f"invalid YAML: {value} cannot be read as a date ({reason}")
    assert "quote it if it is a string" in message and "line 3" in message


def test_json_reads_as_before() -> None:
    (service,) = parse_manifests(json.dumps(parse_manifests(SERVICE)[0].to_manifest()))
    assert service.name == "iris"
