/**
 * The dump format of this project's stand-in drivers (the HBA's and the
 * NVMe controller's; upstream only cxgb4 adds a device dump): a header and
 * a table of named sections, each a copy of a register block or a piece
 * of device memory as the driver read it.
 *
 *   struct sim_ddump_hdr       32 bytes: magic "SIMDDUMP", version, header and table size, section count, data_len, address
 *   struct sim_ddump_section   32 bytes each: name[16], offset from the dump's start, size, flags
 *   section data               in table order, each 8-aligned
 */
import { bytes, cstring, defineStruct, u16, u32, u8, viewOf } from '../../codec/index.js';

export const SIM_DDUMP_MAGIC = 'SIMDDUMP';
export const SIM_DDUMP_VERSION = 1;

export const sim_ddump_hdr = defineStruct('sim_ddump_hdr', {
  magic: bytes(8),
  version: u32,
  /** Bytes of the header and the section table: where data starts. */
  hdr_len: u32,
  nr_sections: u32,
  /** Bytes of the whole dump (header, table, data). */
  data_len: u32,
  domain: u16,
  bus: u8,
  devfn: u8,
  _pad: u32,
});

export const sim_ddump_section = defineStruct('sim_ddump_section', {
  name: cstring(16),
  offset: u32,
  size: u32,
  flags: u32,
  _pad: u32,
});

const ALIGN = 8;

/** Bytes a dump of sections of these sizes takes. */
export function simDumpSize(sizes: readonly number[]): number {
  let at = sim_ddump_hdr.size + sizes.length * sim_ddump_section.size;
  for (const n of sizes) at = Math.ceil(at / ALIGN) * ALIGN + n;
  return Math.ceil(at / ALIGN) * ALIGN;
}

/** Writes the dump of `sections` into `buf` (which simDumpSize sized); returns the bytes written. */
export function writeSimDump(buf: Uint8Array, addr: { domain: number; bus: number; devfn: number }, sections: ReadonlyArray<{ name: string; data: Uint8Array }>): number {
  const v = viewOf(buf);
  const hdrLen = sim_ddump_hdr.size + sections.length * sim_ddump_section.size;
  let at = hdrLen;
  sections.forEach((s, i) => {
    at = Math.ceil(at / ALIGN) * ALIGN;
    sim_ddump_section.encode({ name: s.name, offset: at, size: s.data.length, flags: 0, _pad: 0 }, v, sim_ddump_hdr.size + i * sim_ddump_section.size);
    buf.set(s.data, at);
    at += s.data.length;
  });
  const len = Math.ceil(at / ALIGN) * ALIGN;
  sim_ddump_hdr.encode({
    magic: Buffer.from(SIM_DDUMP_MAGIC, 'latin1'), version: SIM_DDUMP_VERSION, hdr_len: hdrLen, nr_sections: sections.length, data_len: len,
    domain: addr.domain, bus: addr.bus, devfn: addr.devfn, _pad: 0,
  }, v, 0);
  return len;
}
