/**
 * Zstandard decompression in TypeScript, written from RFC 8878 (Zstandard
 * Compression and the 'application/zstd' Media Type): frames (and skippable
 * frames), raw, RLE and compressed blocks, Huffman-coded literals (one or
 * four streams, FSE-compressed or direct weights, treeless reuse),
 * FSE-coded sequences (predefined, RLE, compressed and repeat tables),
 * repeat offsets, and the XXH64 content checksum. Dictionaries are not
 * supported (makedumpfile and the zstd tool do not use them for pages).
 * Node 20's zlib has no zstd, and a read path must not depend on a prebuilt
 * binary, hence this decoder. Every read is bounded by the input and every
 * write by the caller's output buffer.
 */
import { CorruptDumpError, DumpError } from '../../codec/index.js';
import { xxh64 } from './xxhash64.js';

export const ZSTD_MAGIC = 0xfd2fb528;
const SKIPPABLE_MAGIC_MIN = 0x184d2a50;
const SKIPPABLE_MAGIC_MAX = 0x184d2a5f;
/** Block_Maximum_Size: 128 KiB. */
const BLOCK_MAX = 128 * 1024;

function fail(why: string): never {
  throw new CorruptDumpError(`zstd frame: ${why}`, {});
}

function highbit(x: number): number {
  return 31 - Math.clz32(x);
}

/** Bits [lo, lo + n) of the little-endian bit string src[start..end); bits outside read as 0. n <= 32. */
function bitsAt(src: Uint8Array, start: number, end: number, lo: number, n: number): number {
  let v = 0;
  let bit = lo;
  let shift = 0;
  let left = n;
  while (left > 0) {
    const bi = Math.floor(bit / 8);
    const off = bit - bi * 8;
    const take = Math.min(8 - off, left);
    const at = start + bi;
    const b = bi >= 0 && at < end ? src[at] : 0;
    v += ((b >> off) & ((1 << take) - 1)) * 2 ** shift;
    shift += take;
    bit += take;
    left -= take;
  }
  return v;
}

/** Reads a bit stream forwards, from bit 0 of its first byte (FSE table descriptions). */
class ForwardBits {
  bit = 0;
  constructor(private readonly src: Uint8Array, private readonly start: number, private readonly end: number) {}
  peek(n: number): number { return bitsAt(this.src, this.start, this.end, this.bit, n); }
  skip(n: number): void {
    this.bit += n;
    if (this.bit > (this.end - this.start) * 8) fail('table description runs past its section');
  }
  get bytes(): number { return Math.ceil(this.bit / 8); }
}

/**
 * Reads a bit stream backwards, from the highest bit below the padding
 * marker of its last byte; `left` may go negative (the stream is then
 * padded with zeros), which the callers check.
 */
class BackwardBits {
  left: number;
  constructor(private readonly src: Uint8Array, private readonly start: number, private readonly end: number) {
    if (end <= start) fail('empty bit stream');
    const last = src[end - 1];
    if (last === 0) fail('bit stream without its end marker');
    this.left = (end - start - 1) * 8 + highbit(last);
  }
  read(n: number): number {
    if (n === 0) return 0;
    this.left -= n;
    return bitsAt(this.src, this.start, this.end, this.left, n);
  }
}

// ---- FSE --------------------------------------------------------------------------------

interface FseTable {
  al: number;
  symbol: Uint8Array;
  nbBits: Uint8Array;
  baseline: Uint16Array;
}

/** Builds the decoding table of a normalized distribution (RFC 8878 4.1.1). */
function buildFse(probs: readonly number[], al: number): FseTable {
  const size = 1 << al;
  const symbol = new Uint8Array(size);
  const nbBits = new Uint8Array(size);
  const baseline = new Uint16Array(size);
  const next = new Array<number>(probs.length);
  let high = size - 1;
  probs.forEach((p, s) => {
    if (p === -1) {
      symbol[high--] = s;
      next[s] = 1;
    } else {
      next[s] = p;
    }
  });
  const step = (size >> 1) + (size >> 3) + 3;
  const mask = size - 1;
  let pos = 0;
  probs.forEach((p, s) => {
    for (let i = 0; i < p; i++) {
      symbol[pos] = s;
      do pos = (pos + step) & mask; while (pos > high);
    }
  });
  if (pos !== 0) fail('FSE distribution does not fill its table');
  for (let i = 0; i < size; i++) {
    const s = symbol[i];
    const n = next[s]++;
    const bits = al - highbit(n);
    nbBits[i] = bits;
    baseline[i] = (n << bits) - size;
  }
  return { al, symbol, nbBits, baseline };
}

