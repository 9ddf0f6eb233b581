#!/usr/bin/env python3
"""make_model.py - writes a tiny ONNX model for petcut's server tests, with
no onnx package (the protobuf is encoded by hand).

    tests/tools/make_model.py OUT.onnx ok|fixed320

Both take "input" [N, 3, H, W] and give "output": a 1x1 convolution
averaging the channels, then a sigmoid, so [N, 1, H, W].

  ok        runs at any size: a working stand-in for ISNet.
  fixed320  ends in a Reshape to [-1, 1, 320, 320], as a model exported for
            one input size does: it loads, and every forward pass at another
            size (petcut runs 512 and 1024) fails.
"""
import struct
import sys


def varint(n):
    out = b''
    while True:
        b = n & 0x7f
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def key(field, wire):
    return varint(field << 3 | wire)


def f_int(field, n):
    return key(field, 0) + varint(n & 0xffffffffffffffff)


def f_bytes(field, b):
    if isinstance(b, str):
        b = b.encode()
    return key(field, 2) + varint(len(b)) + b


def tensor(name, dims, dtype, raw):
    # TensorProto: dims 1, data_type 2, name 8, raw_data 9
    return b''.join(f_int(1, d) for d in dims) + f_int(2, dtype) + f_bytes(8, name) + f_bytes(9, raw)


def value_info(name, dims):
    # ValueInfoProto{name 1, type 2: TypeProto{tensor_type 1: {elem_type 1, shape 2: {dim 1}}}}
    shape = b''
    for d in dims:
        shape += f_bytes(1, f_int(1, d) if isinstance(d, int) else f_bytes(2, d))
    tt = f_int(1, 1) + f_bytes(2, shape)
    return f_bytes(1, name) + f_bytes(2, f_bytes(1, tt))


def node(op, inputs, outputs, name, attrs=b''):
    # NodeProto: input 1, output 2, name 3, op_type 4, attribute 5
    return (b''.join(f_bytes(1, i) for i in inputs) + b''.join(f_bytes(2, o) for o in outputs) +
            f_bytes(3, name) + f_bytes(4, op) + attrs)


def attr_ints(name, values):
    # AttributeProto: name 1, ints 8, type 20 (INTS = 7)
    return f_bytes(5, f_bytes(1, name) + b''.join(f_int(8, v) for v in values) + f_int(20, 7))


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in ('ok', 'fixed320'):
        sys.exit(__doc__)
    out, kind = sys.argv[1], sys.argv[2]
    weights = tensor('w', [1, 3, 1, 1], 1, struct.pack('<3f', 1 / 3, 1 / 3, 1 / 3))
    nodes = node('Conv', ['input', 'w'], ['mean'], 'conv', attr_ints('kernel_shape', [1, 1]))
    inits = f_bytes(5, weights)
    if kind == 'ok':
        nodes = f_bytes(1, nodes) + f_bytes(1, node('Sigmoid', ['mean'], ['output'], 'sigmoid'))
    else:
        shape = tensor('shape', [4], 7, struct.pack('<4q', -1, 1, 320, 320))
        inits += f_bytes(5, shape)
        nodes = (f_bytes(1, nodes) + f_bytes(1, node('Sigmoid', ['mean'], ['prob'], 'sigmoid')) +
                 f_bytes(1, node('Reshape', ['prob', 'shape'], ['output'], 'reshape')))
    graph = (nodes + f_bytes(2, 'petcut-test-' + kind) + inits +
             f_bytes(11, value_info('input', ['N', 3, 'H', 'W'])) +
             f_bytes(12, value_info('output', ['N', 1, 'H', 'W'])))
    opset = f_bytes(1, '') + f_int(2, 13)
    model = f_int(1, 8) + f_bytes(2, 'petcut-tests') + f_bytes(7, graph) + f_bytes(8, opset)
    with open(out, 'wb') as f:
        f.write(model)


if __name__ == '__main__':
    main()
