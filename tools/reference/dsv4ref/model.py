"""Tiny DeepSeek V4 models on HF transformers' `DeepseekV4ForCausalLM`, with instrumentation.

Owns: the tiny configurations, the deterministic name-seeded initialisation, the hooks that record
indexer top-k sets, router choices, top-k margins, SwiGLU clamp counts and hyper-connection
states, and the HF cached / chunked variants. All compute is fp32, eager attention, CPU.
"""

import hashlib
import math

import numpy as np
import torch
import torch.nn.functional as F
from transformers import DeepseekV4Config, DeepseekV4ForCausalLM
from transformers.models.deepseek_v4 import modeling_deepseek_v4 as mdl

SWA, CSA, HCA = "sliding_attention", "compressed_sparse_attention", "heavily_compressed_attention"
RATIO = {SWA: 0, CSA: 4, HCA: 128}

# Real V4-Flash values kept in every tiny model (model-spec.md §1.1, §10.2).
YARN = {"rope_type": "yarn", "factor": 16.0, "original_max_position_embeddings": 65536,
        "beta_fast": 32.0, "beta_slow": 1.0}


def make_config(spec: dict) -> DeepseekV4Config:
    """spec: the geometry fields of one tiny model (see make.py MODELS)."""
    cfg = DeepseekV4Config(
        vocab_size=spec["vocab_size"],
        hidden_size=spec["hidden_size"],
        moe_intermediate_size=spec["moe_intermediate_size"],
        num_hidden_layers=len(spec["layer_types"]),
        num_attention_heads=spec["num_attention_heads"],
        num_key_value_heads=1,
        head_dim=spec["head_dim"],
        partial_rotary_factor=spec["rope_dim"] / spec["head_dim"],
        q_lora_rank=spec["q_lora_rank"],
        num_experts_per_tok=spec["num_experts_per_tok"],
        n_routed_experts=spec["n_routed_experts"],
        n_shared_experts=1,
        scoring_func="sqrtsoftplus",
        norm_topk_prob=True,
        routed_scaling_factor=1.5,
        max_position_embeddings=1048576,
        rope_theta=10000.0,
        compress_rope_theta=160000.0,
        rope_parameters=dict(YARN),
        layer_types=list(spec["layer_types"]),
        compress_rates={CSA: 4, HCA: 128},
        mlp_layer_types=list(spec["mlp_layer_types"]),
        hc_mult=4,
        hc_sinkhorn_iters=20,
        hc_eps=1e-6,
        swiglu_limit=10.0,
        sliding_window=spec["sliding_window"],
        o_groups=spec["o_groups"],
        o_lora_rank=spec["o_lora_rank"],
        index_n_heads=spec["index_n_heads"],
        index_head_dim=spec["index_head_dim"],
        index_topk=spec["index_topk"],
        num_nextn_predict_layers=0,
        rms_norm_eps=1e-6,
        bos_token_id=0,
        eos_token_id=1,
        tie_word_embeddings=False,
    )
    cfg._attn_implementation = "eager"
    if hasattr(cfg, "_experts_implementation"):
        cfg._experts_implementation = "eager"
    return cfg


def build_model(cfg: DeepseekV4Config) -> DeepseekV4ForCausalLM:
    torch.manual_seed(0)  # HF init values are all overwritten by init_weights below
    model = DeepseekV4ForCausalLM(cfg).to(torch.float32).eval()
    return model


def _rng(seed: int, name: str) -> np.random.Generator:
    h = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return np.random.default_rng(int.from_bytes(h[:8], "little"))


def bf16_round(a: np.ndarray) -> np.ndarray:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(torch.bfloat16).float().numpy()