function rleTable(sym: number): FseTable {
  return { al: 0, symbol: Uint8Array.of(sym), nbBits: Uint8Array.of(0), baseline: Uint16Array.of(0) };
}

/** Reads an FSE table description (RFC 8878 4.1.1); returns the table and the bytes it took. */
function readFseDescription(src: Uint8Array, pos: number, end: number, maxSymbol: number, maxAl: number): { table: FseTable; bytes: number } {
  const bits = new ForwardBits(src, pos, end);
  const al = bits.peek(4) + 5;
  bits.skip(4);
  if (al > maxAl) fail(`FSE accuracy log ${al} exceeds ${maxAl}`);
  let remaining = (1 << al) + 1;
  let threshold = 1 << al;
  let nb = al + 1;
  const probs: number[] = [];
  while (remaining > 1) {
    if (probs.length > maxSymbol) fail(`FSE distribution has more than ${maxSymbol + 1} symbols`);
    const max = 2 * threshold - 1 - remaining;
    let count: number;
    const low = bits.peek(nb - 1);
    if (low < max) {
      count = low;
      bits.skip(nb - 1);
    } else {
      count = bits.peek(nb);
      if (count >= threshold) count -= max;
      bits.skip(nb);
    }
    const p = count - 1;
    remaining -= p < 0 ? -p : p;
    probs.push(p);
    if (p === 0) {
      for (;;) {
        const rep = bits.peek(2);
        bits.skip(2);
        for (let i = 0; i < rep; i++) probs.push(0);
        if (rep !== 3) break;
      }
      if (probs.length > maxSymbol + 1) fail(`FSE distribution has more than ${maxSymbol + 1} symbols`);
    }
    while (remaining < threshold && nb > 1) {
      nb--;
      threshold >>= 1;
    }
  }
  if (remaining !== 1) fail('FSE distribution does not add up');
  return { table: buildFse(probs, al), bytes: bits.bytes };
}

// Predefined distributions (RFC 8878 3.1.1.3.2.2).
const LL_DEFAULT = [4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 2, 1, 1, 1, 1, 1, -1, -1, -1, -1];
const ML_DEFAULT = [1, 4, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1];
const OF_DEFAULT = [1, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1];
const LL_PREDEFINED = buildFse(LL_DEFAULT, 6);
const ML_PREDEFINED = buildFse(ML_DEFAULT, 6);
const OF_PREDEFINED = buildFse(OF_DEFAULT, 5);

// Literals length and match length codes: baseline and extra bits (RFC 8878 3.1.1.3.2.1.1).
const LL_BASE = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 20, 22, 24, 28, 32, 40, 48, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536];
const LL_BITS = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
const ML_BASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34,
  35, 37, 39, 41, 43, 47, 51, 59, 67, 83, 99, 131, 259, 515, 1027, 2051, 4099, 8195, 16387, 32771, 65539];
const ML_BITS = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
const LL_MAX_SYMBOL = 35;
const ML_MAX_SYMBOL = 52;
const OF_MAX_SYMBOL = 31;

// ---- Huffman literals ----------------------------------------------------------------------

interface HufTable {
  maxBits: number;
  symbol: Uint8Array;
  nbBits: Uint8Array;
}

const HUF_MAX_BITS = 11;

