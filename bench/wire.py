"""Packed little-endian float32 bytes against `repeated float`, for the vectors on the wire.

Run: .venv/bin/python bench/wire.py
Encodes and decodes one embed reply of 32 x 384 vectors both ways and prints the median
time of each and their ratio. `repeated float` is measured through DistanceResponse's
`distances` field (a packed repeated float), the same size of payload.
"""

from __future__ import annotations

import statistics

import numpy as np
from embedspace import wire
from embedspace.v1 import embedspace_pb2 as pb
from harness import call_times

ROWS, DIM, REPEATS = 32, 384, 200


def timed(fn, repeats: int = REPEATS) -> list[float]:
    fn()  # warm up
    return call_times(fn, repeats)


def main() -> None:
    vectors = np.random.default_rng(0).normal(size=(ROWS, DIM)).astype(np.float32)

    def packed_encode() -> bytes:
        return pb.EmbedResponse(vectors=[wire.pack(v) for v in vectors]).SerializeToString()

    def repeated_encode() -> bytes:
        return b"".join(pb.DistanceResponse(distances=v.tolist()).SerializeToString()
                        for v in vectors)  # fmt: skip

    packed_bytes, repeated_bytes = packed_encode(), repeated_encode()
    repeated_msgs = [pb.DistanceResponse(distances=v.tolist()).SerializeToString() for v in vectors]

    def packed_decode() -> np.ndarray:
        return wire.unpack_rows(list(pb.EmbedResponse.FromString(packed_bytes).vectors))

    def repeated_decode() -> np.ndarray:
        return np.array([pb.DistanceResponse.FromString(m).distances for m in repeated_msgs],
                        np.float32)  # fmt: skip

    assert np.array_equal(packed_decode(), repeated_decode())
    rows = []
    for name, a, b in (("encode", packed_encode, repeated_encode),
                       ("decode", packed_decode, repeated_decode)):  # fmt: skip
        ta, tb = timed(a), timed(b)
        ma, mb = statistics.median(ta), statistics.median(tb)
        rows.append((name, ma * 1e6, mb * 1e6, mb / ma, min(ta) * 1e6, max(ta) * 1e6))
    print(f"{ROWS} x {DIM} float32 vectors; payload: packed {len(packed_bytes)} B, "
          f"repeated {len(repeated_bytes)} B; median of {REPEATS}")  # fmt: skip
    print(f"{'step':8} {'packed us':>10} {'repeated us':>12} {'repeated/packed':>16} "
          f"{'packed min..max us':>20}")  # fmt: skip
    for name, a, b, ratio, lo, hi in rows:
        print(f"{name:8} {a:10.1f} {b:12.1f} {ratio:16.1f} {lo:9.1f}..{hi:.1f}")
    print("reproduce: .venv/bin/python bench/wire.py")


if __name__ == "__main__":
    main()
