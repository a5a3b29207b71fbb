"""Checks gpt_embedding against Hugging Face transformers on a model folder.

    python3 examples/python/hf_compare.py MODEL_DIR [--batch 2] [--seq 7] [--seed 0] [--mmap]

Opens MODEL_DIR (a folder saved by transformers' ``save_pretrained``: ``config.json`` and
``model.safetensors`` or a sharded index) twice: with ``GPTEmbedding.from_pretrained`` and
with transformers' ``AutoModel.from_pretrained`` at the checkpoint's dtype. transformers
runs its whole model on random ids while a forward pre-hook records what its first
decoder block receives; the layer computes the same from the same ids, in the
checkpoint's dtype, and the two are compared value by value.

Exit status 0 when they agree (bit for bit; or, for a family whose input stage is a
reduction -- BLOOM's layer norm, which torch's kernels round differently from CPU to CPU --
within 1e-6 relative in float32 and one unit in the last place in bfloat16 and float16),
1 when they do not. Without torch and
transformers the script says so and exits 0 (the library itself does not need them).

    python3 examples/python/hf_compare.py Tests/fixtures/families/llama_bf16
"""
import argparse
import os
import sys

import numpy as np

try:
    from gpt_embedding import GPTEmbedding
except ImportError:  # run from a checkout without installing: use its bindings/python
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bindings", "python"))
    from gpt_embedding import GPTEmbedding


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", help="a Hugging Face model folder (config.json + safetensors)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seq", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0, help="of the random ids")
    parser.add_argument("--mmap", action="store_true", help="map the checkpoint instead of reading it")
    args = parser.parse_args()

    try:
        import torch
        import transformers
    except ImportError as e:
        print(f"skipped: this comparison needs torch and transformers ({e}); "
              "pip install torch transformers")
        return 0

    # Ours: the family comes from config.json's model_type.
    try:
        layer = GPTEmbedding.from_pretrained(args.model_dir, mmap=args.mmap)
    except (OSError, ValueError) as e:  # unreadable, malformed or unsupported: the library says why
        print(f"gpt_embedding cannot open {args.model_dir}: {e}")
        return 1
    dtype = layer.weight_dtype  # "float32", "bfloat16" or "float16": the hidden states' dtype
    config = layer.config
    print(f"gpt_embedding: vocab {layer.vocab_size}, width {layer.embed_dim}, {dtype}, "
          f"positions {layer.position_encoding}"
          + (f" (offset {config.position_offset})" if config.position_offset else "")
          + (f", token scale {config.token_scale}" if config.token_scale is not None else "")
          + (", layer norm" if config.layer_norm else "") + f", input dropout {layer.dropout}")

    transformers.logging.set_verbosity_error()  # keep the output to the comparison
    transformers.utils.logging.disable_progress_bar()
    # transformers': the base model (AutoModel also opens a *ForCausalLM checkpoint) in the same dtype.
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    try:
        model = transformers.AutoModel.from_pretrained(args.model_dir, dtype=torch_dtype)
    except TypeError:  # transformers before 4.56 spells it torch_dtype
        model = transformers.AutoModel.from_pretrained(args.model_dir, torch_dtype=torch_dtype)
    model.eval()
    blocks = next((m for name, m in model.named_modules()
                   if isinstance(m, torch.nn.ModuleList) and name.rsplit(".", 1)[-1] in ("layers", "h", "blocks")),
                  None)
    if blocks is None or len(blocks) == 0:
        print(f"cannot find the decoder blocks of {type(model).__name__}")
        return 1
    seen = []

    def record(module, args_, kwargs):
        seen.append(args_[0] if args_ else kwargs["hidden_states"])
    hook = blocks[0].register_forward_pre_hook(record, with_kwargs=True)

    # Random ids with both ends of the table and a repeated id.
    rng = np.random.default_rng(args.seed)
    ids = rng.integers(0, layer.vocab_size, (args.batch, args.seq))
    ids[0, 0], ids[-1, -1] = 0, layer.vocab_size - 1
    if args.seq > 2:
        ids[0, 2] = ids[0, 1]
    with torch.no_grad():
        model(input_ids=torch.from_numpy(ids), use_cache=False)
    hook.remove()
    theirs = seen[0].float().numpy()

    ours = layer(ids, out_dtype=dtype).astype(np.float32)  # bf16/f16 widen to float32 exactly
    if ours.shape != theirs.shape:
        print(f"shapes differ: ours {ours.shape}, transformers' {theirs.shape}")
        return 1
    same = np.count_nonzero(ours.view(np.uint32) == theirs.view(np.uint32))
    worst = float(np.max(np.abs(ours - theirs)))
    print(f"{type(model).__name__}, block-0 input {list(theirs.shape)}: {same} of {ours.size} values "
          f"bit-identical, max |difference| {worst:.3g}")
    if same == ours.size:
        print("bit-identical")
        return 0
    # The layer norm is a reduction: torch's kernels round it differently from CPU to CPU.
    # Allow 1e-6 relative in float32 (a few ulp), one ulp in bfloat16 and float16.
    tol = {"float32": 1e-6, "bfloat16": 2.0 ** -7, "float16": 2.0 ** -10}[dtype]
    if config.layer_norm and np.all(np.abs(ours - theirs) <= tol * np.abs(theirs) + tol):
        print(f"within tolerance ({tol:.3g} relative; the layer norm is a reduction)")
        return 0
    print("MISMATCH")
    return 1


if __name__ == "__main__":
    sys.exit(main())