/** Reads a Huffman tree description (RFC 8878 4.2.1); returns the table and the bytes it took. */
function readHuffmanTree(src: Uint8Array, pos: number, end: number): { table: HufTable; bytes: number } {
  if (pos >= end) fail('Huffman tree description missing');
  const header = src[pos];
  const weights: number[] = [];
  let bytes: number;
  if (header < 128) {
    bytes = 1 + header;
    if (pos + bytes > end) fail('Huffman weights run past the literals section');
    const desc = readFseDescription(src, pos + 1, pos + bytes, 255, 6);
    const fse = desc.table;
    const bits = new BackwardBits(src, pos + 1 + desc.bytes, pos + bytes);
    let s1 = bits.read(fse.al);
    let s2 = bits.read(fse.al);
    for (;;) {
      if (weights.length > 254) fail('too many Huffman weights');
      weights.push(fse.symbol[s1]);
      s1 = fse.baseline[s1] + bits.read(fse.nbBits[s1]);
      if (bits.left < 0) { weights.push(fse.symbol[s2]); break; }
      weights.push(fse.symbol[s2]);
      s2 = fse.baseline[s2] + bits.read(fse.nbBits[s2]);
      if (bits.left < 0) { weights.push(fse.symbol[s1]); break; }
    }
  } else {
    const n = header - 127;
    bytes = 1 + Math.ceil(n / 2);
    if (pos + bytes > end) fail('Huffman weights run past the literals section');
    for (let i = 0; i < n; i++) {
      const b = src[pos + 1 + (i >> 1)];
      weights.push(i % 2 === 0 ? b >> 4 : b & 15);
    }
  }
  let sum = 0;
  for (const w of weights) {
    if (w > HUF_MAX_BITS) fail(`Huffman weight ${w}`);
    if (w > 0) sum += 1 << (w - 1);
  }
  if (sum === 0) fail('Huffman weights are all zero');
  const maxBits = highbit(sum) + 1;
  if (maxBits > HUF_MAX_BITS) fail(`Huffman codes of ${maxBits} bits`);
  const left = (1 << maxBits) - sum;
  if ((left & (left - 1)) !== 0) fail('Huffman weights leave a remainder that is not a power of two');
  weights.push(highbit(left) + 1);
  if (weights.length > 256) fail('more than 256 literal symbols');
  const codeBits = weights.map((w) => (w > 0 ? maxBits + 1 - w : 0));
  const size = 1 << maxBits;
  const symbol = new Uint8Array(size);
  const nbBits = new Uint8Array(size);
  const rankCount = new Array<number>(maxBits + 1).fill(0);
  for (const b of codeBits) if (b > 0) rankCount[b]++;
  // Longest codes take the lowest table indices, as the canonical assignment orders them.
  const rankIdx = new Array<number>(maxBits + 1).fill(0);
  let idx = 0;
  for (let b = maxBits; b >= 1; b--) {
    rankIdx[b] = idx;
    const span = rankCount[b] << (maxBits - b);
    nbBits.fill(b, idx, idx + span);
    idx += span;
  }
  if (idx !== size) fail('Huffman table does not fill');
  codeBits.forEach((b, s) => {
    if (b === 0) return;
    const span = 1 << (maxBits - b);
    symbol.fill(s, rankIdx[b], rankIdx[b] + span);
    rankIdx[b] += span;
  });
  return { table: { maxBits, symbol, nbBits }, bytes };
}

function decodeHufStream(t: HufTable, src: Uint8Array, start: number, end: number, out: Uint8Array, at: number, count: number): void {
  const bits = new BackwardBits(src, start, end);
  const mask = (1 << t.maxBits) - 1;
  let state = bits.read(t.maxBits);
  for (let i = 0; i < count; i++) {
    out[at + i] = t.symbol[state];
    const nb = t.nbBits[state];
    state = ((state << nb) + bits.read(nb)) & mask;
  }
  if (bits.left !== -t.maxBits) fail('Huffman stream not consumed exactly');
}

// ---- blocks and frames ----------------------------------------------------------------------

/** Tables and offsets a frame's blocks share. */
interface FrameState {
  huf: HufTable | null;
  ll: FseTable | null;
  of: FseTable | null;
  ml: FseTable | null;
  rep: [number, number, number];
  /** Window_Size: no match may reach further back. */
  windowSize: number;
}

