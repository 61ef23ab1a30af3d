import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CorruptDumpError, type AddressSpace } from '../../../src/codec/index.js';
import type { MemoryReader } from '../../../src/machine/index.js';
import {
  formatDmesg, logSymbolsOf, printk, readLogRecords, readLogRecordsByIndex, type Kernel, type LogRecord,
} from '../../../src/kernel/index.js';
import { MiB, powerOnTemp, type TempMachine } from '../../helpers/machine.js';

// struct printk_log (kernel/printk/printk.c, 3.5..5.9): restated, not imported.
const HDR = 16;
const LEN_OFF = 8;
const TEXT_LEN_OFF = 10;
const LOG_ALIGN = 8;
const LOG_BUF_LEN = 128 * 1024; // CONFIG_LOG_BUF_SHIFT=17

function recordSize(text: string): number {
  const n = HDR + Buffer.byteLength(text, 'latin1');
  return Math.ceil(n / LOG_ALIGN) * LOG_ALIGN;
}

function u32(k: Kernel, name: string): number {
  return Buffer.from(k.mem.read('virt', k.sym(name).address, 4)).readUInt32LE(0);
}
function u64(k: Kernel, name: string): bigint {
  return Buffer.from(k.mem.read('virt', k.sym(name).address, 8)).readBigUInt64LE(0);
}
function setClock(k: Kernel, ns: bigint): void {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(ns);
  k.ram.write(k.sym('sim_clock_ns').address - 0xffffffff80000000n, b);
}
function records(k: Kernel): LogRecord[] {
  return readLogRecords(k.mem, logSymbolsOf(k));
}

describe('formatDmesg', () => {
  const rec = (ts_nsec: bigint, text: string): LogRecord => ({ seq: 0n, ts_nsec, level: 6, text });

  it.each([
    [1_234_567_890n, 'text', '[    1.234567] text\n'],
    [0n, 'Linux version 5.4.0', '[    0.000000] Linux version 5.4.0\n'],
    [999n, 'under a microsecond', '[    0.000000] under a microsecond\n'],
    [1_000n, 'one microsecond', '[    0.000001] one microsecond\n'],
    [12_000_050_000n, 'x', '[   12.000050] x\n'],
    [99_999_999_999_999n, 'widest', '[99999.999999] widest\n'],
    [100_000_000_000_000n, 'wider', '[100000.000000] wider\n'],
    [5_000_000_000n, '', '[    5.000000] \n'],
  ])('ts %s ns, %j', (ts, text, line) => {
    expect(formatDmesg([rec(ts, text)])).toBe(line);
  });

  it('prints records in the order given, one line each', () => {
    expect(formatDmesg([rec(2_000_000n, 'a'), rec(1_000_000_000n, 'b')])).toBe('[    0.002000] a\n[    1.000000] b\n');
    expect(formatDmesg([])).toBe('');
  });
});

