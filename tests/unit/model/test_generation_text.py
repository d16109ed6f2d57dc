"""Generated text in deltas: stop sequences cut (never sent, even split across tokens), held-back text flushed,
and sampling: greedy rows take the argmax, seeded rows repeat, top_p keeps the most likely tokens."""

from __future__ import annotations

import torch

from wharf.model.generation.params import SamplingParams
from wharf.model.generation.sampling import generator_of, next_tokens
from wharf.model.generation.stops import TextStream


class Pieces:
    """A tokenizer whose token i is the text `pieces[i]`."""

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(self.pieces[i] for i in ids)


def _run(pieces: list[str], stop: tuple[str, ...]) -> tuple[list[str], bool]:
    stream = TextStream(Pieces(pieces), stop)
    deltas = []
    for i in range(len(pieces)):
        deltas.append(stream.add(i))
        if stream.stopped:
            break
    deltas.append(stream.rest())
    return [d for d in deltas if d], stream.stopped


def test_without_stops_every_token_is_sent_at_once() -> None:
    assert _run(["Par", "is", "."], ()) == (["Par", "is", "."], False)


def test_a_stop_sequence_split_across_tokens_is_cut_and_never_sent() -> None:
    deltas, stopped = _run(["The", " end", "\n\n", "more"], ("end\n",))
    assert stopped and "".join(deltas) == "The "


def test_text_that_might_start_a_stop_is_held_back_then_released() -> None:
    deltas, stopped = _run(["a", "b", "c"], ("bd",))
    assert not stopped and "".join(deltas) == "abc"


def test_a_partial_character_waits_for_its_next_token() -> None:
    stream = TextStream(Pieces(["caf", "\ufffd", "é"]), ())
    assert stream.add(0) == "caf" and stream.add(1) == ""


def test_greedy_rows_take_the_argmax_and_seeded_rows_repeat() -> None:
    logits = torch.tensor([[0.0, 3.0, 1.0], [1.0, 1.0, 1.0]])
    greedy, sampled = SamplingParams(4, temperature=0), SamplingParams(4, temperature=1.0, seed=11)
    first = next_tokens(logits, [greedy, sampled], [None, generator_of(sampled)])
    again = next_tokens(logits, [greedy, sampled], [None, generator_of(sampled)])
    assert first[0] == 1 and first == again
    assert generator_of(greedy) is None


def test_top_p_keeps_only_the_most_likely_tokens() -> None:
    logits = torch.tensor([[5.0, 4.9, -10.0, -10.0]])
    params = SamplingParams(4, temperature=1.0, top_p=0.5, seed=0)
    generator = generator_of(params)
    assert {next_tokens(logits, [params], [generator])[0] for _ in range(50)} == {0}
