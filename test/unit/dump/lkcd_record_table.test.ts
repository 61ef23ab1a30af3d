/**
 * The LKCD reader's record table: PFNs are found by binary search in the
 * ascending runs the records form, and through an array by frame (or a
 * map) once there are more runs than it searches. Whatever the order, the
 * pages read back are the bytes mklkcd wrote (the spec is the truth), an
 * absent PFN faults, pages() keeps file order, and readPageInto fills the
 * caller's buffer with the same bytes readPage returns.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FaultError } from '../../../src/codec/index.js';
import { openDump, openLkcdFile } from '../../../src/dump/formats/index.js';
import { writeLkcd, type MklkcdResult } from '../../tools/mklkcd.js';

const PAGE = 4096;
let dir: string;
let serial = 0;

beforeAll(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-table-')); });
afterAll(() => { fs.rmSync(dir, { recursive: true, force: true }); });

/**
 * `runs` ascending runs of `perRun` PFNs each, every run starting below
 * where the last one ended (run k holds k, k + runs, k + 2 * runs, ...),
 * plus `extra` PFNs appended in one more ascending run.
 */
function pfnOrder(runs: number, perRun: number, extra: bigint[] = []): bigint[] {
  const order: bigint[] = [];
  for (let k = 0; k < runs; k++) for (let j = 0; j < perRun; j++) order.push(BigInt(k + j * runs));
  return [...order, ...extra];
}

function make(order: bigint[], header: string): { file: string; built: MklkcdResult } {
  const lines = order.map((pfn, i) => `@0x${(pfn * BigInt(PAGE)).toString(16)} auto random:${i + 1}*1024 00*3072`);
  const file = path.join(dir, `dump.${serial++}`);
  return { file, built: writeLkcd(`compress gzip\n${header}\n${lines.join('\n')}\nend\n`, file) };
}

function checkAll(file: string, built: MklkcdResult, order: bigint[]): void {
  const d = openLkcdFile(file);
  try {
    expect([...d.pages()]).toEqual(order);
    const into = new Uint8Array(PAGE);
    for (const [pfn, bytes] of built.pages) {
      expect(Buffer.from(d.readPage(pfn)).equals(Buffer.from(bytes))).toBe(true);
      const got = d.readPageInto(pfn, into);
      expect(got).toBe(into);
      expect(Buffer.from(into).equals(Buffer.from(bytes))).toBe(true);
    }
    // Absent PFNs: between the runs' members, past the highest, and far beyond 32 bits.
    const present = new Set(order);
    const highest = order.reduce((a, b) => (a > b ? a : b), 0n);
    for (const absent of [highest + 1n, highest + 1000n, 1n << 40n]) {
      expect(present.has(absent)).toBe(false);
      expect(() => d.readPage(absent)).toThrow(FaultError);
      expect(d.record(absent)).toBeNull();
    }
  } finally {
    d.close();
  }
}

describe('PFN lookup by ascending runs', () => {
  // 1 run (a sorted dump), 4 (a dump of level passes), 8 (the most the table searches),
  // 9 and 40 (past it: the array by frame, or the map without a plausible dh_memory_size).
  for (const runs of [1, 4, 8, 9, 40]) {
    for (const memory of ['memory_size 0x400', 'memory_size 0']) {
      it(`${runs} run(s), ${memory}: every page reads as written, absent ones fault`, () => {
        const order = pfnOrder(runs, 6);
        const { file, built } = make(order, memory);
        expect(built.pages.size).toBe(order.length);
        checkAll(file, built, order);
      });
    }
  }

  it('a PFN of 2^32 or more (dh_memory_size not given): read back, next to small ones', () => {
    const big = [(1n << 32n) + 5n, (1n << 33n) + 1n];
    const order = pfnOrder(3, 4, big);
    const { file, built } = make(order, 'memory_size 0');
    checkAll(file, built, order);
    // Its low 32 bits alone name another frame, which the dump does not hold.
    const d = openLkcdFile(file);
    try {
      expect(d.record(5n + 1000n)).toBeNull();
      expect(() => d.readPage(big[1] & 0xffffffffn)).not.toThrow(); // PFN 1 is in the first run
      expect(Buffer.from(d.readPage(big[0])).equals(Buffer.from(built.pages.get(big[0])!))).toBe(true);
    } finally {
      d.close();
    }
  });

  it('readPageInto refuses a buffer that is not one page', () => {
    const order = pfnOrder(2, 2);
    const { file } = make(order, 'memory_size 0x40');
    const d = openDump(file);
    try {
      expect(() => d.readPageInto!(0n, new Uint8Array(PAGE - 1))).toThrow(/4095 bytes for a 4096-byte page/);
    } finally {
      d.close();
    }
  });
});
