"""How rows of different lengths become batches: the pad id, right padding, length-sorted chunks, and
the seeded epoch order training loops draw their data in.

Every batch in prmlab is right-padded: a row's own tokens sit at positions 0..len-1 (position ids need
no shift) and causal attention never lets them see the padding after them. Padded positions are always
masked out (an attention mask, labels of -100, or positions nobody reads), so the pad id cannot change a
result; `pad_id` is the one rule for which id fills them anyway.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch


def pad_id(tokenizer) -> int:
    """The id padding is filled with: the tokenizer's pad token, else its EOS token, else 0 (any id of
    the vocabulary would do)."""
    for i in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if i is not None:
            return int(i)
    return 0


def right_pad(rows: Sequence[Sequence[int]], pad: int, width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``rows`` as one ``[B, width]`` long tensor, each padded on the right with ``pad``, and its ``[B,
    width]`` long mask (1 on the rows' own entries). ``width`` defaults to the longest row."""
    lens = torch.tensor([len(r) for r in rows], dtype=torch.long)
    if width is None:
        width = int(lens.max()) if len(rows) else 0
    mask = torch.arange(width)[None, :] < lens[:, None]
    out = torch.full((len(rows), width), pad, dtype=torch.long)
    out[mask] = torch.tensor([t for r in rows for t in r], dtype=torch.long)  # row-major: rows in order
    return out, mask.long()


def length_chunks(lengths: Sequence[int], max_rows: int | None = None, max_tokens: int | None = None,
                  longest_first: bool = False) -> list[list[int]]:
    """Positions into ``lengths`` sorted by length (shortest first, or ``longest_first``; ties keep their
    order) and cut into consecutive chunks of at most ``max_rows`` rows and at most ``max_tokens`` padded
    tokens (rows x the chunk's longest row; a row longer than that goes alone). Rows of similar length
    then share a batch, so little of it is padding."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i] if longest_first else lengths[i])
    chunks: list[list[int]] = []
    chunk: list[int] = []
    longest = 1
    for i in order:
        wider = max(longest, int(lengths[i]), 1)
        full = (max_rows is not None and len(chunk) >= max_rows) or (
            max_tokens is not None and (len(chunk) + 1) * wider > max_tokens)
        if chunk and full:
            chunks.append(chunk)
            chunk, wider = [], max(int(lengths[i]), 1)
        chunk.append(i)
        longest = wider
    return chunks + [chunk] if chunk else chunks


def epoch_order(n: int, seed: int) -> Iterator[int]:
    """Indices ``0..n-1`` for ever, epoch after epoch, each epoch a fresh permutation drawn from one
    generator seeded with ``seed``: every item is seen once per epoch, and a seed fixes the whole order."""
    if n < 1:
        raise ValueError(f"an epoch order needs at least one item, got {n}")
    g = torch.Generator().manual_seed(seed)
    while True:
        yield from torch.randperm(n, generator=g).tolist()