function readLiterals(src: Uint8Array, pos: number, end: number, st: FrameState): { literals: Uint8Array; bytes: number } {
  const b0 = src[pos];
  const type = b0 & 3;
  const sf = (b0 >> 2) & 3;
  const need = (n: number): void => { if (pos + n > end) fail('literals section runs past its block'); };
  if (type === 0 || type === 1) {
    let regen: number;
    let hdr: number;
    if (sf === 0 || sf === 2) { regen = b0 >> 3; hdr = 1; }
    else if (sf === 1) { need(2); regen = (b0 >> 4) + (src[pos + 1] << 4); hdr = 2; }
    else { need(3); regen = (b0 >> 4) + (src[pos + 1] << 4) + (src[pos + 2] << 12); hdr = 3; }
    if (regen > BLOCK_MAX) fail(`literals of ${regen} bytes`);
    if (type === 0) {
      need(hdr + regen);
      return { literals: src.subarray(pos + hdr, pos + hdr + regen), bytes: hdr + regen };
    }
    need(hdr + 1);
    return { literals: new Uint8Array(regen).fill(src[pos + hdr]), bytes: hdr + 1 };
  }
  let regen: number;
  let comp: number;
  let hdr: number;
  if (sf <= 1) {
    need(3);
    const v = (b0 >> 4) | (src[pos + 1] << 4) | (src[pos + 2] << 12);
    regen = v & 0x3ff; comp = v >>> 10; hdr = 3;
  } else if (sf === 2) {
    need(4);
    const v = ((b0 >> 4) | (src[pos + 1] << 4) | (src[pos + 2] << 12) | (src[pos + 3] << 20)) >>> 0;
    regen = v & 0x3fff; comp = v >>> 14; hdr = 4;
  } else {
    need(5);
    const v = (b0 >> 4) + src[pos + 1] * 2 ** 4 + src[pos + 2] * 2 ** 12 + src[pos + 3] * 2 ** 20 + src[pos + 4] * 2 ** 28;
    regen = v % 2 ** 18; comp = Math.floor(v / 2 ** 18); hdr = 5;
  }
  if (regen > BLOCK_MAX) fail(`literals of ${regen} bytes`);
  need(hdr + comp);
  const secEnd = pos + hdr + comp;
  let streams = pos + hdr;
  if (type === 2) {
    const tree = readHuffmanTree(src, streams, secEnd);
    st.huf = tree.table;
    streams += tree.bytes;
  } else if (!st.huf) {
    fail('treeless literals without a previous Huffman table');
  }
  const huf = st.huf!;
  const literals = new Uint8Array(regen);
  if (sf === 0) {
    decodeHufStream(huf, src, streams, secEnd, literals, 0, regen);
  } else {
    if (streams + 6 > secEnd) fail('jump table runs past the literals section');
    const s1 = src[streams] | (src[streams + 1] << 8);
    const s2 = src[streams + 2] | (src[streams + 3] << 8);
    const s3 = src[streams + 4] | (src[streams + 5] << 8);
    const total = secEnd - streams - 6;
    if (s1 + s2 + s3 > total) fail('jump table exceeds the literals section');
    const seg = (regen + 3) >> 2;
    if (3 * seg > regen) fail(`4 streams for ${regen} literals`);
    let at = streams + 6;
    const sizes = [s1, s2, s3, total - s1 - s2 - s3];
    for (let i = 0; i < 4; i++) {
      decodeHufStream(huf, src, at, at + sizes[i], literals, i * seg, i < 3 ? seg : regen - 3 * seg);
      at += sizes[i];
    }
  }
  return { literals, bytes: hdr + comp };
}

function sequenceTable(mode: number, src: Uint8Array, pos: number, end: number, prev: FseTable | null,
  predefined: FseTable, maxSymbol: number, maxAl: number): { table: FseTable; bytes: number } {
  switch (mode) {
    case 0: return { table: predefined, bytes: 0 };
    case 1:
      if (pos >= end) fail('RLE sequence table runs past its block');
      if (src[pos] > maxSymbol) fail(`RLE symbol ${src[pos]}`);
      return { table: rleTable(src[pos]), bytes: 1 };
    case 2: return readFseDescription(src, pos, end, maxSymbol, maxAl);
    default:
      if (!prev) fail('repeat sequence table without a previous one');
      return { table: prev, bytes: 0 };
  }
}