def init_values(name: str, shape: tuple, cfg: DeepseekV4Config, seed: int) -> np.ndarray:
    """Deterministic, name-seeded, non-zero value for one HF state-dict entry (bf16-representable).

    Scales are chosen so activations stay O(1) except the routed and shared expert gate/up
    projections, which are wide enough that some pre-activations pass the ±10 SwiGLU clamp.
    """
    r = _rng(seed, name)
    if name.endswith("tid2eid"):
        v, k = shape
        return np.stack([r.permutation(cfg.n_routed_experts)[:k] for _ in range(v)]).astype(np.int64)
    fan_in = shape[-1] if len(shape) >= 2 else 1
    if name.endswith(("norm.weight", "layernorm.weight")):
        a = r.uniform(0.6, 1.4, shape)
    elif name.endswith("sinks"):
        a = r.normal(0.0, 1.0, shape)
    elif name.endswith(("hc.fn", "hc_fn")):
        a = r.normal(0.0, 1.0 / math.sqrt(fan_in), shape)
    elif name.endswith(("hc.base", "hc_base")):
        a = r.normal(0.0, 0.5, shape)
    elif name.endswith(("hc.scale", "hc_scale")):
        a = r.uniform(0.5, 1.5, shape)
    elif name.endswith("position_bias"):
        a = r.normal(0.0, 0.7, shape)
    elif name.endswith("e_score_correction_bias"):
        a = r.normal(0.0, 0.5, shape)
    elif name.endswith("mlp.gate.weight"):
        # wide router logits: sqrt(softplus) scores spread over ~0..4, so learned top-k choices
        # are separated by clear margins (model-spec.md §10.3)
        a = r.normal(0.0, 6.0 / math.sqrt(fan_in), shape)
    elif name.endswith("scorer.weights_proj.weight"):
        a = r.normal(0.0, 5.0 / math.sqrt(fan_in), shape)
    elif name.endswith("indexer.q_b_proj.weight"):
        a = r.normal(0.0, 2.0 / math.sqrt(fan_in), shape)
    elif name.endswith("embed_tokens.weight"):
        a = r.normal(0.0, 1.0, shape)
    elif name.endswith("experts.gate_up_proj") or name.endswith(("shared_experts.gate_proj.weight",
                                                                    "shared_experts.up_proj.weight")):
        a = r.normal(0.0, 3.2 / math.sqrt(fan_in), shape)
    elif name.endswith("experts.down_proj") or name.endswith("shared_experts.down_proj.weight"):
        a = r.normal(0.0, 0.35 / math.sqrt(fan_in), shape)
    elif len(shape) >= 2:
        a = r.normal(0.0, 1.0 / math.sqrt(fan_in), shape)
    else:
        raise ValueError(f"no initialiser for {name} {shape}")
    return bf16_round(a)


def init_weights(model: DeepseekV4ForCausalLM, seed: int) -> dict:
    """Fill every parameter and persistent buffer; returns the HF state dict as numpy."""
    sd = model.state_dict()
    out = {}
    for name, t in sd.items():
        v = init_values(name, tuple(t.shape), model.config, seed)
        out[name] = v
    load_numpy_state(model, out)
    return out


def load_numpy_state(model: DeepseekV4ForCausalLM, state: dict) -> None:
    sd = model.state_dict()
    missing = set(sd) - set(state)
    extra = set(state) - set(sd)
    if missing or extra:
        raise ValueError(f"state mismatch: missing {sorted(missing)[:5]}, extra {sorted(extra)[:5]}")
    with torch.no_grad():
        for name, t in sd.items():
            src = torch.from_numpy(np.ascontiguousarray(state[name]))
            if tuple(src.shape) != tuple(t.shape):
                raise ValueError(f"{name}: shape {tuple(src.shape)} != {tuple(t.shape)}")
            t.copy_(src.to(t.dtype))


# --------------------------------------------------------------------------------------------
# Instrumentation


