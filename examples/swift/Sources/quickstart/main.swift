import GPTEmbedding

// GPT-2 small exactly: learned positions, no scaling, dropout 0.1.
var config = GPTEmbeddingConfig.gpt2Small
config.seed = 42
let layer = try GPTEmbedding(config: config)

// Eval forward on a batch of two sequences: [2, 3, 768] floats.
let out = try layer([[15496, 11, 995], [40, 1101, 257]])
print("output: \(out.count) floats, first \(out[0])")  // -> output: 4608 floats, first ...

// Training step: forward with dropout, backward accumulates gradients.
let ids: [Int32] = [15496, 11, 995, 40, 1101, 257]
let y = try layer.forward(ids: ids, batch: 2, seq: 3, training: true)
try layer.backward(gradOutput: [Float](repeating: 1, count: y.count), batch: 2, seq: 3)
print("token table gradient of token 995:", layer.tokenEmbedding.weight.gradient[995 * 768])

// Errors are typed and name the bad value.
do {
    _ = try layer.forward(ids: [Int32(50300)], batch: 1, seq: 1)
} catch {
    print("error \(error.code): \(error.message)")
    // -> error outOfRange: token id 50300 at [0, 0] is out of range [0, 50257)
}
print("parameters:", layer.numParameters)  // -> parameters: 39385344
