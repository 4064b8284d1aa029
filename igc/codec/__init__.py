"""The codec: a Tokenizer, a Model and a Coder turned into `.igc` bytes and back.

`neural.NeuralCodec` steps the model exactly as the decoder will; `lanes` runs a batch's tiles on
threads without changing a float; `residual` makes a lossy tokenizer's files lossless.
"""