class Recorder:
    """Hooks that record, for one full forward: indexer top-k + margins, router top-k + margins,
    SwiGLU clamp counts, the HC state entering layer 0, after each attention sub-block and after
    each block."""

    def __init__(self, model: DeepseekV4ForCausalLM):
        self.model = model
        self.handles = []
        self.reset()
        layers = model.model.layers
        for i, layer in enumerate(layers):
            self.handles.append(layer.register_forward_pre_hook(self._layer_in(i), with_kwargs=True))
            self.handles.append(layer.register_forward_hook(self._layer_out(i)))
            self.handles.append(layer.ffn_hc.register_forward_pre_hook(self._mid(i)))
            comp = layer.self_attn.compressor
            if isinstance(comp, mdl.DeepseekV4CSACompressor):
                self.handles.append(comp.indexer.register_forward_hook(self._indexer(i)))
                self.handles.append(comp.indexer.scorer.register_forward_hook(self._scores(i)))
            gate = layer.mlp.gate
            if isinstance(gate, mdl.DeepseekV4TopKRouter):
                self.handles.append(gate.register_forward_hook(self._router(i)))
            elif isinstance(gate, mdl.DeepseekV4HashRouter):
                self.handles.append(gate.register_forward_hook(self._router(i)))
            self.handles.append(layer.mlp.experts.register_forward_pre_hook(self._experts_in(i)))
            self.handles.append(layer.mlp.shared_experts.register_forward_pre_hook(self._shared_in(i)))

    def reset(self):
        self.hc_in = None
        self.hc_mid = {}
        self.hc_out = {}
        self.index_topk = {}
        self.index_scores = {}
        self.router = {}
        self.clamp = {}

    def close(self):
        for h in self.handles:
            h.remove()

    def _layer_in(self, i):
        def hook(mod, args, kwargs):
            if i == 0:
                x = args[0] if args else kwargs["hidden_states"]
                self.hc_in = x[0].detach().clone()
        return hook

    def _layer_out(self, i):
        def hook(mod, args, out):
            self.hc_out[i] = out[0].detach().clone()
        return hook

    def _mid(self, i):
        def hook(mod, args):
            self.hc_mid[i] = args[0][0].detach().clone()
        return hook

    def _indexer(self, i):
        def hook(mod, args, out):
            self.index_topk[i] = out[0].detach().clone()  # [S, k'] with -1 sentinels
        return hook

    def _scores(self, i):
        def hook(mod, args, out):
            self.index_scores[i] = out[0].detach().clone()  # [S, T] before the causal mask
        return hook

    def _router(self, i):
        def hook(mod, args, out):
            logits, weights, indices = out
            scores = mod.score_fn(logits)
            sel = scores + mod.e_score_correction_bias if hasattr(mod, "e_score_correction_bias") else None
            self.router[i] = {"indices": indices.detach().clone(), "weights": weights.detach().clone(),
                              "select_scores": None if sel is None else sel.detach().clone()}
        return hook

    def _experts_in(self, i):
        def hook(mod, args):
            x, idx, _w = args
            gate_up = torch.einsum("td,eod->teo", x, mod.gate_up_proj)  # [T, E, 2I]
            rows = gate_up[torch.arange(x.shape[0])[:, None], idx]     # [T, k, 2I]
            g, u = rows.chunk(2, dim=-1)
            c = self.clamp.setdefault(i, {})
            c["routed_gate_above"] = int((g > mod.limit).sum())
            c["routed_up_above"] = int((u > mod.limit).sum())
            c["routed_up_below"] = int((u < -mod.limit).sum())
            c["routed_values"] = int(g.numel())
        return hook

    def _shared_in(self, i):
        def hook(mod, args):
            x = args[0]
            g = mod.gate_proj(x)
            u = mod.up_proj(x)
            c = self.clamp.setdefault(i, {})
            c["shared_gate_above"] = int((g > mod.limit).sum())
            c["shared_up_above"] = int((u > mod.limit).sum())
            c["shared_up_below"] = int((u < -mod.limit).sum())
            c["shared_values"] = int(g.numel())
        return hook


def indexer_sets(rec: Recorder, cfg, seq_len: int):
    """{layer: int32 [S, index_topk]}: selected compressed-row indices, ascending, -1 padded;
    plus {layer: min margin} over queries whose candidate count exceeds top-k."""
    sets, margins = {}, {}
    k = cfg.index_topk
    for layer, sel in rec.index_topk.items():
        out = np.full((seq_len, k), -1, dtype=np.int32)
        s = sel.numpy()
        for t in range(seq_len):
            v = np.sort(s[t][s[t] >= 0]) if s.shape[1] else np.zeros(0, dtype=np.int64)
            out[t, : len(v)] = v
        sets[layer] = out
        scores = rec.index_scores[layer].numpy()
        worst = math.inf
        for t in range(seq_len):
            n = (t + 1) // 4
            n = min(n, scores.shape[1])
            if n > k:
                srt = np.sort(scores[t, :n])[::-1]
                worst = min(worst, float(srt[k - 1] - srt[k]))
                expect = np.sort(np.argsort(-scores[t, :n], kind="stable")[:k])
                if not np.array_equal(expect, out[t]):
                    raise AssertionError(f"layer {layer} t={t}: recorded top-k differs from scores")
            else:
                if not np.array_equal(out[t, :n], np.arange(n)) or (out[t, n:] != -1).any():
                    raise AssertionError(f"layer {layer} t={t}: expected all {n} rows selected")
        margins[layer] = worst
    return sets, margins


