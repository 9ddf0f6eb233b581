#!/usr/bin/env python3
# make_seeds.py - writes the seed corpus of the ONNX loader fuzzer: small
# models that between them use every operator petcut runs, in the patterns
# ISNet uses (fp16 weights behind casts, upsampling sizes from Shape/Slice/
# Concat, residual Adds, dynamic int8 convolutions).
#
# Needs python3-onnx and python3-numpy (Debian); only for regenerating the
# committed files in corpus/onnx_load/.
import os
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus', 'onnx_load')
rng = np.random.default_rng(7)


def save(name, nodes, inputs, outputs, inits=(), opset=15):
    g = helper.make_graph(nodes, name, inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid('', opset)], producer_name='petcut-seeds')
    m.ir_version = 8
    with open(os.path.join(OUT, name + '.onnx'), 'wb') as f:
        f.write(m.SerializeToString())


def f32(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def w(name, shape, dtype=np.float32):
    return numpy_helper.from_array((rng.standard_normal(shape) * 0.2).astype(dtype), name)


os.makedirs(OUT, exist_ok=True)

# Conv + Relu + residual Add, MaxPool ceil_mode, Sigmoid
save('conv_residual', [
    helper.make_node('Conv', ['x', 'w1', 'b1'], ['c1'], pads=[1, 1, 1, 1], name='conv1'),
    helper.make_node('Relu', ['c1'], ['r1']),
    helper.make_node('Conv', ['r1', 'w2', 'b2'], ['c2'], pads=[2, 2, 2, 2], dilations=[2, 2], name='conv2'),
    helper.make_node('Relu', ['c2'], ['r2']),
    helper.make_node('Add', ['r2', 'r1'], ['a']),
    helper.make_node('MaxPool', ['a'], ['p'], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
    helper.make_node('Sigmoid', ['p'], ['y']),
], [f32('x', [1, 3, 9, 9])], [f32('y', None)], [w('w1', [8, 3, 3, 3]), w('b1', [8]), w('w2', [8, 8, 3, 3]), w('b2', [8])])

# fp16 weights behind casts, upsampling sizes from Shape/Slice/Concat
save('fp16_resize', [
    helper.make_node('Cast', ['x'], ['xh'], to=TensorProto.FLOAT16),
    helper.make_node('Conv', ['xh', 'wh', 'bh'], ['ch'], pads=[1, 1, 1, 1]),
    helper.make_node('Cast', ['ch'], ['c'], to=TensorProto.FLOAT),
    helper.make_node('MaxPool', ['c'], ['p'], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
    helper.make_node('Shape', ['p'], ['s']),
    helper.make_node('Constant', [], ['st'], value=numpy_helper.from_array(np.array([0], np.int64))),
    helper.make_node('Constant', [], ['en'], value=numpy_helper.from_array(np.array([2], np.int64))),
    helper.make_node('Slice', ['s', 'st', 'en', 'st'], ['nc']),
    helper.make_node('Constant', [], ['hw'], value=numpy_helper.from_array(np.array([8, 8], np.int64))),
    helper.make_node('Concat', ['nc', 'hw'], ['sizes'], axis=0),
    helper.make_node('Resize', ['p', '', '', 'sizes'], ['u'], mode='linear',
                     coordinate_transformation_mode='half_pixel'),
    helper.make_node('Concat', ['u', 'c'], ['y'], axis=1),
], [f32('x', [1, 3, 8, 8])], [f32('y', None)], [w('wh', [4, 3, 3, 3], np.float16), w('bh', [4], np.float16)])

# dynamic int8 convolution as ISNet's small variant has it
wq = rng.integers(0, 255, (4, 3, 3, 3), dtype=np.uint8)
save('dynamic_int8', [
    helper.make_node('DynamicQuantizeLinear', ['x'], ['xq', 'xs', 'xz']),
    helper.make_node('Mul', ['xs', 'ws'], ['scale']),
    helper.make_node('ConvInteger', ['xq', 'wq', 'xz', 'wz'], ['ci'], pads=[1, 1, 1, 1]),
    helper.make_node('Cast', ['ci'], ['cf'], to=TensorProto.FLOAT),
    helper.make_node('Mul', ['cf', 'scale'], ['m']),
    helper.make_node('Reshape', ['b', 'bshape'], ['br']),
    helper.make_node('Add', ['m', 'br'], ['a']),
    helper.make_node('Relu', ['a'], ['y']),
], [f32('x', [1, 3, 6, 6])], [f32('y', None)], [
    numpy_helper.from_array(wq, 'wq'), numpy_helper.from_array(np.array(128, np.uint8), 'wz'),
    numpy_helper.from_array(np.array(0.02, np.float32), 'ws'), w('b', [4]),
    numpy_helper.from_array(np.array([1, 4, 1, 1], np.int64), 'bshape')])

# shape-deciding inputs, nearest resize by scales, slices with steps, identity
save('shapes', [
    helper.make_node('Reshape', ['x', 'shape'], ['r']),
    helper.make_node('Resize', ['r', '', 'scales'], ['u'], mode='nearest',
                     coordinate_transformation_mode='asymmetric'),
    helper.make_node('Slice', ['u', 'starts', 'ends', 'axes', 'steps'], ['s']),
    helper.make_node('Identity', ['s'], ['y']),
], [f32('x', [2, 12]), helper.make_tensor_value_info('shape', TensorProto.INT64, [4])], [f32('y', None)], [
    numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), 'scales'),
    numpy_helper.from_array(np.array([0, -1], np.int64), 'starts'),
    numpy_helper.from_array(np.array([100, -100], np.int64), 'ends'),
    numpy_helper.from_array(np.array([2, 3], np.int64), 'axes'),
    numpy_helper.from_array(np.array([2, -2], np.int64), 'steps')])

# grouped and strided convolution, 1-D convolution with auto_pad
save('conv_variants', [
    helper.make_node('Conv', ['x', 'wg'], ['g'], group=2, strides=[2, 2], auto_pad='SAME_UPPER'),
    helper.make_node('Reshape', ['g', 'flat'], ['f']),
    helper.make_node('Conv', ['f', 'w1d'], ['y'], auto_pad='VALID'),
], [f32('x', [1, 4, 7, 7])], [f32('y', None)], [
    w('wg', [6, 2, 3, 3]), numpy_helper.from_array(np.array([1, 6, -1], np.int64), 'flat'), w('w1d', [2, 6, 3])])
print('seeds written to', OUT)
