"""The hand-off: a bundle an embedded team can verify on its device, and their results back in the report.

`verify` runs on the device and imports only the standard library, numpy and onnxruntime; `bundle` and
`merge` run where the factory is installed.
"""
