import { viewOf } from '../../codec/index.js';
import type { PhysicalRam } from '../../machine/index.js';
import { ECC_BLOCK_SIZE, ECC_POLY, ECC_SYMSIZE, PERSISTENT_RAM_SIG, PRZ_FLAG_ZAP_OLD } from './constants.js';
import { zoneBufferSize, type RamoopsZone } from './ramoops_layout.js';
import { ReedSolomon } from './reed_solomon.js';
import { persistent_ram_buffer, type PersistentRamBuffer } from './structs/persistent_ram_buffer.js';

const HDR = persistent_ram_buffer.size;

/** What persistent_ram_post_init() found in a zone at boot. */
export type ZoneInit =
  | { state: 'empty' }
  | { state: 'saved'; old: Uint8Array }
  | { state: 'invalid'; size: number; start: number }
  | { state: 'no-signature'; sig: number };

/**
 * A persistent_ram_zone (fs/pstore/ram_core.c) over physical RAM: a
 * persistent_ram_buffer header, data[] used as a ring, and with ECC the
 * Reed-Solomon parity of each 128-byte block of data[] and of the header
 * after the data. Every method touches RAM exactly where the kernel's does.
 * A zone object is made per command; its only state of its own is the ECC
 * tally of the boot-time check (corrected bytes, bad blocks).
 */
export class PersistentRamZone {
  /** Bytes of data[] (zone size minus header and parity). */
  readonly bufferSize: number;
  private readonly rs: ReedSolomon | null;
  private readonly eccBlocks: number;
  correctedBytes = 0;
  badBlocks = 0;
  /** Lines the zone logged (the kernel's pr_info from ram_core.c). */
  readonly log: string[] = [];

  private constructor(readonly ram: PhysicalRam, readonly zone: RamoopsZone, readonly eccSize: number, sizes: { bufferSize: number; eccBlocks: number }) {
    this.bufferSize = sizes.bufferSize;
    this.eccBlocks = sizes.eccBlocks;
    // init_rs(symsize 8, poly 0x11d, first root 0, primitive element 1, ecc_size roots).
    this.rs = eccSize ? new ReedSolomon(ECC_SYMSIZE, ECC_POLY, 0, 1, eccSize) : null;
  }

  /**
   * persistent_ram_buffer_map() and the size part of persistent_ram_init_ecc():
   * a zone ready for reading and writing, checking nothing in RAM. Null (with
   * the kernel's line) when the ECC parity would not leave room for data.
   */
  static attach(ram: PhysicalRam, zone: RamoopsZone, eccSize: number): PersistentRamZone | { error: string } {
    const sizes = zoneBufferSize(zone.size, eccSize);
    if (!sizes) {
      const raw = zone.size - HDR;
      const total = (Math.ceil((raw - eccSize) / (ECC_BLOCK_SIZE + eccSize)) + 1) * eccSize;
      return { error: `ramoops: persistent_ram_init_ecc: invalid ecc_size ${eccSize} (total ${total}, buffer size ${raw})` };
    }
    if (eccSize >= (1 << ECC_SYMSIZE) - 1) return { error: 'ramoops: init_rs failed' };
    return new PersistentRamZone(ram, zone, eccSize, sizes);
  }

  private get dataPhys(): bigint { return this.zone.paddr + BigInt(HDR); }
  private get parBufferPhys(): bigint { return this.dataPhys + BigInt(this.bufferSize); }
  private get parHeaderPhys(): bigint { return this.parBufferPhys + BigInt(this.eccBlocks * this.eccSize); }

  readHeader(): PersistentRamBuffer {
    return persistent_ram_buffer.decode(viewOf(this.ram.read(this.zone.paddr, HDR)));
  }
  private writeHeader(h: PersistentRamBuffer): void {
    this.ram.write(this.zone.paddr, persistent_ram_buffer.toBytes(h));
  }
  /** The value the header's sig must hold. */
  get expectedSig(): number {
    return (this.zone.sig ^ PERSISTENT_RAM_SIG) >>> 0;
  }

  private updateHeaderEcc(): void {
    if (!this.rs) return;
    this.ram.write(this.parHeaderPhys, this.rs.encode(this.ram.read(this.zone.paddr, HDR)));
  }

  /** persistent_ram_update_ecc(): re-encodes every block [start, start+count) touches. */
  private updateEcc(start: number, count: number): void {
    if (!this.rs) return;
    let block = start & ~(ECC_BLOCK_SIZE - 1);
    do {
      const len = Math.min(ECC_BLOCK_SIZE, this.bufferSize - block);
      const par = this.rs.encode(this.ram.read(this.dataPhys + BigInt(block), len));
      this.ram.write(this.parBufferPhys + BigInt((block / ECC_BLOCK_SIZE) * this.eccSize), par);
      block += ECC_BLOCK_SIZE;
    } while (block < start + count);
  }

  /** persistent_ram_zap(): empties the ring, keeping the signature. */
  zap(): void {
    const h = this.readHeader();
    this.writeHeader({ ...h, start: 0, size: 0 });
    this.updateHeaderEcc();
  }

