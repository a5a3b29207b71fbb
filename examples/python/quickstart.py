import numpy as np
from gpt_embedding import GPTEmbedding, GPTEmbeddingConfig

# The seed's configuration and layer (training mode after construction, like torch).
config = GPTEmbeddingConfig(vocab_size=50257, embed_dim=768, max_seq_len=1024, dropout=0.1)
layer = GPTEmbedding(vocab_size=config.vocab_size, embed_dim=config.embed_dim,
                     max_seq_len=config.max_seq_len, dropout=config.dropout, seed=42)

input_ids = np.random.default_rng(0).integers(0, config.vocab_size, (2, 10))  # int64
embeddings = layer(input_ids)
print(f"Output shape: {embeddings.shape}")  # -> (2, 10, 768)

# Backward adds into the layer's gradients (until zero_grad); grads() returns copies.
layer.backward(np.ones_like(embeddings))
print("token grad norm:", np.linalg.norm(layer.grads()["token_embedding.weight"]))

# One SGD step in place, through zero-copy views of the parameters and gradients.
for name, param, grad in layer.named_parameters():
    param -= 0.01 * grad
layer.zero_grad()

# Inference: no dropout; layer norm and the KV-cache offset are chosen per call.
layer.eval()
step = layer(np.array([[464]], dtype=np.int32), use_layer_norm=True, start_position=10)
print(step.shape)  # -> (1, 1, 768)

# GPT-2 small exactly (learned positions, no scaling), from the preset.
gpt2 = GPTEmbedding.from_preset("gpt2", seed=42)
print(f"GPT-2 small embedding parameters: {gpt2.num_parameters():,}")  # -> 39,385,344

# Errors are Python exceptions carrying the library's message; nothing crashes.
try:
    layer([[15496, 50300]])
except IndexError as e:
    print(e)  # -> gpt_embedding_forward_i64: token id 50300 at [0, 1] is out of range [0, 50257)
