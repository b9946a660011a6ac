"""Official-format checkpoint of a tiny model, and llama.cpp's own converter run on it.

Owns: the HF -> official tensor names (model-spec.md §8.1, the inverse of transformers'
`conversion_mapping.py` "deepseek_v4" entry), the FP8 E4M3 + UE8M0 128x128 block format for
attention / shared-expert weights (§8.2) and the packed FP4 E2M1 + UE8M0 per-32 format for routed
experts (§8.3), an official-style `config.json`, and the driver that runs `convert_hf_to_gguf.py`
from the llama-cpp-python 0.3.36 sdist (downloaded from PyPI into a cache; nothing is committed).
"""

import json
import re
import subprocess
import sys
import tarfile

import numpy as np
import torch
from safetensors.torch import save_file

from . import model as M

_SHARED = {"gate_proj": "w1", "down_proj": "w2", "up_proj": "w3"}
_ATTN = {"q_a_proj": "wq_a", "q_a_norm": "q_norm", "q_b_proj": "wq_b", "kv_proj": "wkv",
         "kv_norm": "kv_norm", "o_a_proj": "wo_a", "o_b_proj": "wo_b"}


def official_name(hf: str) -> str:
    top = {"model.embed_tokens.weight": "embed.weight", "lm_head.weight": "head.weight",
           "model.norm.weight": "norm.weight", "model.hc_head.hc_fn": "hc_head_fn",
           "model.hc_head.hc_base": "hc_head_base", "model.hc_head.hc_scale": "hc_head_scale"}
    if hf in top:
        return top[hf]
    m = re.match(r"model\.layers\.(\d+)\.(.+)$", hf)
    i, r = m.group(1), m.group(2)
    p = f"layers.{i}."
    simple = {
        "input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
        "attn_hc.fn": "hc_attn_fn", "attn_hc.base": "hc_attn_base", "attn_hc.scale": "hc_attn_scale",
        "ffn_hc.fn": "hc_ffn_fn", "ffn_hc.base": "hc_ffn_base", "ffn_hc.scale": "hc_ffn_scale",
        "self_attn.sinks": "attn.attn_sink",
        "mlp.gate.weight": "ffn.gate.weight", "mlp.gate.e_score_correction_bias": "ffn.gate.bias",
        "mlp.gate.tid2eid": "ffn.gate.tid2eid",
        "self_attn.compressor.indexer.q_b_proj.weight": "attn.indexer.wq_b.weight",
        "self_attn.compressor.indexer.scorer.weights_proj.weight": "attn.indexer.weights_proj.weight",
    }
    if r in simple:
        return p + simple[r]
    m2 = re.match(r"self_attn\.(\w+)\.weight$", r)
    if m2 and m2.group(1) in _ATTN:
        return p + f"attn.{_ATTN[m2.group(1)]}.weight"
    m2 = re.match(r"self_attn\.compressor\.(indexer\.)?(position_bias|kv_proj\.weight|gate_proj\.weight|kv_norm\.weight)$", r)
    if m2:
        base = "attn.indexer.compressor." if m2.group(1) else "attn.compressor."
        leaf = {"position_bias": "ape", "kv_proj.weight": "wkv.weight", "gate_proj.weight": "wgate.weight",
                "kv_norm.weight": "norm.weight"}[m2.group(2)]
        return p + base + leaf
    m2 = re.match(r"mlp\.shared_experts\.(\w+)\.weight$", r)
    if m2:
        return p + f"ffn.shared_experts.{_SHARED[m2.group(1)]}.weight"
    raise KeyError(hf)


def _e8m0(s: torch.Tensor) -> torch.Tensor:
    """power-of-two float scales -> float8_e8m0fnu (biased exponent byte)."""
    e = torch.log2(s).round().to(torch.int32) + 127
    assert int(e.min()) > 0 and int(e.max()) < 255
    return e.to(torch.uint8).view(torch.float8_e8m0fnu)


