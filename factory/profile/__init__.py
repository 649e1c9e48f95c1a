"""Latency on the user's own device: a kit of sample networks, its profile on the device, a predictor.

`device` runs on the device and imports only the standard library, numpy and onnxruntime (and click through
the CLI); `kit` and `predictor` run where the factory is installed.
"""
