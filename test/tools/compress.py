#!/usr/bin/python3
"""Compresses files with the real compression libraries of this host
(liblzo2, libsnappy) through ctypes, as test truth for our decompressors.
Usage: compress.py lzo1x_1|lzo1x_999|snappy IN OUT [IN OUT ...]"""
import ctypes
import sys


def compress(method, data):
    if method.startswith('lzo1x'):
        lzo = ctypes.CDLL('liblzo2.so.2')
        # __lzo_init_v2(): -1 skips each size check.
        if lzo.__lzo_init_v2(1, -1, -1, -1, -1, -1, -1, -1, -1, -1) != 0:
            sys.exit('lzo_init failed')
        out = ctypes.create_string_buffer(len(data) + len(data) // 16 + 64 + 3)
        outlen = ctypes.c_size_t(0)
        wrk = ctypes.create_string_buffer(1 << 20)
        rc = getattr(lzo, method + '_compress')(data, ctypes.c_size_t(len(data)), out, ctypes.byref(outlen), wrk)
        if rc != 0:
            sys.exit('lzo compress failed: %d' % rc)
    elif method == 'snappy':
        s = ctypes.CDLL('libsnappy.so.1')
        s.snappy_max_compressed_length.restype = ctypes.c_size_t
        n = s.snappy_max_compressed_length(ctypes.c_size_t(len(data)))
        out = ctypes.create_string_buffer(n)
        outlen = ctypes.c_size_t(n)
        if s.snappy_compress(data, ctypes.c_size_t(len(data)), out, ctypes.byref(outlen)) != 0:
            sys.exit('snappy compress failed')
    else:
        sys.exit('unknown method ' + method)
    return out.raw[:outlen.value]


method = sys.argv[1]
args = sys.argv[2:]
for i in range(0, len(args), 2):
    with open(args[i], 'rb') as f:
        data = f.read()
    with open(args[i + 1], 'wb') as f:
        f.write(compress(method, data))
