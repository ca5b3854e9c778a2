"""Deployment of GeminiFusion segmentors: one ONNX graph per model, with the
config's depth encoding and normalisation inside (see docs/deployment.md)."""
from .wrapper import DeployableSegmentor, PreprocessSpec, preprocess_spec

__all__ = ['DeployableSegmentor', 'PreprocessSpec', 'preprocess_spec']
from .onnx_export import (DEPTH_DTYPES, FP16_TOLERANCE, FP32_TOLERANCE,
                          ExportInfo, ParityReport, aligned_size,
                          default_verify_sizes, dynamic_trace_size,
                          export_onnx, verify_onnx)

__all__ += [
    'export_onnx', 'verify_onnx', 'ExportInfo', 'ParityReport',
    'dynamic_trace_size', 'aligned_size', 'default_verify_sizes',
    'DEPTH_DTYPES', 'FP32_TOLERANCE', 'FP16_TOLERANCE'
]
