import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ReedSolomon } from '../../../src/kernel/pstore/index.js';

const FC_SEED = process.env.FC_SEED ? Number(process.env.FC_SEED) : 0x5eed;

/**
 * A reference written here from the definition, not from the codec: GF(2^8)
 * from the primitive polynomial x^8+x^4+x^3+x^2+1 (0x11d), the generator
 * g(x) = (x - a^0)(x - a^1)...(x - a^15) (first root 0, primitive element 1,
 * as init_rs(8, 0x11d, 0, 1, 16) in persistent_ram_init_ecc), and the parity
 * as the remainder of data(x) * x^16 divided by g(x) by schoolbook long
 * division, highest power first.
 */
const EXP: number[] = [];
const LOG: number[] = new Array(256).fill(-1);
{
  let x = 1;
  for (let i = 0; i < 255; i++) {
    EXP[i] = x;
    LOG[x] = i;
    x <<= 1;
    if (x & 0x100) x ^= 0x11d;
  }
}
const gmul = (a: number, b: number): number => (a && b ? EXP[(LOG[a] + LOG[b]) % 255] : 0);

function generator(nroots: number): number[] {
  // Coefficients highest power first.
  let g = [1];
  for (let i = 0; i < nroots; i++) {
    const r = EXP[i % 255];
    const next = new Array(g.length + 1).fill(0);
    for (let j = 0; j < g.length; j++) {
      next[j] ^= g[j];
      next[j + 1] ^= gmul(g[j], r);
    }
    g = next;
  }
  return g;
}

function referenceParity(data: Uint8Array, nroots: number): number[] {
  const g = generator(nroots);
  const work = [...data, ...new Array(nroots).fill(0)];
  for (let i = 0; i < data.length; i++) {
    const coef = work[i];
    if (coef === 0) continue;
    for (let j = 0; j < g.length; j++) work[i + j] ^= gmul(g[j], coef);
  }
  return work.slice(data.length);
}

/** r(a^j) for j < nroots over data || parity: all zero for a codeword. */
function syndromes(data: Uint8Array, parity: Uint8Array): number[] {
  const word = [...data, ...parity];
  return Array.from({ length: parity.length }, (_, j) => word.reduce((s, c) => gmul(s, EXP[j % 255]) ^ c, 0));
}

const rs = new ReedSolomon(8, 0x11d, 0, 1, 16);

describe('Reed-Solomon as ramoops uses it: RS(255,239) over GF(2^8), poly 0x11d, 16 roots from a^0', () => {
  it('parity equals the long-division remainder for the 12-byte header, a full 128-byte block, a short last block', () => {
    fc.assert(fc.property(fc.oneof(
      fc.uint8Array({ minLength: 12, maxLength: 12 }),
      fc.uint8Array({ minLength: 128, maxLength: 128 }),
      fc.uint8Array({ minLength: 1, maxLength: 127 }),
    ), (data) => {
      expect([...rs.encode(data)]).toEqual(referenceParity(data, 16));
    }), { seed: FC_SEED, numRuns: 200 });
  });

  it('every encoded word has zero syndromes; all-zero data has all-zero parity', () => {
    expect([...rs.encode(new Uint8Array(128))]).toEqual(new Array(16).fill(0));
    fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 128 }), (data) => {
      expect(syndromes(data, rs.encode(data))).toEqual(new Array(16).fill(0));
    }), { seed: FC_SEED, numRuns: 100 });
  });

  it('corrects up to 8 wrong bytes anywhere in data or parity, returning how many it corrected', () => {
    fc.assert(fc.property(
      fc.uint8Array({ minLength: 20, maxLength: 128 }),
      fc.uniqueArray(fc.nat(), { minLength: 1, maxLength: 8 }),
      fc.array(fc.integer({ min: 1, max: 255 }), { minLength: 8, maxLength: 8 }),
      (data, positions, errors) => {
        const parity = rs.encode(data);
        const n = data.length + 16;
        const at = [...new Set(positions.map((p) => p % n))];
        const bad = Uint8Array.from(data);
        const badPar = Uint8Array.from(parity);
        at.forEach((p, i) => { if (p < bad.length) bad[p] ^= errors[i]; else badPar[p - bad.length] ^= errors[i]; });
        expect(rs.decode(bad, badPar)).toBe(at.length);
        expect([...bad]).toEqual([...data]);
        expect([...badPar]).toEqual([...parity]);
      }), { seed: FC_SEED, numRuns: 300 });
  });

  it('beyond 8 errors it reports failure and leaves the data alone, or lands on a true codeword: never an invalid "correction"', () => {
    let refused = 0;
    fc.assert(fc.property(
      fc.uint8Array({ minLength: 128, maxLength: 128 }),
      fc.uniqueArray(fc.integer({ min: 0, max: 127 }), { minLength: 9, maxLength: 24 }),
      fc.integer({ min: 1, max: 255 }),
      (data, positions, err) => {
        const parity = rs.encode(data);
        const bad = Uint8Array.from(data);
        for (const p of positions) bad[p] ^= err;
        const before = Uint8Array.from(bad);
        const badPar = Uint8Array.from(parity);
        const n = rs.decode(bad, badPar);
        if (n < 0) {
          refused++;
          expect([...bad]).toEqual([...before]);
        } else {
          expect(syndromes(bad, badPar)).toEqual(new Array(16).fill(0));
          expect(n).toBeLessThanOrEqual(8);
        }
      }), { seed: FC_SEED, numRuns: 200 });
    // A miscorrection beyond the code's reach is rare (about 1 in 8! for RS(255,239)): nearly all are refused.
    expect(refused).toBeGreaterThan(190);
  });

  it('a clean codeword decodes as 0 corrections', () => {
    const data = Uint8Array.from({ length: 100 }, (_, i) => i * 7);
    expect(rs.decode(data, rs.encode(data))).toBe(0);
  });
});
