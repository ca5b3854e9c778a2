"""Deployment of GeminiFusion segmentors: one ONNX graph per model, one input
per modality, with the config's encodings and normalisation inside (see
docs/deployment.md)."""
from .wrapper import (MAX_MODALITIES, DeployableSegmentor, PreprocessSpec,
                      preprocess_spec)

__all__ = [
    'DeployableSegmentor', 'PreprocessSpec', 'preprocess_spec',
    'MAX_MODALITIES'
]
from .onnx_export import (DEPTH_DTYPES, FP16_TOLERANCE, FP32_TOLERANCE,
                          INPUT_DTYPES, ExportInfo, ParityReport, aligned_size,
                          default_verify_sizes, dynamic_trace_size,
                          export_onnx, input_dtypes_of, verify_onnx)

__all__ += [
    'export_onnx', 'verify_onnx', 'ExportInfo', 'ParityReport',
    'dynamic_trace_size', 'aligned_size', 'default_verify_sizes',
    'DEPTH_DTYPES', 'INPUT_DTYPES', 'input_dtypes_of', 'FP32_TOLERANCE',
    'FP16_TOLERANCE'
]
