/**
 * GarbageBound: a loop that makes a new Buffer per call (crypto's
 * Cipher.update, as the workload's keystream does) keeps the dead ones
 * bounded when it reports them. The truth is V8's own count of the
 * isolate's ArrayBuffer bytes (process.memoryUsage().arrayBuffers),
 * sampled through the loop: without collections it climbs towards V8's
 * external limit (about 64 MiB).
 */
import { createCipheriv } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { GarbageBound } from '../../../src/machine/index.js';

const MiB = 1 << 20;
const CHUNK = 64 << 10;

/** Highest arrayBuffers seen while 256 MiB of keystream is made, with `bound` told of each chunk. */
function peakWhileMaking(bound: GarbageBound | null): number {
  const cipher = createCipheriv('aes-128-ctr', Buffer.alloc(16, 7), Buffer.alloc(16));
  const zero = new Uint8Array(CHUNK);
  const sink = new Uint8Array(CHUNK);
  let peak = 0;
  for (let made = 0; made < 256 * MiB; made += CHUNK) {
    sink.set(cipher.update(zero));
    bound?.note(CHUNK);
    if (made % (2 * MiB) === 0) peak = Math.max(peak, process.memoryUsage().arrayBuffers);
  }
  return peak;
}

describe('GarbageBound', () => {
  it('young collections every 8 MiB keep a keystream loop\'s dead Buffers under 24 MiB', () => {
    const before = process.memoryUsage().arrayBuffers;
    const peak = peakWhileMaking(new GarbageBound(8 * MiB, 'young'));
    expect(peak - before).toBeLessThan(24 * MiB);
  });

  it('full collections free what the young ones promote', () => {
    const bound = new GarbageBound(1, 'full');
    // Objects that survive young collections (held across them) end in the old generation;
    // once let go, a full collection is what frees them.
    let held: Array<{ a: number[] }> | null = Array.from({ length: 200_000 }, (_, i) => ({ a: [i, i + 1, i + 2] }));
    bound.note(1);
    bound.note(1);
    const withThem = process.memoryUsage().heapUsed;
    expect(held.length).toBe(200_000);
    held = null;
    bound.note(1);
    expect(process.memoryUsage().heapUsed).toBeLessThan(withThem - 8 * MiB);
  });
});