  /**
   * persistent_ram_write(): appends to the ring. More than the buffer holds
   * keeps only its tail; `size` grows until the buffer is full, `start`
   * wraps, and the parity of every touched block is rewritten.
   */
  write(bytes: Uint8Array): void {
    let s = bytes;
    if (s.length > this.bufferSize) s = s.subarray(s.length - this.bufferSize);
    let c = s.length;
    let h = this.readHeader();
    // A header damaged since boot must not steer a write outside the zone (the out-of-bounds
    // write fixed upstream in 2023): start over from an empty ring instead.
    if (h.start >= this.bufferSize || h.size > this.bufferSize) h = { ...h, start: 0, size: 0 };
    const size = h.size === this.bufferSize ? h.size : Math.min(h.size + c, this.bufferSize);
    let start = h.start;
    let next = start + c;
    while (next >= this.bufferSize) next -= this.bufferSize;
    this.writeHeader({ ...h, size, start: next });
    const rem = this.bufferSize - start;
    if (rem < c) {
      this.update(s.subarray(0, rem), start);
      s = s.subarray(rem);
      c -= rem;
      start = 0;
    }
    this.update(s.subarray(0, c), start);
    this.updateHeaderEcc();
  }

  private update(bytes: Uint8Array, start: number): void {
    if (bytes.length === 0) return;
    this.ram.write(this.dataPhys + BigInt(start), bytes);
    this.updateEcc(start, bytes.length);
  }

  /** The zone's valid bytes in write order (data[start..size) then data[0..start)), without an ECC check. */
  ringContents(): Uint8Array {
    const h = this.readHeader();
    if (h.size === 0 || h.size > this.bufferSize || h.start > h.size) return new Uint8Array(0);
    const data = this.ram.read(this.dataPhys, h.size);
    return Buffer.concat([data.subarray(h.start, h.size), data.subarray(0, h.start)]);
  }

  /**
   * persistent_ram_ecc_old(): checks every block of the valid data against
   * its parity, correcting in RAM what can be corrected and counting
   * corrected bytes and unrecoverable blocks.
   */
  private eccOld(): void {
    if (!this.rs) return;
    const valid = this.readHeader().size;
    for (let block = 0, par = 0; block < valid && block < this.bufferSize; block += ECC_BLOCK_SIZE, par += this.eccSize) {
      const len = Math.min(ECC_BLOCK_SIZE, this.bufferSize - block);
      const data = this.ram.read(this.dataPhys + BigInt(block), len);
      const parity = this.ram.read(this.parBufferPhys + BigInt(par), this.eccSize);
      const n = this.rs.decode(data, parity);
      if (n > 0) {
        this.correctedBytes += n;
        this.ram.write(this.dataPhys + BigInt(block), data);
      } else if (n < 0) {
        this.badBlocks++;
      }
    }
  }

  /** persistent_ram_save_old(): the ECC check, then the ring's contents in write order. */
  saveOld(): Uint8Array {
    const h = this.readHeader();
    if (h.size === 0) return new Uint8Array(0);
    this.eccOld();
    return this.ringContents();
  }

  /**
   * persistent_ram_post_init() at boot: checks the header's parity (ECC),
   * then its signature and bounds. A zone holding data is saved (its old
   * contents returned); a zone with a foreign signature, or whose start or
   * size are out of bounds, is zapped; console and pmsg zones are zapped
   * once saved (PRZ_FLAG_ZAP_OLD).
   */
  postInit(): ZoneInit {
    if (this.rs) {
      const hdr = this.ram.read(this.zone.paddr, HDR);
      const par = this.ram.read(this.parHeaderPhys, this.eccSize);
      const n = this.rs.decode(hdr, par);
      if (n > 0) {
        this.log.push(`ramoops: error in header, ${n}`);
        this.correctedBytes += n;
        this.ram.write(this.zone.paddr, hdr);
      } else if (n < 0) {
        this.log.push('ramoops: uncorrectable error in header');
        this.badBlocks++;
      }
    }
    let zap = (this.zone.flags & PRZ_FLAG_ZAP_OLD) !== 0;
    const h = this.readHeader();
    let result: ZoneInit;
    if (h.sig === this.expectedSig) {
      if (h.size === 0 && h.start === 0) return { state: 'empty' };
      if (h.size > this.bufferSize || h.start > h.size) {
        this.log.push(`ramoops: found existing invalid buffer, size ${h.size}, start ${h.start}`);
        zap = true;
        result = { state: 'invalid', size: h.size, start: h.start };
      } else {
        result = { state: 'saved', old: this.saveOld() };
      }
    } else {
      // A zone never written (or written by something else): claim it quietly (pr_debug upstream).
      this.writeHeader({ ...h, sig: this.expectedSig });
      zap = true;
      result = { state: 'no-signature', sig: h.sig };
    }
    if (zap) this.zap();
    return result;
  }

  /** persistent_ram_ecc_string(): the notice pstore appends to the record's file ("" without ECC). */
  eccString(): string {
    if (!this.rs) return '';
    return this.correctedBytes || this.badBlocks
      ? `\nECC: ${this.correctedBytes} Corrected bytes, ${this.badBlocks} unrecoverable blocks\n`
      : '\nECC: No errors detected\n';
  }
}
