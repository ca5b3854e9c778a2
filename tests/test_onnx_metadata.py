"""The deployment metadata: one writer, one reader, and what they refuse."""
import onnx
import pytest
from onnx import TensorProto, helper

from geminifusion_mmseg.apis import read_onnx_metadata
from geminifusion_mmseg.deployment.metadata import (METADATA_FIELDS,
                                                    METADATA_KEYS,
                                                    write_onnx_metadata)

META = dict(
    classes=['wall', 'floor'],
    palette=[[1, 2, 3], [4, 5, 6]],
    preprocess=dict(mean=[1.0, 2.0], resize_mode='bicubic'),
    contract=dict(inputs=['rgb', 'depth'], dynamic=True))


def _identity_model():
    x = helper.make_tensor_value_info('x', TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info('y', TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node('Identity', ['x'], ['y'])],
                              'g', [x], [y])
    return helper.make_model(graph)


def test_what_is_written_is_read_back(tmp_path):
    proto = _identity_model()
    proto.metadata_props.add(key='other', value='dropped')
    write_onnx_metadata(proto, META)
    assert [p.key for p in proto.metadata_props] == list(METADATA_KEYS)
    path = str(tmp_path / 'm.onnx')
    onnx.save(proto, path)
    assert read_onnx_metadata(path) == META


def test_writer_needs_every_field_and_no_other():
    with pytest.raises(ValueError, match="exactly the fields"):
        write_onnx_metadata(_identity_model(), dict(META, extra=1))
    partial = {k: META[k] for k in METADATA_FIELDS[:2]}
    with pytest.raises(ValueError, match="exactly the fields"):
        write_onnx_metadata(_identity_model(), partial)


def test_reader_names_the_missing_key(tmp_path):
    proto = _identity_model()
    write_onnx_metadata(proto, META)
    del proto.metadata_props[-1]
    path = str(tmp_path / 'm.onnx')
    onnx.save(proto, path)
    with pytest.raises(ValueError, match=r"no 'geminifusion.contract'"):
        read_onnx_metadata(path)
