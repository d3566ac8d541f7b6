"""From a run to probabilities and decisions, on any runtime, at any scale.

predictor (the interface every runtime implements), torch_predictor, onnx_predictor,
runtimes (which engine predicts), onnx_export, quantize (int8), hub (Hugging Face style
folders), jobs / streaming / parts / outputs (streamed, resumable prediction files), launch
(the ranks of a job on many devices and nodes).
Imports core, data and model.
"""