def fp8_block_quant(w: np.ndarray):
    """[out, in] f32 -> (float8_e4m3fn [out, in], e8m0 [ceil(out/128), ceil(in/128)])."""
    t = torch.from_numpy(w).float()
    o, i = t.shape
    po, pi = -(-o // 128) * 128, -(-i // 128) * 128
    pad = torch.zeros(po, pi)
    pad[:o, :i] = t
    blocks = pad.reshape(po // 128, 128, pi // 128, 128).permute(0, 2, 1, 3)
    amax = blocks.abs().amax((-1, -2)).clamp_min(1e-4)
    s = M._pow2_scale(amax, 448.0)
    q = (blocks / s[..., None, None]).clamp(-448, 448).to(torch.float8_e4m3fn)
    q = q.float().permute(0, 2, 1, 3).reshape(po, pi)[:o, :i].to(torch.float8_e4m3fn)
    return q.contiguous(), _e8m0(s)


def fp4_pack(w: np.ndarray):
    """[out, in] f32 -> (int8 [out, in/2] two E2M1 codes per byte, low nibble = even element;
    e8m0 [out, in/32])."""
    t = torch.from_numpy(w).float()
    o, i = t.shape
    xb = t.reshape(o, i // 32, 32)
    amax = xb.abs().amax(-1, keepdim=True).clamp_min(6.0 * 2.0 ** -126)
    s = M._pow2_scale(amax, 6.0)
    deq = M.fp4_e2m1_roundtrip(t, 32).reshape(o, i // 32, 32) / s
    mag = deq.abs()
    code = torch.argmin((mag.unsqueeze(-1) - M._E2M1).abs(), dim=-1)
    code = code | ((deq < 0).to(torch.int64) << 3)
    code = code.reshape(o, i)
    packed = (code[:, 0::2] | (code[:, 1::2] << 4)).to(torch.uint8).view(torch.int8)
    return packed.contiguous(), _e8m0(s.squeeze(-1))


def write_checkpoint(state: dict, cfg, out_dir, tok_files_writer) -> None:
    """HF numpy state -> official-format model.safetensors + config.json + tokenizer files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for hf, v in state.items():
        if hf.endswith("mlp.experts.gate_up_proj") or hf.endswith("mlp.experts.down_proj"):
            i = re.match(r"model\.layers\.(\d+)\.", hf).group(1)
            E = v.shape[0]
            if hf.endswith("gate_up_proj"):
                half = v.shape[1] // 2
                parts = {"w1": v[:, :half], "w3": v[:, half:]}
            else:
                parts = {"w2": v}
            for e in range(E):
                for w, arr in parts.items():
                    q, s = fp4_pack(np.ascontiguousarray(arr[e]))
                    tensors[f"layers.{i}.ffn.experts.{e}.{w}.weight"] = q
                    tensors[f"layers.{i}.ffn.experts.{e}.{w}.scale"] = s
            continue
        name = official_name(hf)
        if re.search(r"\.attn\.(wq_a|wq_b|wkv|wo_a|wo_b)\.weight$", name) \
                or name.endswith(".attn.indexer.wq_b.weight") or ".shared_experts." in name:
            q, s = fp8_block_quant(np.ascontiguousarray(v, dtype=np.float32))
            tensors[name] = q
            tensors[name[: -len(".weight")] + ".scale"] = s
        elif name.endswith("tid2eid"):
            tensors[name] = torch.from_numpy(np.ascontiguousarray(v)).to(torch.int64)
        elif re.search(r"(hc_(attn|ffn|head)_(fn|base|scale)|\.ape|attn_sink|gate\.bias)$", name):
            tensors[name] = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
        else:
            tensors[name] = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)).to(torch.bfloat16)
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    ratios = [M.RATIO[t] for t in cfg.layer_types]
    n_hash = sum(1 for t in cfg.mlp_layer_types if t == "hash_moe")
    conf = {
        "architectures": ["DeepseekV4ForCausalLM"], "model_type": "deepseek_v4",
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size,
        "moe_intermediate_size": cfg.moe_intermediate_size, "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads, "num_key_value_heads": 1, "head_dim": cfg.head_dim,
        "qk_rope_head_dim": cfg.qk_rope_head_dim, "q_lora_rank": cfg.q_lora_rank,
        "o_groups": cfg.o_groups, "o_lora_rank": cfg.o_lora_rank, "sliding_window": cfg.sliding_window,
        "compress_ratios": ratios, "compress_rope_theta": 160000.0, "rope_theta": 10000.0,
        "rope_scaling": {"type": "yarn", "factor": 16, "original_max_position_embeddings": 65536,
                         "beta_fast": 32, "beta_slow": 1},
        "index_n_heads": cfg.index_n_heads, "index_head_dim": cfg.index_head_dim,
        "index_topk": cfg.index_topk, "n_routed_experts": cfg.n_routed_experts,
        "num_experts_per_tok": cfg.num_experts_per_tok, "n_shared_experts": 1,
        "num_hash_layers": n_hash, "scoring_func": "sqrtsoftplus", "topk_method": "noaux_tc",
        "norm_topk_prob": True, "routed_scaling_factor": 1.5, "swiglu_limit": 10.0,
        "hc_mult": 4, "hc_sinkhorn_iters": 20, "hc_eps": 1e-6, "rms_norm_eps": 1e-6,
        "max_position_embeddings": 1048576, "num_nextn_predict_layers": 0,
        "bos_token_id": 0, "eos_token_id": 1, "tie_word_embeddings": False, "attention_bias": False,
        "torch_dtype": "bfloat16",
        "quantization_config": {"quant_method": "fp8", "fmt": "e4m3", "scale_fmt": "ue8m0",
                                "weight_block_size": [128, 128], "activation_scheme": "dynamic"},
    }
    (out_dir / "config.json").write_text(json.dumps(conf, indent=2) + "\n")
    tok_files_writer(out_dir)


def fetch_sdist(cache_dir, python: str):
    """Download (once) and unpack the llama-cpp-python 0.3.36 sdist; returns the llama.cpp dir."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    root = cache_dir / "llama_cpp_python-0.3.36"
    lcpp = root / "vendor" / "llama.cpp"
    if (lcpp / "convert_hf_to_gguf.py").exists():
        return lcpp
    tgz = cache_dir / "llama_cpp_python-0.3.36.tar.gz"
    if not tgz.exists():
        subprocess.run([python, "-m", "pip", "download", "--no-deps", "--no-binary", "llama-cpp-python",
                        "llama-cpp-python==0.3.36", "-d", str(cache_dir)], check=True)
    with tarfile.open(tgz) as tf:
        members = [m for m in tf.getmembers()
                   if re.match(r"llama_cpp_python-0\.3\.36/vendor/llama\.cpp/"
                               r"(convert_hf_to_gguf\.py|conversion/|gguf-py/|models/templates/)", m.name)]
        tf.extractall(cache_dir, members=members, filter="data")
    return lcpp


# Run inside a fresh interpreter: the converter must import its own vendored gguf-py, not PyPI's.
_DRIVER = r"""
import sys
lcpp = sys.argv[1]
sys.path.insert(0, lcpp)
import conversion.base as base
# The tiny vocabulary is ours, so llama.cpp's tokenizer fingerprint (a hash of the token ids of a
# fixed text) cannot match any known model. Its pre-tokenizer *is* DeepSeek V4's (same Split
# regexes and ByteLevel settings), which llama.cpp names "joyai-llm"; declare it explicitly.
base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "joyai-llm"
sys.argv = ["convert_hf_to_gguf.py"] + sys.argv[2:]
import runpy
runpy.run_path(lcpp + "/convert_hf_to_gguf.py", run_name="__main__")
"""


def run_converter(python: str, lcpp, ckpt_dir, out_path, env) -> str:
    r = subprocess.run([python, "-c", _DRIVER, str(lcpp), str(ckpt_dir), "--outfile", str(out_path),
                        "--outtype", "auto"], capture_output=True, text=True, env=env)
    log = r.stdout + r.stderr
    if r.returncode != 0:
        raise RuntimeError("convert_hf_to_gguf.py failed:\n" + log[-4000:])
    return log