describe('printk on a running kernel', () => {
  let m: TempMachine;
  let k: Kernel;
  beforeAll(() => {
    m = powerOnTemp({ mem: 16n * MiB, profile: 'idle', seed: 31 }, 'printk');
    k = m.sys.kernel;
  });
  afterAll(() => m?.destroy());

  it('the boot log is readable and starts with the banner', () => {
    const recs = records(k);
    expect(recs.length).toBeGreaterThan(10);
    expect(recs[0].text).toMatch(/^Linux version 5\.4\.0-lkcd-lowmem /);
    expect(recs[0].seq).toBe(u64(k, 'log_first_seq'));
    expect(recs[recs.length - 1].seq).toBe(u64(k, 'log_next_seq') - 1n);
  });

  it('records read back with the same text, timestamp and level', () => {
    const firstNew = u64(k, 'log_next_seq');
    const lines: Array<[bigint, string, number]> = [
      [7_000_000_123n, 'EXT4-fs (vda1): mounted filesystem', 6],
      [7_000_000_124n, 'a', 3],
      [7_250_000_000n, '', 4],
      [8_000_000_000n, 'x'.repeat(1000), 0],
      [8_000_000_000n, 'same timestamp again', 7],
    ];
    for (const [ts, text, level] of lines) {
      setClock(k, ts);
      printk(k, text, level);
    }
    const recs = records(k);
    const mine = recs.filter((r) => r.seq >= firstNew);
    expect(mine.map((r) => [r.ts_nsec, r.text, r.level])).toEqual(lines);
    expect(mine.map((r) => r.seq)).toEqual(lines.map((_, i) => firstNew + BigInt(i)));
    expect(u64(k, 'log_next_seq')).toBe(firstNew + BigInt(lines.length));
  });

  it('non-printable characters are stored as ?', () => {
    const firstNew = u64(k, 'log_next_seq');
    printk(k, 'tab\there nl\nthere nul\0bell\x07 esc\x1b[0m del\x7f hi\x80 \u00e9t\u00e9 ~ok~');
    const [r] = records(k).filter((x) => x.seq === firstNew);
    expect(r.text).toBe('tab?here nl?there nul?bell? esc?[0m del? hi? ?t? ~ok~');
  });

  it('wrapping the 128 KiB buffer several times keeps the newest records, intact and in order', () => {
    expect(u32(k, 'log_buf_len')).toBe(LOG_BUF_LEN);
    const firstNew = u64(k, 'log_next_seq');
    const firstSeqBefore = u64(k, 'log_first_seq');
    const texts: string[] = [];
    let written = 0;
    let maxSize = 0;
    let i = 0;
    let state = 12345;
    while (written < 4 * LOG_BUF_LEN) {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      const pad = 'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(8).slice(0, state % 260);
      const text = `line ${i} ${pad}`;
      setClock(k, 10_000_000_000n + BigInt(i) * 1_000_000n);
      printk(k, text);
      texts.push(text);
      written += recordSize(text);
      maxSize = Math.max(maxSize, recordSize(text));
      i++;
    }
    const nextSeq = u64(k, 'log_next_seq');
    const firstSeq = u64(k, 'log_first_seq');
    expect(nextSeq).toBe(firstNew + BigInt(texts.length));
    expect(firstSeq).toBeGreaterThan(firstSeqBefore);
    expect(firstSeq).toBeGreaterThan(firstNew); // even some of these lines are gone

    const recs = records(k);
    expect(recs[0].seq).toBe(firstSeq);
    expect(recs.map((r) => r.seq)).toEqual(recs.map((_, j) => firstSeq + BigInt(j)));
    expect(recs[recs.length - 1].seq).toBe(nextSeq - 1n);
    for (const r of recs) {
      const j = Number(r.seq - firstNew);
      expect(r.text).toBe(texts[j]);
      expect(r.ts_nsec).toBe(10_000_000_000n + BigInt(j) * 1_000_000n);
    }
    // Only what could not fit was dropped: the kept records fill the buffer but for the
    // wrap-around tail and the gap before the oldest record, each less than a record and a header.
    const kept = recs.reduce((a, r) => a + recordSize(r.text), 0);
    expect(kept).toBeLessThanOrEqual(LOG_BUF_LEN - HDR);
    expect(kept).toBeGreaterThan(LOG_BUF_LEN - 2 * (maxSize + HDR));

    // What VMCOREINFO lets a reader do (no sequence numbers): walk log_first_idx to log_next_idx.
    // The same records, numbered from 0, after several wraps.
    const { log_first_seq: _f, log_next_seq: _n, ...byIndex } = logSymbolsOf(k);
    const walked = readLogRecordsByIndex(k.mem, byIndex);
    expect(walked.map((r) => [r.text, r.ts_nsec])).toEqual(recs.map((r) => [r.text, r.ts_nsec]));
    expect(walked.map((r) => r.seq)).toEqual(walked.map((_, j) => BigInt(j)));
  });

  it('readLogRecordsByIndex stops at its bound on an index walk that never meets log_next_idx', () => {
    const { log_first_seq: _f, log_next_seq: _n, ...byIndex } = logSymbolsOf(k);
    const next = u32(k, 'log_next_idx');
    // log_next_idx moved to a place no record boundary reaches (a record's middle).
    const mem = new PatchedMemory(k.mem).patch(byIndex.log_next_idx, Buffer.from(Uint32Array.of(next + 4).buffer));
    expect(() => readLogRecordsByIndex(mem, byIndex)).toThrow(CorruptDumpError);
  });
});

/** A reader over another, with some bytes replaced: corrupts a copy, never the machine's RAM. */
class PatchedMemory implements MemoryReader {
  private readonly patches: Array<{ va: bigint; bytes: Uint8Array }> = [];
  constructor(private readonly base: MemoryReader) {}
  patch(va: bigint, bytes: Uint8Array): this {
    this.patches.push({ va, bytes });
    return this;
  }
  read(space: AddressSpace, address: bigint, length: number): Uint8Array {
    const out = Uint8Array.from(this.base.read(space, address, length));
    if (space !== 'virt') return out;
    for (const p of this.patches) {
      for (let i = 0; i < p.bytes.length; i++) {
        const at = p.va + BigInt(i) - address;
        if (at >= 0n && at < BigInt(length)) out[Number(at)] = p.bytes[i];
      }
    }
    return out;
  }
}

