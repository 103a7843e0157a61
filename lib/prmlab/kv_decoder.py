"""Incremental forward passes of a causal LM with a per-row key/value cache.

Sampling step by step, SMC resampling, beam search and incremental PRM scoring all need the same
thing: append a few tokens to some rows of a batch of partial sequences, read the hidden states of the
new positions, and reorder or duplicate rows cheaply. ``CachedDecoder`` does this for Llama-family
decoders (Llama, Qwen2, Qwen3, Mistral: pre-norm blocks with rotary attention). Plain layers run on
fused copies of the model's own weights (rebuilt whenever a parameter changes); layers with LoRA
adapters, per-head norms or other rotary layouts call the model's own modules. Embeddings, rotary
angles, the final norm and the LM head always come from the model; attention over the cache is done
here.

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
        n = max(int(self.length[src].max()), 1)  # slots past a row's length hold nothing it needs
        for name in ("keys", "values"):
            t = getattr(self, name)
            if t is not None:
                t[:, rows, :, :n] = t[:, src, :, :n]
        if self.tokens is not None:
            self.tokens[rows, :n] = self.tokens[src, :n]
        self.length[rows] = self.length[src]

    def select_(self, index) -> "DecoderState":
        """The same rows as ``select(index)``, but in this state's own buffers (no allocation, no
        regrowth later): rows are moved in place and the result is a view of the first ``len(index)``
        rows. This state must not be used afterwards."""
        index = torch.as_tensor(index, dtype=torch.long, device=self.length.device)
        k, b = len(index), self.batch_size
        if k > b:  # more rows than the buffers hold: a new state, with this one's whole capacity
            return self.select(index, keep_capacity=True)
        self.reorder_(torch.cat([index, torch.arange(k, b, device=index.device)]))
        return self if k == b else self.rows_view(k)

    def rows_view(self, n: int) -> "DecoderState":
        """The first ``n`` rows, sharing this state's buffers (writes to the view's cache land here;
        its ``length`` is its own). Used to stop computing rows moved to the end."""
        cut = lambda t: None if t is None else t[:, :n]  # noqa: E731
        return DecoderState(keys=cut(self.keys), values=cut(self.values), length=self.length[:n].clone(),
                            tokens=None if self.tokens is None else self.tokens[:n])

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
        self._spare = None  # cache buffers of a finished state, see recycle

    @property
    def device(self):
        return self.lm_head.weight.device

    @property
    def dtype(self):
        return self.lm_head.weight.dtype

    def empty(self, batch_size: int, slots: int = 64) -> DecoderState:
        shape = (self.num_layers, batch_size, self.num_kv_heads, slots, self.head_dim)
        spare = self._spare
        if spare is not None and spare[0].shape[:3] == shape[:3] and slots <= spare[0].shape[3] <= slots + 64:
            self._spare = None
            keys, values = spare[0].zero_(), spare[1].zero_()  # as good as new, without page faults
        else:
            keys = torch.zeros(shape, dtype=self.dtype, device=self.device)
            values = torch.zeros(shape, dtype=self.dtype, device=self.device)
        return DecoderState(keys=keys, values=values, length=torch.zeros(batch_size, dtype=torch.long, device=self.device))

    def recycle(self, state: DecoderState) -> None:
        """Keep the cache buffers of a state that is no longer needed for the next ``empty`` of the same
        size. On CPU a fresh multi-megabyte buffer is page-faulted in at first touch (for a batch of 256
        that costs about as much as the prompts' forward pass); zeroing a recycled one is ten times
        cheaper. ``state`` must not be used afterwards."""
        if state.keys is not None and state.keys.device.type == "cpu":
            self._spare = (state.keys, state.values)
        state.keys = state.values = None

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
        nh, nkv, hd = self.num_heads, self.num_kv_heads, self.head_dim
        positions = start[:, None] + torch.arange(n, device=device)[None, :]  # [b, n] position of each new token
        used = int(positions.max()) + 1
        # Query i of row b sees slots 0..start[b]+i: its own past and the new tokens up to itself.
        mask = torch.arange(used, device=device)[None, None, :] <= positions[:, :, None]  # [b, n, used]
        slots = state.keys.shape[3]
        # where each new (row, position, kv head) goes in a layer's cache viewed as [rows*heads*slots, dim]
        where = (torch.arange(b, device=device)[:, None, None] * nkv + torch.arange(nkv, device=device)[None, None, :]) * slots
        where = where + positions[:, :, None]  # [b, n, kv heads]
        if n == 1:  # one additive mask for every layer: 0 where a row may look, -inf elsewhere
            bias = torch.zeros(b, used, dtype=self.dtype, device=device).masked_fill_(~mask[:, 0], float("-inf"))
            bias = bias[:, None, None, :].expand(b, nkv, nh // nkv, used).reshape(b * nkv, nh // nkv, used)

        def attend(li, q, k, v, scale):
            """q [b, n, nh, hd], k/v [b, n, nkv, hd] -> attention output [b*n, nh*hd]; caches k and v."""
            keys, values = state.keys[li], state.values[li]
            keys.view(-1, hd).index_put_((where,), k)
            values.view(-1, hd).index_put_((where,), v)
            if n == 1:
                # grouped query heads share their key/value head: [b * kv_heads, groups, ...] batches
                kc = keys[:, :, :used].reshape(b * nkv, used, hd)
                vc = values[:, :, :used].reshape(b * nkv, used, hd)
                scores = torch.baddbmm(bias, q.reshape(b * nkv, nh // nkv, hd), kc.transpose(1, 2), alpha=scale)
                return torch.bmm(torch.softmax(scores, dim=-1), vc).view(b, nh * hd)
            out = F.scaled_dot_product_attention(q.transpose(1, 2), keys[:, :, :used], values[:, :, :used],
                                                 attn_mask=mask[:, None], scale=scale, enable_gqa=nh != nkv)
            return out.transpose(1, 2).reshape(b * n, nh * hd)

        fused = self._fused_weights()
        h = self.inner.embed_tokens(tokens).view(b * n, -1)
        cos, sin = self.inner.rotary_emb(h, positions)  # [b, n, head_dim]
        if fused is not None:
            h = self._fused_layers(fused, h, cos, sin, attend)
        else:
            h = self._module_layers(h, cos, sin, attend, b, n)
        state.length = start + n_valid
        return self.inner.norm(h).view(b, n, -1)

    def _fused_layers(self, fused, h, cos, sin, attend):
        """The decoder stack with fused weights: norms folded into the next matmul, rotary embedding as a
        complex product on interleaved head dimensions, residual adds inside addmm."""
        b, n = cos.shape[:2]
        nh, nkv, hd = self.num_heads, self.num_kv_heads, self.head_dim
        half = hd // 2
        rot = torch.complex(cos[..., :half].float(), sin[..., :half].float()).view(b * n, 1, half)
        for f in fused:
            qkv = F.linear(h * _rms_scale(h, f["eps1"]), f["qkv"], f["qkv_bias"])
            qk = torch.view_as_complex(qkv[:, : (nh + nkv) * hd].float().view(b * n, nh + nkv, half, 2))
            qk = torch.view_as_real(qk * rot).view(b, n, nh + nkv, hd).to(h.dtype)
            v = qkv[:, (nh + nkv) * hd :].view(b, n, nkv, hd)
            out = attend(f["index"], qk[:, :, :nh], qk[:, :, nh:], v, 1.0)  # the q weights carry the scale
            h = torch.addmm(h, out, f["o_t"])
            if f["o_bias"] is not None:
                h = h + f["o_bias"]
            gate, up = F.linear(h * _rms_scale(h, f["eps2"]), f["gate_up"]).chunk(2, dim=-1)
            h = torch.addmm(h, F.silu(gate) * up, f["down_t"])
        return h

    def _module_layers(self, h, cos, sin, attend, b, n):
        """The decoder stack through the model's own modules (LoRA adapters, per-head norms, ...)."""
        hd = self.head_dim
        cos, sin = cos[:, :, None], sin[:, :, None]  # broadcast over heads
        h = h.view(b, n, -1)
        for li, layer in enumerate(self.layers):
            attn = layer.self_attn
            x = layer.input_layernorm(h)
            q = attn.q_proj(x).view(b, n, -1, hd)
            k = attn.k_proj(x).view(b, n, -1, hd)
            v = attn.v_proj(x).view(b, n, -1, hd)
            if hasattr(attn, "q_norm"):  # Qwen3 normalises q and k per head
                q, k = attn.q_norm(q), attn.k_norm(k)
            q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
            out = attend(li, q, k, v, self.scaling)
            h = h + attn.o_proj(out.view(b, n, -1))
            h = h + layer.mlp(layer.post_attention_layernorm(h))
        return h.view(b * n, -1)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden).float()

    def _fused_weights(self):
        """Fused per-layer weights (fewer, larger matmuls and elementwise ops), or None when the layers
        are not plain (LoRA adapters, other activations, per-head norms, other rotary layouts). Rebuilt
        whenever a parameter changed in place, so training the model between calls is safe."""
        if self._fusable is None:
            self._fusable = (
                all(_plain_layer(layer) for layer in self.layers)
                and getattr(self.inner.config, "hidden_act", "silu") == "silu"
                and self.head_dim % 2 == 0
                and _rotary_halves_repeat(self.inner.rotary_emb, self.lm_head.weight)
            )
        if not self._fusable:
            return None
        params = [p for layer in self.layers for p in layer.parameters()]
        version = tuple(p._version for p in params) + tuple(p.data_ptr() for p in params)
        if version != self._fused_version:
            self._fused = [_fuse_layer(li, layer, self.scaling, self.num_heads, self.num_kv_heads, self.head_dim)
                           for li, layer in enumerate(self.layers)]
            self._fused_version = version
        return self._fused


