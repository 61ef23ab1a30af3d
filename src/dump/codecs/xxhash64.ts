/**
 * XXH64 (the xxHash specification, xxhash_spec.md of Cyan4973/xxHash),
 * for the zstd frame's content checksum: its low 32 bits, little-endian.
 * BigInt arithmetic reduced mod 2^64; only used on whole frames.
 */
const M64 = (1n << 64n) - 1n;
const P1 = 0x9e3779b185ebca87n;
const P2 = 0xc2b2ae3d27d4eb4fn;
const P3 = 0x165667b19e3779f9n;
const P4 = 0x85ebca77c2b2ae63n;
const P5 = 0x27d4eb2f165667c5n;

function rotl(x: bigint, r: bigint): bigint {
  return ((x << r) | (x >> (64n - r))) & M64;
}
function round(acc: bigint, lane: bigint): bigint {
  return (rotl((acc + lane * P2) & M64, 31n) * P1) & M64;
}
function merge(acc: bigint, v: bigint): bigint {
  return (((acc ^ round(0n, v)) * P1) + P4) & M64;
}

export function xxh64(data: Uint8Array, seed = 0n): bigint {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const len = data.length;
  let i = 0;
  let acc: bigint;
  if (len >= 32) {
    let v1 = (seed + P1 + P2) & M64;
    let v2 = (seed + P2) & M64;
    let v3 = seed & M64;
    let v4 = (seed - P1) & M64;
    for (; i + 32 <= len; i += 32) {
      v1 = round(v1, view.getBigUint64(i, true));
      v2 = round(v2, view.getBigUint64(i + 8, true));
      v3 = round(v3, view.getBigUint64(i + 16, true));
      v4 = round(v4, view.getBigUint64(i + 24, true));
    }
    acc = (rotl(v1, 1n) + rotl(v2, 7n) + rotl(v3, 12n) + rotl(v4, 18n)) & M64;
    acc = merge(acc, v1);
    acc = merge(acc, v2);
    acc = merge(acc, v3);
    acc = merge(acc, v4);
  } else {
    acc = (seed + P5) & M64;
  }
  acc = (acc + BigInt(len)) & M64;
  for (; i + 8 <= len; i += 8) {
    acc ^= round(0n, view.getBigUint64(i, true));
    acc = ((rotl(acc, 27n) * P1) + P4) & M64;
  }
  if (i + 4 <= len) {
    acc ^= (BigInt(view.getUint32(i, true)) * P1) & M64;
    acc = ((rotl(acc, 23n) * P2) + P3) & M64;
    i += 4;
  }
  for (; i < len; i++) {
    acc ^= (BigInt(data[i]) * P5) & M64;
    acc = (rotl(acc, 11n) * P1) & M64;
  }
  acc ^= acc >> 33n;
  acc = (acc * P2) & M64;
  acc ^= acc >> 29n;
  acc = (acc * P3) & M64;
  acc ^= acc >> 32n;
  return acc;
}
