"""The order in which one rater sees the images: random, seeded from the rater's token.

Every rater sees every image once. The order is in rounds: each round shows each frame
once, in one of its conditions (each frame's conditions shuffled for the rater, so every
condition is as likely in every round), the frames of a round shuffled. The versions of
one frame are so spread over the whole session, never back to back, and a rater never
compares two versions of a frame side by side in memory. The order depends only on the
token and the survey's images, so it is the same after a restart of the server.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable

import numpy as np


def token_seed(token: str) -> int:
    """A 64-bit seed from the token (the same on every machine and Python run)."""
    return int.from_bytes(hashlib.sha256(token.encode("utf-8")).digest()[:8], "little")


def rater_order(token: str, images: Iterable[tuple[str, int]]) -> list[str]:
    """image ids in the order the rater sees them. `images`: (image_id, frame_key) pairs."""
    rng = np.random.default_rng(token_seed(token))
    by_frame: dict[int, list[str]] = defaultdict(list)
    for image_id, frame in sorted(images):
        by_frame[frame].append(image_id)
    frames = sorted(by_frame)
    versions = {f: [by_frame[f][i] for i in rng.permutation(len(by_frame[f]))] for f in frames}
    frame_of = {image_id: f for f in frames for image_id in by_frame[f]}
    order: list[str] = []
    for r in range(max((len(v) for v in versions.values()), default=0)):
        batch = [versions[f][r] for f in frames if r < len(versions[f])]
        batch = [batch[i] for i in rng.permutation(len(batch))]
        if order and len(batch) > 1 and frame_of[batch[0]] == frame_of[order[-1]]:
            batch[0], batch[-1] = batch[-1], batch[0]  # no frame twice in a row across rounds
        order += batch
    return order
