"""Reads a safetensors file (larmor checkpoints and bench batch files) into numpy arrays, without the
safetensors package: 8-byte little-endian header length, JSON header, raw little-endian data."""
import json
import struct

import numpy as np

_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I32": np.int32, "I64": np.int64,
           "U8": np.uint8, "I8": np.int8, "BOOL": np.bool_}


def load(path):
    """Returns (tensors: name -> np.ndarray, metadata: dict). BF16 entries are widened to float32."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        raw = data[b:end]
        if e["dtype"] == "BF16":
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(raw, dtype=np.dtype(_DTYPES[e["dtype"]]).newbyteorder("<"))
        out[name] = a.reshape(e["shape"]).copy()
    return out, meta
