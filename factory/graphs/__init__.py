"""Deployable graphs, shared by the stages that make, time and profile them: ONNX export and reading, INT8
quantization, TensorRT engines and their runner, graph order and memory accounting."""