/** Decodes one compressed block into out[op..]; returns the new op. */
function decodeBlock(src: Uint8Array, pos: number, end: number, out: Uint8Array, op: number, frameStart: number, st: FrameState): number {
  const lit = readLiterals(src, pos, end, st);
  const literals = lit.literals;
  pos += lit.bytes;
  if (pos >= end) fail('sequences section missing');
  let nbSeq = src[pos++];
  if (nbSeq >= 128) {
    if (nbSeq < 255) {
      if (pos >= end) fail('sequence count runs past its block');
      nbSeq = ((nbSeq - 128) << 8) + src[pos++];
    } else {
      if (pos + 2 > end) fail('sequence count runs past its block');
      nbSeq = src[pos] + (src[pos + 1] << 8) + 0x7f00;
      pos += 2;
    }
  }
  let litPos = 0;
  const emit = (n: number): void => {
    if (litPos + n > literals.length) fail('sequences use more literals than the block has');
    if (op + n > out.length) throw new CorruptDumpError(`zstd frame: output exceeds ${out.length} bytes`, {});
    out.set(literals.subarray(litPos, litPos + n), op);
    litPos += n;
    op += n;
  };
  if (nbSeq > 0) {
    if (pos >= end) fail('compression modes missing');
    const modes = src[pos++];
    if (modes & 3) fail('reserved bits of the compression modes set');
    const ll = sequenceTable(modes >> 6, src, pos, end, st.ll, LL_PREDEFINED, LL_MAX_SYMBOL, 9);
    pos += ll.bytes;
    const of = sequenceTable((modes >> 4) & 3, src, pos, end, st.of, OF_PREDEFINED, OF_MAX_SYMBOL, 8);
    pos += of.bytes;
    const ml = sequenceTable((modes >> 2) & 3, src, pos, end, st.ml, ML_PREDEFINED, ML_MAX_SYMBOL, 9);
    pos += ml.bytes;
    st.ll = ll.table; st.of = of.table; st.ml = ml.table;
    const bits = new BackwardBits(src, pos, end);
    let sLL = bits.read(st.ll.al);
    let sOF = bits.read(st.of.al);
    let sML = bits.read(st.ml.al);
    const rep = st.rep;
    for (let i = 0; i < nbSeq; i++) {
      const ofCode = st.of.symbol[sOF];
      const mlCode = st.ml.symbol[sML];
      const llCode = st.ll.symbol[sLL];
      if (ofCode > OF_MAX_SYMBOL || mlCode > ML_MAX_SYMBOL || llCode > LL_MAX_SYMBOL) fail('sequence code out of range');
      const ofValue = 2 ** ofCode + bits.read(ofCode);
      const mlen = ML_BASE[mlCode] + bits.read(ML_BITS[mlCode]);
      const llen = LL_BASE[llCode] + bits.read(LL_BITS[llCode]);
      let offset: number;
      if (ofValue > 3) {
        offset = ofValue - 3;
        rep[2] = rep[1]; rep[1] = rep[0]; rep[0] = offset;
      } else {
        const idx = ofValue - 1 + (llen === 0 ? 1 : 0);
        if (idx === 0) {
          offset = rep[0];
        } else {
          offset = idx === 3 ? rep[0] - 1 : rep[idx];
          if (offset === 0) fail('repeat offset of zero');
          if (idx !== 1) rep[2] = rep[1];
          rep[1] = rep[0];
          rep[0] = offset;
        }
      }
      emit(llen);
      if (offset > op - frameStart) fail(`match offset ${offset} before the start of the frame`);
      if (offset > st.windowSize) fail(`match offset ${offset} beyond the window of ${st.windowSize} bytes`);
      if (op + mlen > out.length) throw new CorruptDumpError(`zstd frame: output exceeds ${out.length} bytes`, {});
      const from = op - offset;
      for (let k = 0; k < mlen; k++) out[op + k] = out[from + k];
      op += mlen;
      if (i < nbSeq - 1) {
        sLL = st.ll.baseline[sLL] + bits.read(st.ll.nbBits[sLL]);
        sML = st.ml.baseline[sML] + bits.read(st.ml.nbBits[sML]);
        sOF = st.of.baseline[sOF] + bits.read(st.of.nbBits[sOF]);
      }
    }
    if (bits.left !== 0) fail('sequence bit stream not consumed exactly');
  } else if (pos !== end) {
    fail('bytes after a block without sequences');
  }
  emit(literals.length - litPos);
  return op;
}

function u32le(src: Uint8Array, at: number): number {
  return (src[at] | (src[at + 1] << 8) | (src[at + 2] << 16) | (src[at + 3] << 24)) >>> 0;
}

