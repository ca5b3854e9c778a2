"""The deployment metadata of an exported ONNX model, written and read here.

Every graph ``tools/deployment/pytorch2onnx.py`` writes carries four JSON
entries in its ``metadata_props``, under the ``geminifusion.`` prefix:

* ``classes``: list[str], the class names (index = class id);
* ``palette``: list[list[int]], one RGB colour per class;
* ``preprocess``: dict, the
  :class:`~geminifusion_mmseg.deployment.PreprocessSpec` baked into the
  graph;
* ``contract``: dict, the graph's inputs, outputs, shapes and settings.

:func:`write_onnx_metadata` is the only writer and
:func:`read_onnx_metadata` the only reader, so the two cannot drift apart.
"""
import json
import os

__all__ = [
    'METADATA_PREFIX', 'METADATA_FIELDS', 'METADATA_KEYS',
    'write_onnx_metadata', 'read_onnx_metadata'
]

#: Prefix of our entries in an ONNX model's ``metadata_props``.
METADATA_PREFIX = 'geminifusion.'
#: The entries, in the order they are written.
METADATA_FIELDS = ('classes', 'palette', 'preprocess', 'contract')
#: Their full keys in ``metadata_props``.
METADATA_KEYS = tuple(METADATA_PREFIX + f for f in METADATA_FIELDS)


def write_onnx_metadata(proto, meta: dict) -> None:
    """Replace ``proto.metadata_props`` by our entries.

    Args:
        proto (onnx.ModelProto): The model to annotate (changed in place).
        meta (dict): One JSON-serialisable value per name of
            :data:`METADATA_FIELDS` (a missing or extra name is an error).
    """
    if set(meta) != set(METADATA_FIELDS):
        raise ValueError(f'ONNX metadata needs exactly the fields '
                         f'{list(METADATA_FIELDS)}, got {sorted(meta)}')
    del proto.metadata_props[:]
    for field in METADATA_FIELDS:
        entry = proto.metadata_props.add()
        entry.key = METADATA_PREFIX + field
        entry.value = json.dumps(meta[field])


def read_onnx_metadata(path: str) -> dict:
    """The GeminiFusion metadata of an exported model.

    Args:
        path (str): An ``.onnx`` file written by
            ``tools/deployment/pytorch2onnx.py``.

    Returns:
        dict: ``classes`` (list[str]), ``palette`` (list[list[int]]),
        ``preprocess`` (dict, see
        :class:`~geminifusion_mmseg.deployment.PreprocessSpec`) and
        ``contract`` (inputs, outputs, dynamic, shape, ...).

    Raises:
        FileNotFoundError: No such file.
        ValueError: The file is not an ONNX model, or was not exported by
            ``tools/deployment/pytorch2onnx.py`` (no metadata).
    """
    import onnx
    if not os.path.isfile(path):
        raise FileNotFoundError(f'ONNX model {path} does not exist')
    hint = ('give the .onnx file that tools/deployment/pytorch2onnx.py '
            'writes (a .pth checkpoint runs with '
            'geminifusion_mmseg.apis.init_model instead)')
    if os.path.getsize(path) == 0:
        raise ValueError(f'{path} is empty (0 bytes), not an ONNX model; '
                         f'{hint}.')
    try:
        proto = onnx.load(path, load_external_data=False)
    except Exception as e:  # google.protobuf DecodeError
        raise ValueError(f'{path} is not an ONNX model (it cannot be parsed: '
                         f'{type(e).__name__}: {e}); {hint}.') from None
    if not proto.graph.node:
        raise ValueError(f'{path} holds no ONNX graph; {hint}.')
    props = {p.key: p.value for p in proto.metadata_props}
    out = {}
    for field in METADATA_FIELDS:
        key = METADATA_PREFIX + field
        if key not in props:
            raise ValueError(
                f'{path}: no {key!r} metadata; export the model with '
                'tools/deployment/pytorch2onnx.py')
        out[field] = json.loads(props[key])
    return out
