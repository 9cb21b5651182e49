"""Export: TFLite conversion (child process), C array headers, LiteRT quality checks.

Submodules are imported on use (`host.export.tflite`, `host.export.carray`,
`host.export.evaluate`) so that importing `host.export` stays light.
"""
