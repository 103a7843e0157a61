"""Incremental forward passes of a causal LM with a per-row key/value cache.

Sampling step by step, SMC resampling, beam search and incremental PRM scoring all need the same
thing: append a few tokens to some rows of a batch of partial sequences, read the hidden states of the
new positions, and reorder or duplicate rows cheaply. ``CachedDecoder`` does this for Llama-family
decoders (Llama, Qwen2, Qwen3, Mistral: pre-norm blocks with rotary attention). It calls the model's
own modules (norms, projections, MLP, rotary embedding, LM head), so weights, LoRA adapters and RoPE
variants are those of the model; only attention over the cache is done here.

Each row has its own length: row ``b`` keeps its keys in slots ``0..length[b]-1`` of a preallocated
buffer, so rows can be paused, resumed and selected independently, and no padding ever sits inside a
row. Models of other architectures get ``RecomputeDecoder``: same interface, full forward every call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

SUPPORTED_MODEL_TYPES = ("llama", "qwen2", "qwen3", "mistral")
SLOT_HEADROOM = 32  # free slots kept per row when a state is created or rows are selected


@dataclass
class DecoderState:
    """Cached state of a batch of rows. ``keys``/``values``: [layers, rows, kv_heads, slots, head_dim]."""

    keys: torch.Tensor | None
    values: torch.Tensor | None
    length: torch.Tensor  # [rows] tokens held per row
    tokens: torch.Tensor | None = None  # [rows, slots] token ids (RecomputeDecoder only)

    @property
    def batch_size(self) -> int:
        return self.length.shape[0]

    def select(self, index: torch.Tensor | list[int], keep_capacity: bool = False) -> "DecoderState":
        """A new state whose row i is row ``index[i]`` of this one (rows may repeat or be dropped).

        The copy keeps ``SLOT_HEADROOM`` free slots per row beyond the longest selected row (or the
        whole capacity with ``keep_capacity``), so the next tokens need no regrowth (a full copy)."""
        index = torch.as_tensor(index, dtype=torch.long, device=self.length.device)
        used = int(self.length[index].max()) if len(index) else 0
        have = self.keys.shape[3] if self.keys is not None else self.tokens.shape[1]
        slots = have if keep_capacity else min(have, max(used, 1) + SLOT_HEADROOM)
        pick = lambda t: None if t is None else t[:, :, :, :slots].index_select(1, index)  # noqa: E731
        return DecoderState(
            keys=pick(self.keys),
            values=pick(self.values),
            length=self.length[index].clone(),
            tokens=None if self.tokens is None else self.tokens[:, :slots].index_select(0, index),
        )

    def reorder_(self, index) -> None:
        """In place: row i becomes row ``index[i]``. Only rows that change are copied (their sources are
        read before anything is written), so a resampling that keeps most rows costs little."""
        index = torch.as_tensor(index, dtype=torch.long, device=self.length.device)
        rows = (index != torch.arange(len(index), device=index.device)).nonzero()[:, 0]
        if len(rows) == 0:
            return
        src = index[rows]
        for name in ("keys", "values"):
            t = getattr(self, name)
            if t is not None:
                t[:, rows] = t[:, src]
        if self.tokens is not None:
            self.tokens[rows] = self.tokens[src]
        self.length[rows] = self.length[src]

    def put(self, rows: torch.Tensor, other: "DecoderState") -> None:
        """Write the rows of ``other`` into rows ``rows`` of this state (in place)."""
        used = int(other.length.max()) if other.batch_size else 0
        if self.keys is not None:
            self._ensure_slots(used)
            n = max(used, 1)
            self.keys[:, rows, :, :n] = other.keys[:, :, :, :n]
            self.values[:, rows, :, :n] = other.values[:, :, :, :n]
        if self.tokens is not None:
            self._ensure_slots(used)
            self.tokens[rows, : max(used, 1)] = other.tokens[:, : max(used, 1)]
        self.length[rows] = other.length

    def _ensure_slots(self, needed: int) -> None:
        have = self.keys.shape[3] if self.keys is not None else self.tokens.shape[1]
        if needed <= have:
            return
        new = max(needed, 2 * have)
        new = (new + 63) // 64 * 64
        if self.keys is not None:
            grow = lambda t: torch.cat([t, t.new_zeros(*t.shape[:3], new - have, t.shape[4])], dim=3)  # noqa: E731
            self.keys, self.values = grow(self.keys), grow(self.values)
        if self.tokens is not None:
            self.tokens = torch.cat([self.tokens, self.tokens.new_zeros(self.tokens.shape[0], new - have)], dim=1)


def make_decoder(model):
    """The fastest decoder that supports ``model``."""
    from .models import unwrap

    base = unwrap(model)
    if getattr(base.config, "model_type", None) in SUPPORTED_MODEL_TYPES and hasattr(base, "model"):
        return CachedDecoder(model)
    return RecomputeDecoder(model)


class CachedDecoder:
    """KV-cached incremental forward for Llama-family decoders (see module docstring)."""

    def __init__(self, model):
        from .models import unwrap

        self.model = model
        base = unwrap(model)
        self.inner = base.model
        self.lm_head = base.get_output_embeddings()
        cfg = base.config
        self.num_layers = cfg.num_hidden_layers
        self.layers = list(self.inner.layers[: self.num_layers])
        attn = self.layers[0].self_attn
        self.head_dim = attn.head_dim
        self.num_heads = cfg.num_attention_heads
        self.num_kv_heads = cfg.num_key_value_heads
        self.scaling = attn.scaling
        self._fusable = None
        self._fused = None
        self._fused_version = None

    @property
    def device(self):
        return self.lm_head.weight.device

    @property
    def dtype(self):
        return self.lm_head.weight.dtype

    def empty(self, batch_size: int, slots: int = 64) -> DecoderState:
        shape = (self.num_layers, batch_size, self.num_kv_heads, slots, self.head_dim)
        return DecoderState(
            keys=torch.zeros(shape, dtype=self.dtype, device=self.device),
            values=torch.zeros(shape, dtype=self.dtype, device=self.device),
            length=torch.zeros(batch_size, dtype=torch.long, device=self.device),
        )

    @torch.no_grad()
    def forward(self, state: DecoderState, tokens: torch.Tensor, n_valid: torch.Tensor | None = None) -> torch.Tensor:
        """Append ``tokens`` [rows, n] to every row; return final hidden states [rows, n, hidden].

        Only the first ``n_valid[b]`` tokens of row b count (default: all n): the row's length grows by
        that much, and the positions after it are padding whose outputs are meaningless.
        """
        b, n = tokens.shape
        device = self.device
        tokens = tokens.to(device)
        start = state.length
        n_valid = torch.full((b,), n, dtype=torch.long, device=device) if n_valid is None else n_valid.to(device)
        state._ensure_slots(int(start.max()) + n)
        nkv_heads = self.num_kv_heads
        offs = torch.arange(n, device=device)
        positions = start[:, None] + offs[None, :]  # [b, n] position of each new token
        used = int(positions.max()) + 1
        # Query i of row b sees slots 0..start[b]+i: its own past and the new tokens up to itself.
        mask = torch.arange(used, device=device)[None, None, :] <= positions[:, :, None]  # [b, n, used]
        slots = state.keys.shape[3]
        # flat index of (row, kv head, position) in a layer's cache viewed as [rows*heads*slots, dim]
        flat = ((torch.arange(b, device=device)[:, None, None] * nkv_heads + torch.arange(nkv_heads, device=device)[None, :, None])
                * slots + positions[:, None, :]).reshape(-1)

        h = self.inner.embed_tokens(tokens)
        cos, sin = self.inner.rotary_emb(h, positions)
        cos, sin = cos[:, :, None], sin[:, :, None]  # [b, n, 1, head_dim], broadcast over heads
        nh, nkv, hd = self.num_heads, self.num_kv_heads, self.head_dim
        fused = self._fused_weights()
        scale = 1.0 if fused is not None else self.scaling  # the fused weights carry the scale
        if n == 1:  # one additive mask for every layer: 0 where a row may look, -inf elsewhere
            bias = torch.zeros(b, used, dtype=h.dtype, device=device).masked_fill_(~mask[:, 0], float("-inf"))
            bias = bias[:, None, None, :].expand(b, nkv, nh // nkv, used).reshape(b * nkv, nh // nkv, used)
        for li, layer in enumerate(self.layers):
            attn = layer.self_attn
            if fused is not None:
                f = fused[li]
                x = F.rms_norm(h, (h.shape[-1],), f["ln1"], f["eps1"])
                qkv = F.linear(x, f["qkv"], f["qkv_bias"]).view(b, n, nh + 2 * nkv, hd)
                qk = qkv[:, :, : nh + nkv]
                qk = qk * cos + _rotate_half(qk) * sin  # rotary on queries and keys at once
                q, k, v = qk[:, :, :nh], qk[:, :, nh:], qkv[:, :, nh + nkv :]
            else:
                x = layer.input_layernorm(h)
                q = attn.q_proj(x).view(b, n, -1, hd)
                k = attn.k_proj(x).view(b, n, -1, hd)
                v = attn.v_proj(x).view(b, n, -1, hd)
                if hasattr(attn, "q_norm"):  # Qwen3 normalises q and k per head
                    q, k = attn.q_norm(q), attn.k_norm(k)
                q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
            keys, values = state.keys[li], state.values[li]
            # new keys/values go to their rows' slots: row copies into the flat [rows*heads*slots, dim] view
            keys.view(-1, hd).index_copy_(0, flat, k.transpose(1, 2).reshape(-1, hd))
            values.view(-1, hd).index_copy_(0, flat, v.transpose(1, 2).reshape(-1, hd))
            if n == 1:
                # grouped query heads share their key/value head: [b * kv_heads, groups, ...] batches
                kc = keys[:, :, :used].reshape(b * nkv, used, hd)
                vc = values[:, :, :used].reshape(b * nkv, used, hd)
                scores = torch.baddbmm(bias, q.reshape(b * nkv, nh // nkv, hd), kc.transpose(1, 2), alpha=scale)
                out = torch.bmm(torch.softmax(scores, dim=-1), vc).reshape(b, 1, nh * hd)
            else:
                out = F.scaled_dot_product_attention(q.transpose(1, 2), keys[:, :, :used], values[:, :, :used],
                                                     attn_mask=mask[:, None], scale=scale,
                                                     enable_gqa=nh != nkv).transpose(1, 2).reshape(b, n, nh * hd)
            h = h + attn.o_proj(out)
            if fused is not None:
                x = F.rms_norm(h, (h.shape[-1],), f["ln2"], f["eps2"])
                gate, up = F.linear(x, f["gate_up"]).chunk(2, dim=-1)
                h = h + layer.mlp.down_proj(F.silu(gate) * up)
            else:
                h = h + layer.mlp(layer.post_attention_layernorm(h))
        state.length = start + n_valid
        return self.inner.norm(h)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden).float()

    def _fused_weights(self):
        """Concatenated q/k/v and gate/up weights per layer (fewer, larger matmuls), or None when the
        layers are not plain (LoRA adapters, other activations, per-head norms). Rebuilt whenever a
        parameter changed in place, so training the model between calls is safe."""
        if self._fusable is None:
            self._fusable = all(_plain_layer(layer) for layer in self.layers) and getattr(
                self.inner.config, "hidden_act", "silu"
            ) == "silu"
        if not self._fusable:
            return None
        params = [p for layer in self.layers for p in layer.parameters()]
        version = tuple(p._version for p in params) + tuple(p.data_ptr() for p in params)
        if version != self._fused_version:
            self._fused = [_fuse_layer(layer, self.scaling) for layer in self.layers]
            self._fused_version = version
        return self._fused


def _plain_layer(layer) -> bool:
    attn, mlp = layer.self_attn, layer.mlp
    linears = [attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj]
    norms = [layer.input_layernorm, layer.post_attention_layernorm]
    return (
        all(type(m) is torch.nn.Linear for m in linears)
        and all(hasattr(m, "variance_epsilon") and m.weight.dim() == 1 for m in norms)
        and not hasattr(attn, "q_norm")
        and mlp.gate_proj.bias is None
        and mlp.up_proj.bias is None
    )


def _fuse_layer(layer, scale: float) -> dict:
    """Queries (pre-scaled by the attention scale), keys and values from one matmul; gate and up from
    another."""
    attn, mlp = layer.self_attn, layer.mlp
    projs = [attn.q_proj, attn.k_proj, attn.v_proj]
    weights = [p.weight.detach() for p in projs]
    weights[0] = weights[0] * scale
    bias = None
    if any(p.bias is not None for p in projs):
        parts = [p.bias.detach() if p.bias is not None else p.weight.new_zeros(p.out_features) for p in projs]
        parts[0] = parts[0] * scale
        bias = torch.cat(parts)
    return {
        "ln1": layer.input_layernorm.weight.detach(),
        "eps1": layer.input_layernorm.variance_epsilon,
        "ln2": layer.post_attention_layernorm.weight.detach(),
        "eps2": layer.post_attention_layernorm.variance_epsilon,
        "qkv": torch.cat(weights),
        "qkv_bias": bias,
        "gate_up": torch.cat([mlp.gate_proj.weight.detach(), mlp.up_proj.weight.detach()]),
    }


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class RecomputeDecoder:
    """Any causal LM: same interface as ``CachedDecoder``, but every call re-runs the whole prefix."""

    def __init__(self, model):
        from .models import unwrap

        self.model = model
        self.base = unwrap(model)
        self.lm_head = self.base.get_output_embeddings()

    @property
    def device(self):
        return self.lm_head.weight.device

    def empty(self, batch_size: int, slots: int = 64) -> DecoderState:
        return DecoderState(
            keys=None,
            values=None,
            length=torch.zeros(batch_size, dtype=torch.long, device=self.device),
            tokens=torch.zeros(batch_size, slots, dtype=torch.long, device=self.device),
        )

    @torch.no_grad()
    def forward(self, state: DecoderState, tokens: torch.Tensor, n_valid: torch.Tensor | None = None) -> torch.Tensor:
        b, n = tokens.shape
        tokens = tokens.to(self.device)
        start = state.length
        n_valid = torch.full((b,), n, dtype=torch.long, device=self.device) if n_valid is None else n_valid
        state._ensure_slots(int(start.max()) + n)
        positions = start[:, None] + torch.arange(n, device=self.device)[None, :]
        state.tokens[torch.arange(b, device=self.device)[:, None], positions] = tokens
        total = int(positions.max()) + 1
        attention = (torch.arange(total, device=self.device)[None, :] < (start + n)[:, None]).long()
        out = self.base.base_model(input_ids=state.tokens[:, :total], attention_mask=attention)
        hidden = out.last_hidden_state.gather(1, positions[:, :, None].expand(b, n, out.last_hidden_state.shape[-1]))
        state.length = start + n_valid
        return hidden

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden).float()