def router_sets(rec: Recorder, cfg):
    """{layer: (int32 [S, k] ascending expert ids, float32 [S, k] weights in the same order)},
    plus {layer: min top-k margin} for learned-routing layers (hash layers have none)."""
    sets, margins = {}, {}
    k = cfg.num_experts_per_tok
    for layer, r in rec.router.items():
        idx = r["indices"].numpy()
        w = r["weights"].numpy()
        order = np.argsort(idx, axis=1, kind="stable")
        sets[layer] = (np.take_along_axis(idx, order, 1).astype(np.int32),
                       np.take_along_axis(w, order, 1).astype(np.float32))
        if r["select_scores"] is not None:
            s = np.sort(r["select_scores"].numpy(), axis=1)[:, ::-1]
            margins[layer] = float((s[:, k - 1] - s[:, k]).min())
    return sets, margins


# --------------------------------------------------------------------------------------------
# Forward variants


@torch.no_grad()
def full_forward(model, tokens: np.ndarray):
    ids = torch.from_numpy(tokens.astype(np.int64))[None]
    return model(input_ids=ids, use_cache=False).logits[0].float().numpy()


@torch.no_grad()
def chunked_forward(model, tokens: np.ndarray, chunks: list):
    """Prefill in consecutive chunks of the given sizes (the last one repeats until the end),
    carrying HF's DynamicCache. Returns logits for every position."""
    ids = torch.from_numpy(tokens.astype(np.int64))[None]
    cache = None
    out = []
    pos, ci = 0, 0
    while pos < ids.shape[1]:
        n = chunks[min(ci, len(chunks) - 1)]
        r = model(input_ids=ids[:, pos:pos + n], past_key_values=cache, use_cache=True)
        cache = r.past_key_values
        out.append(r.logits[0].float().numpy())
        pos += n
        ci += 1
    return np.concatenate(out, 0)


def decode_forward(model, tokens: np.ndarray, split: int):
    """Prefill `split` tokens at once, then one token at a time to the end."""
    return chunked_forward(model, tokens, [split, 1])


# --------------------------------------------------------------------------------------------
# QAT simulation (model-spec.md §2.4, §3.4, §3.5, §5.2-§5.4)


def _pow2_scale(amax: torch.Tensor, qmax: float) -> torch.Tensor:
    """s = 2^ceil(log2(amax / qmax)), exact (frexp), as the official UE8M0 scale."""
    x = amax / qmax
    m, e = torch.frexp(x)
    e = torch.where(m == 0.5, e - 1, e)
    return torch.ldexp(torch.ones_like(x), e)


def fp8_e4m3_roundtrip(x: torch.Tensor, block: int = 64) -> torch.Tensor:
    """Per-`block` E4M3 round trip along the last dim (amax floored at 1e-4, Qmax 448, RNE)."""
    shp = x.shape
    xb = x.float().reshape(*shp[:-1], shp[-1] // block, block)
    amax = xb.abs().amax(-1, keepdim=True).clamp_min(1e-4)
    s = _pow2_scale(amax, 448.0)
    q = (xb / s).clamp(-448.0, 448.0).to(torch.float8_e4m3fn).float()
    return (q * s).reshape(shp).to(x.dtype)


_E2M1 = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])