/** Decodes one frame at `pos` into out[op..]; returns where the frame ended and the new op. */
function decodeFrame(src: Uint8Array, pos: number, out: Uint8Array, op: number): { pos: number; op: number } {
  const need = (n: number): void => { if (pos + n > src.length) fail('frame runs past the end of its input'); };
  need(1);
  const fhd = src[pos++];
  const fcsFlag = fhd >> 6;
  const single = (fhd >> 5) & 1;
  if (fhd & 0x08) fail('reserved bit of the frame header set');
  const checksum = (fhd >> 2) & 1;
  const dictFlag = fhd & 3;
  let windowSize = 0;
  if (!single) {
    need(1);
    const wd = src[pos++];
    const base = 2 ** (10 + (wd >> 3));
    windowSize = base + (base / 8) * (wd & 7);
  }
  const dictBytes = [0, 1, 2, 4][dictFlag];
  need(dictBytes);
  let dictId = 0;
  for (let i = 0; i < dictBytes; i++) dictId += src[pos + i] * 2 ** (8 * i);
  pos += dictBytes;
  if (dictId !== 0) throw new DumpError('UNSUPPORTED', `zstd frame: needs dictionary ${dictId}, which this decoder does not support`);
  const fcsBytes = fcsFlag === 0 ? single : [0, 2, 4, 8][fcsFlag];
  need(fcsBytes);
  let fcs: number | null = null;
  if (fcsBytes > 0) {
    fcs = 0;
    for (let i = 0; i < fcsBytes; i++) fcs += src[pos + i] * 2 ** (8 * i);
    if (fcsBytes === 2) fcs += 256;
    pos += fcsBytes;
  }
  // Single-segment frames have a window of their whole content (RFC 8878 3.1.1.1.2).
  if (single) windowSize = fcs ?? 0;
  const frameStart = op;
  const st: FrameState = { huf: null, ll: null, of: null, ml: null, rep: [1, 4, 8], windowSize };
  for (;;) {
    need(3);
    const h = src[pos] | (src[pos + 1] << 8) | (src[pos + 2] << 16);
    pos += 3;
    const last = h & 1;
    const type = (h >> 1) & 3;
    const size = h >>> 3;
    if (type === 0) {
      need(size);
      if (op + size > out.length) throw new CorruptDumpError(`zstd frame: output exceeds ${out.length} bytes`, {});
      out.set(src.subarray(pos, pos + size), op);
      op += size;
      pos += size;
    } else if (type === 1) {
      need(1);
      if (op + size > out.length) throw new CorruptDumpError(`zstd frame: output exceeds ${out.length} bytes`, {});
      out.fill(src[pos], op, op + size);
      op += size;
      pos += 1;
    } else if (type === 2) {
      if (size > BLOCK_MAX) fail(`compressed block of ${size} bytes`);
      need(size);
      op = decodeBlock(src, pos, pos + size, out, op, frameStart, st);
      pos += size;
    } else {
      fail('reserved block type');
    }
    if (last) break;
  }
  if (fcs !== null && op - frameStart !== fcs) fail(`frame holds ${op - frameStart} bytes, its header says ${fcs}`);
  if (checksum) {
    need(4);
    const want = u32le(src, pos);
    const got = Number(xxh64(out.subarray(frameStart, op)) & 0xffffffffn);
    if (want !== got) fail(`content checksum ${want.toString(16)} does not match ${got.toString(16)}`);
    pos += 4;
  }
  return { pos, op };
}

/**
 * Decompresses every frame of `src` into `out` (which bounds the output)
 * and returns the bytes written, as ZSTD_decompress() does.
 */
export function zstdDecompress(src: Uint8Array, out: Uint8Array): number {
  let pos = 0;
  let op = 0;
  if (src.length < 4) fail('input shorter than a frame magic');
  while (pos < src.length) {
    if (pos + 4 > src.length) fail('trailing bytes after the last frame');
    const magic = u32le(src, pos);
    pos += 4;
    if (magic >= SKIPPABLE_MAGIC_MIN && magic <= SKIPPABLE_MAGIC_MAX) {
      if (pos + 4 > src.length) fail('skippable frame header runs past the input');
      const size = u32le(src, pos);
      pos += 4;
      if (pos + size > src.length) fail('skippable frame runs past the input');
      pos += size;
      continue;
    }
    if (magic !== ZSTD_MAGIC) fail(`bad magic 0x${magic.toString(16)}`);
    ({ pos, op } = decodeFrame(src, pos, out, op));
  }
  return op;
}