describe('readLogRecords on a corrupt buffer', () => {
  let m: TempMachine;
  let k: Kernel;
  /** Offsets in log_buf of every record, oldest first, found by walking the headers here. */
  let offsets: number[];
  let firstIdx: number;
  let nextIdx: number;
  let bufVa: bigint;

  beforeAll(() => {
    m = powerOnTemp({ mem: 16n * MiB, profile: 'idle', seed: 32 }, 'printk-corrupt');
    k = m.sys.kernel;
    // Wrap the buffer at least once, so it holds older records at the end and newer at the start.
    for (let i = 0; i < 3000; i++) printk(k, `filler ${i} ${'z'.repeat(i % 97)}`);
    bufVa = Buffer.from(k.mem.read('virt', k.sym('log_buf').address, 8)).readBigUInt64LE(0);
    firstIdx = u32(k, 'log_first_idx');
    nextIdx = u32(k, 'log_next_idx');
    const buf = Buffer.from(k.mem.read('virt', bufVa, LOG_BUF_LEN));
    const count = Number(u64(k, 'log_next_seq') - u64(k, 'log_first_seq'));
    offsets = [];
    let idx = firstIdx;
    for (let n = 0; n < count; n++) {
      if (buf.readUInt16LE(idx + LEN_OFF) === 0) idx = 0;
      offsets.push(idx);
      idx += buf.readUInt16LE(idx + LEN_OFF);
    }
    expect(idx).toBe(nextIdx);
  });
  afterAll(() => m?.destroy());

  function withLen(idx: number, len: number): PatchedMemory {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(len);
    return new PatchedMemory(k.mem).patch(bufVa + BigInt(idx + LEN_OFF), b);
  }
  function corruptError(mem: MemoryReader): CorruptDumpError {
    let err: unknown;
    let returned: LogRecord[] = [];
    try { returned = readLogRecords(mem, logSymbolsOf(k)); } catch (e) { err = e; }
    if (err === undefined) {
      const repeats = returned.length - new Set(returned.map((r) => r.text)).size;
      expect.fail(`readLogRecords returned ${returned.length} records (${repeats} of them repeats of earlier ones) instead of throwing CorruptDumpError`);
    }
    expect(err).toBeInstanceOf(CorruptDumpError);
    return err as CorruptDumpError;
  }
  /** A record in the newer part of the wrapped buffer, neither the first after the wrap nor the last. */
  function newerRecord(): number {
    const newer = offsets.filter((o) => o < firstIdx);
    expect(newer.length).toBeGreaterThan(3);
    return newer[newer.length >> 1];
  }

  it('the buffer under test has wrapped, and reads cleanly before corruption', () => {
    expect(nextIdx).toBeLessThan(firstIdx);
    expect(offsets).toContain(0);
    expect(readLogRecords(new PatchedMemory(k.mem), logSymbolsOf(k)).length).toBe(offsets.length);
  });

  it('a length shorter than the header', () => {
    expect(corruptError(withLen(newerRecord(), 8)).where).toMatchObject({ struct: 'printk_log', field: 'len' });
  });

  it('a length shorter than the record text', () => {
    const idx = newerRecord();
    const textLen = Buffer.from(k.mem.read('virt', bufVa + BigInt(idx + TEXT_LEN_OFF), 2)).readUInt16LE(0);
    expect(textLen).toBeGreaterThan(8);
    corruptError(withLen(idx, HDR + 8));
  });

  it('a length that runs past the end of the buffer', () => {
    const idx = offsets[offsets.length - 1];
    corruptError(withLen(idx, LOG_BUF_LEN - idx + LOG_ALIGN));
  });

  it('a zero length (a false wrap marker) in the middle of the newer records', () => {
    // The real wrap marker is at the end of the older records; a second one would send the
    // reader back to offset 0 to read the same records again.
    corruptError(withLen(newerRecord(), 0));
  });

  it('a zero length (a false wrap marker) among the older records', () => {
    const older = offsets.filter((o) => o > firstIdx);
    corruptError(withLen(older[older.length >> 1], 0));
  });

  it('a zero length on the record at offset 0', () => {
    corruptError(withLen(0, 0));
  });
});
