"""OpenAI's paths route like any other: by Host (tag hosts too) or `/serving/{namespace}/{name}` prefix, the path
forwarded as the replica serves it, the revision drawn by the traffic split (the `model` field of the body plays
no part)."""

from __future__ import annotations

import random
from collections import Counter

from wharf.gateway.router import Router

from .tables import service, table

CHAT = "/openai/v1/chat/completions"


def test_openai_paths_route_by_host_tag_host_and_serving_prefix() -> None:
    router = Router(table(service("smol", traffic=(("smol-1", 100),), tags={"prev": "smol-0"})), random.Random(0))
    by_host = router.route("smol.default.example.com", CHAT)
    by_prefix = router.route("127.0.0.1:8080", f"/serving/default/smol{CHAT}")
    tagged = router.route("prev-smol.default.example.com", "/openai/v1/models")
    assert (by_host.service.key, by_host.path, by_host.tag_revision) == ("default/smol", CHAT, None)
    assert (by_prefix.service.key, by_prefix.path) == ("default/smol", CHAT)
    assert (tagged.path, tagged.tag_revision) == ("/openai/v1/models", "smol-0")


def test_a_canary_splits_openai_requests_between_two_revisions() -> None:
    router = Router(table(service("smol", traffic=(("smol-1", 50), ("smol-2", 50)))), random.Random(1))
    route = router.route("smol.default.example.com", CHAT)
    drawn = Counter(router.revision(route.service).name for _ in range(1000))
    assert set(drawn) == {"smol-1", "smol-2"} and 400 < drawn["smol-1"] < 600