def _rms_scale(h: torch.Tensor, eps: float) -> torch.Tensor:
    """1 / RMS(h) per row (RMSNorm without its weight, which the fused matmul carries)."""
    norm = torch.linalg.vector_norm(h, dim=-1, keepdim=True, dtype=torch.float32)
    return norm.square_().mul_(1.0 / h.shape[-1]).add_(eps).rsqrt_().to(h.dtype)


def _rotary_halves_repeat(rotary_emb, like: torch.Tensor) -> bool:
    """True when the rotary cos/sin repeat their first half (HF's rotate-half layout), the layout the
    complex-product rotary of the fused path reproduces."""
    x = like.new_zeros(1, 1, like.shape[-1])
    cos, sin = rotary_emb(x, torch.arange(0, 200, 7, device=like.device)[None])
    half = cos.shape[-1] // 2
    return bool(torch.equal(cos[..., :half], cos[..., half:]) and torch.equal(sin[..., :half], sin[..., half:]))


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
        and mlp.down_proj.bias is None
    )


def _fuse_layer(index: int, layer, scale: float, nh: int, nkv: int, hd: int) -> dict:
    """One layer's weights rearranged for ``CachedDecoder._fused_layers``:

    - queries (pre-scaled by the attention scale), keys and values from one matmul, gate and up from
      another, each with the preceding RMSNorm weight folded into its input columns;
    - the two halves of every query and key head interleaved (x0, x_h, x1, x_h+1, ...), so that
      rotate-half rotary embedding becomes a product with complex numbers. Attention scores are dot
      products of a query and a key permuted alike, so they are unchanged (cached keys are stored in
      this order).
    """
    attn, mlp = layer.self_attn, layer.mlp
    perm = torch.arange(hd).view(2, hd // 2).t().reshape(-1)

    def heads(t, n, s=1.0):  # permute each head's rows of a weight [n*hd, in] or bias [n*hd]
        return (t.detach().view(n, hd, *t.shape[1:])[:, perm] * s).reshape(n * hd, *t.shape[1:])

    ln1 = layer.input_layernorm.weight.detach()
    ln2 = layer.post_attention_layernorm.weight.detach()
    qkv = torch.cat([heads(attn.q_proj.weight, nh, scale), heads(attn.k_proj.weight, nkv), attn.v_proj.weight.detach()])
    bias = None
    if any(p.bias is not None for p in (attn.q_proj, attn.k_proj, attn.v_proj)):
        qb, kb, vb = (p.bias if p.bias is not None else p.weight.new_zeros(p.out_features)
                      for p in (attn.q_proj, attn.k_proj, attn.v_proj))
        bias = torch.cat([heads(qb, nh, scale), heads(kb, nkv), vb.detach()])
    return {
        "index": index,
        "eps1": layer.input_layernorm.variance_epsilon,
        "eps2": layer.post_attention_layernorm.variance_epsilon,
        "qkv": qkv * ln1,
        "qkv_bias": bias,
        "o_t": attn.o_proj.weight.detach().t(),
        "o_bias": None if attn.o_proj.bias is None else attn.o_proj.bias.detach(),
        "gate_up": torch.cat([mlp.gate_proj.weight.detach(), mlp.up_proj.weight.detach()]) * ln2,
        "down_t": mlp.down_proj.weight.detach().t(),
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

    def recycle(self, state: DecoderState) -> None:
        """Nothing to keep: the recompute decoder holds token ids only."""

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