def fp4_e2m1_roundtrip(x: torch.Tensor, block: int = 32) -> torch.Tensor:
    """Per-`block` E2M1 round trip (amax floored at 6*2^-126, Qmax 6, nearest, ties to even code)."""
    shp = x.shape
    xb = x.float().reshape(*shp[:-1], shp[-1] // block, block)
    amax = xb.abs().amax(-1, keepdim=True).clamp_min(6.0 * 2.0 ** -126)
    s = _pow2_scale(amax, 6.0)
    y = (xb / s).clamp(-6.0, 6.0)
    a = y.abs().unsqueeze(-1)
    d = (a - _E2M1).abs()
    best = d.min(-1, keepdim=True).values
    cand = d == best
    # ties: prefer the even code (lowest even index among the tied candidates)
    even = torch.arange(8) % 2 == 0
    pick_even = (cand & even).any(-1, keepdim=True)
    mask = torch.where(pick_even, cand & even, cand)
    code = torch.argmax(mask.to(torch.int8), dim=-1)
    q = _E2M1[code] * torch.sign(y)
    return (q * s).reshape(shp).to(x.dtype)


def hadamard(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal Sylvester-Hadamard transform along the last dim (model-spec.md §3.4)."""
    n = x.shape[-1]
    h = torch.ones(1, 1)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    assert h.shape[0] == n, "index_head_dim must be a power of two"
    return (x.float() @ h.T / math.sqrt(n)).to(x.dtype)


class QatPatch:
    """Context manager that turns the QAT simulation on in every DeepseekV4 module of `model`.

    - Raw KV rows (§5.2): FP8 round trip of the nope dims of `self_attn.kv_norm`'s output. RoPE
      only rotates the last rope dims, so this equals rounding after RoPE, before the row enters
      the sliding window / cache, as the official code does.
    - Main compressed rows (§5.3): the same on `compressor.kv_norm`'s output (before RoPE at the
      window's first position; again the nope dims are not touched by RoPE), before caching.
    - Indexer (§5.4): inside the scorer, the RoPE'd indexer queries and the RoPE'd indexer
      compressed keys are Hadamard-rotated then FP4 round-tripped (block 32), then scored. The
      rounding is per row and deterministic, so rounding the cached keys at scoring time equals
      storing rounded keys.
    """

    def __init__(self, model):
        self.model = model
        self.handles = []
        self.saved_scorer = None

    def __enter__(self):
        cfg = self.model.config
        nope = cfg.head_dim - cfg.qk_rope_head_dim
        assert nope % 64 == 0, "head_dim - rope_dim must be a multiple of 64 for FP8 KV simulation"

        def kv_hook(mod, args, out):
            return torch.cat([fp8_e4m3_roundtrip(out[..., :nope], 64), out[..., nope:]], -1)

        for layer in self.model.model.layers:
            att = layer.self_attn
            self.handles.append(att.kv_norm.register_forward_hook(kv_hook))
            if att.compressor is not None:
                self.handles.append(att.compressor.kv_norm.register_forward_hook(kv_hook))
        self.saved_scorer = mdl.DeepseekV4IndexerScorer.forward
        orig = self.saved_scorer

        def scorer_forward(mod, q, compressed_kv, hidden_states):
            q = fp4_e2m1_roundtrip(hadamard(q), 32)
            k = fp4_e2m1_roundtrip(hadamard(compressed_kv), 32)
            return orig(mod, q, k, hidden_states)

        mdl.DeepseekV4IndexerScorer.forward = scorer_forward
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()
        mdl.DeepseekV4IndexerScorer.forward = self.saved_scorer
        return False


def check_rope_constants(cfg) -> dict:
    """YaRN frequencies HF builds for the compressed layers vs model-spec.md §3.3 rules."""
    rot = mdl.DeepseekV4RotaryEmbedding(cfg)
    comp = rot.compress_inv_freq.double().numpy()
    main = rot.main_inv_freq.double().numpy()
    rd = cfg.qk_rope_head_dim
    base = 160000.0
    theta0 = base ** (-np.arange(0, rd, 2) / rd)

    def corr(beta):
        return rd * math.log(65536 / (beta * 2 * math.pi)) / (2 * math.log(base))

    low = max(math.floor(corr(32.0)), 0)
    high = min(math.ceil(corr(1.0)), rd - 1)
    if low == high:
        high += 0.001
    ramp = np.clip((np.arange(rd // 2) - low) / (high - low), 0, 1)
    expect = theta0 * ((1 - ramp) + ramp / 16.0)
    err = float(np.max(np.abs(comp - expect) / expect))
    if err > 1e-6:
        raise AssertionError(f"HF YaRN frequencies differ from model-spec §3.3 by {err}")
    assert abs(rot.compress_attention_scaling - 1.0) < 1e-12
    return {"yarn_low": low, "yarn_high": high, "compress_inv_freq": comp.tolist(),
            "main_inv_freq": main.tolist(), "max_rel_err_vs_spec": err}


def softplus_sqrt(x):
    return torch.sqrt(F.softplus(x))
